"""Data sets, read offline from their standard files (maths 6).

:func:`load_dataset` is the single entry point, keyed by ``DataConfig.name``; each data set's
format lives in one module that owns its file names, readers, labels, downloads and split:
``mnist`` and ``fmnist`` (:mod:`~tkam.data.idx`), ``digits`` (:mod:`~tkam.data.digits`), ``svhn``
(:mod:`~tkam.data.svhn`), ``cifar10`` (:mod:`~tkam.data.cifar`), ``celeba``
(:mod:`~tkam.data.celeba`), ``ptb`` (:mod:`~tkam.data.ptb`) and ``darcy``
(:mod:`~tkam.data.darcy`, generated here). Shared machinery: :mod:`~tkam.data.types` (what
loaders return, raise and declare), :mod:`~tkam.data.splits` and :mod:`~tkam.data.pixels` (the
split rules and pixel conversion), :mod:`~tkam.data.registry` (names to formats),
:mod:`~tkam.data.download` (the download engine) and :mod:`~tkam.data.commands` (the ``tkam
data`` command line).
"""

from __future__ import annotations

from tkam.data.idx import read_idx
from tkam.data.pixels import check_images
from tkam.data.registry import (
    DATASETS,
    dataset_info,
    default_root,
    load_dataset,
    missing_files,
    training_labels,
)
from tkam.data.splits import official_counts, split_counts
from tkam.data.types import DataError, DatasetInfo, ImageData

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
    "training_labels",
]
