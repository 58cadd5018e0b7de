"""The data sets by name: the table that maps ``data.name`` to the format that declares it, their
data roots, and the entry points that dispatch on the name: :func:`load_dataset` (maths 6)
and :func:`training_labels` (for the FID classifier).

The registry knows no file names: each format module declares its files, loader, labels and
downloads in a :class:`~tkam.data.types.DatasetInfo`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tkam.config import DataConfig
from tkam.data.celeba import CELEBA
from tkam.data.cifar import CIFAR10
from tkam.data.darcy.files import DARCY
from tkam.data.digits import DIGITS
from tkam.data.idx import FMNIST, MNIST
from tkam.data.ptb import PTB
from tkam.data.svhn import SVHN
from tkam.data.types import DataError, DatasetInfo, ImageData

__all__ = [
    "DATASETS",
    "FORMATS",
    "check_files",
    "dataset_info",
    "default_root",
    "load_dataset",
    "missing_files",
    "resolve_root",
    "has_labels",
    "training_labels",
]

_CACHE = "~/.cache/tkam"

#: ``data.name`` -> its declaration, in the order ``tkam data list`` shows them.
FORMATS: dict[str, DatasetInfo] = {
    info.name: info for info in (MNIST, FMNIST, DIGITS, SVHN, CIFAR10, CELEBA, DARCY, PTB)
}
#: The data set names ``data.name`` accepts.
DATASETS: tuple[str, ...] = tuple(FORMATS)


def dataset_info(name: str) -> DatasetInfo:
    """The :class:`DatasetInfo` of a data set name (case-insensitive)."""
    key = name.strip().lower()
    if key not in FORMATS:
        raise DataError(f"unknown data set {name!r}; choose one of {', '.join(DATASETS)}")
    return FORMATS[key]


def default_root(name: str) -> Path | None:
    """The directory a data set is read from when ``DataConfig.root`` is empty (None: built in).

    ``~/.cache/tkam/<name>`` for every data set with files, except one a system package installs
    (Fashion-MNIST, from Debian's ``/usr/share/datasets/fashion-mnist``) when that is installed.
    """
    info = dataset_info(name)
    if info.kind == "builtin":
        return None
    if info.system_root is not None and info.system_root.is_dir():
        return info.system_root
    return Path(_CACHE, info.name).expanduser()


def resolve_root(config: DataConfig) -> Path | None:
    """``config.root`` (user-expanded) or the data set's default root."""
    if config.root:
        return Path(config.root).expanduser()
    return default_root(config.name)


def missing_files(name: str, root: Path, split: str = "spec") -> list[str]:
    """The files a data set's loader would not find under ``root`` (empty: all present).

    Args:
        name: the data set.
        root: its data root (for darcy also the HDF5 file itself).
        split: ``spec`` or ``official`` (which also needs the official test files).
    """
    info = dataset_info(name)
    if info.find_missing is not None:
        return info.find_missing(root, split)
    needed = info.files + (info.official_files if split == "official" else ())
    missing = []
    for alternatives in needed:
        if not any((root / candidate).exists() for candidate in alternatives):
            missing.append(alternatives[0])
    return missing


def check_files(name: str, root: Path, split: str = "spec") -> list[str]:
    """What is wrong with the files a data set's split reads (empty: they look right).

    Cheap, for ``tkam data list``: each format's check looks at headers, magic numbers and
    declared sizes (see :attr:`~tkam.data.types.DatasetInfo.check`), never at the whole data.

    Args:
        name: the data set.
        root: its data root (for darcy also the HDF5 file itself).
        split: ``spec`` or ``official`` (which also needs the official test files).

    Returns:
        ``missing: <files>`` when files are missing, then one status per present file that does
        not look right, e.g. ``truncated: train_32x32.mat (has 300 bytes, ...)``.
    """
    info = dataset_info(name)
    missing = missing_files(name, root, split)
    problems = [f"missing: {', '.join(missing)}"] if missing else []
    if info.check is not None:
        problems += info.check(root, split)
    return problems


def load_dataset(config: DataConfig) -> ImageData:
    """Load and split a data set (maths 6).

    Args:
        config: ``name`` (mnist, fmnist, digits, svhn, cifar10, celeba, darcy, ptb), ``root``
            (``""``: the default root, see :func:`default_root`), ``num_train`` and ``num_test``
            (0 = all remaining, see :func:`~tkam.data.splits.split_counts`), ``split`` (``spec``:
            the test items follow the training items in the training file; ``official``: they
            come from the official test file), and for ``ptb`` ``vocab_size`` and
            ``sequence_length``.

    Returns:
        float32 training and test tensors in ``[0, 1]``: ``(N, C, H, W)`` images
        (digits ``(N, 1, 8, 8)``, MNIST/Fashion-MNIST ``(N, 1, 28, 28)``, SVHN/CIFAR-10
        ``(N, 3, 32, 32)``, CelebA ``(N, 3, 64, 64)``, Darcy ``(N, 1, 32, 32)``), or one-hot
        text ``(N, vocab_size + 2, sequence_length)``.

    Raises:
        DataError: for an unknown name, missing files (the message says which files to place
            where), a malformed file, or a split larger than the data set.
    """
    info = dataset_info(config.name)
    root = resolve_root(config)
    return info.loader(config, root if root is not None else Path())


def has_labels(name: str) -> bool:
    """Whether the data set ``name`` has class labels (whose file may still be missing)."""
    info = FORMATS.get(name)
    return info is not None and info.labels is not None


def training_labels(config: DataConfig, count: int) -> np.ndarray | None:
    """Class labels of the first ``count`` training items, in :func:`load_dataset`'s order.

    Only training is served: labels never enter T-KAM; the FID/KID classifier feature network
    learns from them. Labelled data sets declare a labels reader (digits, MNIST, Fashion-MNIST,
    SVHN, CIFAR-10); CelebA, Darcy and text have none.

    Returns:
        ``(count,)`` int64, or ``None`` for an unknown or unlabelled data set, or when the label
        file is missing, unreadable or shorter than ``count``.
    """
    info = FORMATS.get(config.name)
    if info is None or info.labels is None:
        return None
    # A built-in data set has no files: data.root plays no part.
    root = Path() if info.kind == "builtin" else resolve_root(config)
    if root is None or not root.is_dir():
        return None
    labels = info.labels(root, count)
    if labels is None or len(labels) < count or np.ndim(labels) != 1:
        return None
    return np.asarray(labels[:count], dtype=np.int64)
