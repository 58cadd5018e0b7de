"""Data sets, read offline from their standard files (spec section 6).

:func:`load_dataset` is the single entry point, keyed by ``DataConfig.name``: ``mnist``,
``fmnist``, ``digits`` (:mod:`~tkam.data.images`), ``svhn``, ``cifar10``, ``celeba``
(:mod:`~tkam.data.formats`), ``darcy`` (:mod:`~tkam.data.darcy`, our own generator) and ``ptb``
(:mod:`~tkam.data.text`). :mod:`~tkam.data.download` fetches the files where a network exists;
:mod:`~tkam.data.commands` is the ``tkam data`` command line.
"""

from __future__ import annotations

from tkam.data.images import (
    DataError,
    ImageData,
    check_images,
    official_counts,
    read_idx,
    split_counts,
)
from tkam.data.registry import (
    DATASETS,
    DatasetInfo,
    dataset_info,
    default_root,
    load_dataset,
    missing_files,
)

__all__ = [
    "DATASETS",
    "DataError",
    "DatasetInfo",
    "ImageData",
    "check_images",
    "dataset_info",
    "default_root",
    "load_dataset",
    "missing_files",
    "official_counts",
    "read_idx",
    "split_counts",
]
