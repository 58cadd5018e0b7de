"""Data sets, read offline from their standard files (spec section 6)."""

from __future__ import annotations

from tkam.data.images import (
    DATASETS,
    DataError,
    ImageData,
    check_images,
    default_root,
    load_dataset,
    read_idx,
    split_counts,
)

__all__ = [
    "DATASETS",
    "DataError",
    "ImageData",
    "check_images",
    "default_root",
    "load_dataset",
    "read_idx",
    "split_counts",
]
