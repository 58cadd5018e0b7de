"""The data sets by name: where their files live and :func:`load_dataset`, the single entry point
(spec section 6)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from tkam.config import DataConfig
from tkam.data import darcy, formats, text
from tkam.data.images import (
    DEBIAN_FMNIST,
    TEST_IMAGES,
    TRAIN_IMAGES,
    DataError,
    ImageData,
    load_digits,
    load_idx,
)

__all__ = [
    "DATASETS",
    "DatasetInfo",
    "dataset_info",
    "default_root",
    "load_dataset",
    "missing_files",
]

_CACHE = "~/.cache/tkam"


class DatasetInfo(NamedTuple):
    """What a data set needs on disk.

    Attributes:
        name: the ``data.name``.
        display: human-readable name.
        kind: ``builtin`` (no files), ``image``, ``text`` or ``generated`` (Darcy).
        files: files the spec split reads, relative to the root; each entry lists alternatives
            (any one suffices), the first being the name shown to users.
        official_files: the further files ``split = "official"`` reads.
        loader: ``(config, root) -> ImageData``.
    """

    name: str
    display: str
    kind: str
    files: tuple[tuple[str, ...], ...]
    official_files: tuple[tuple[str, ...], ...]
    loader: Callable[[DataConfig, Path], ImageData]


def _idx(stem: str) -> tuple[str, ...]:
    return (f"{stem}.gz", stem)


_CIFAR_TRAIN = tuple(
    (f"{formats.CIFAR_FOLDER}/{batch}", batch) for batch in formats.CIFAR_TRAIN_BATCHES
)
_INFO: dict[str, DatasetInfo] = {
    info.name: info
    for info in (
        DatasetInfo(
            "mnist", "MNIST", "image", (_idx(TRAIN_IMAGES),), (_idx(TEST_IMAGES),), load_idx
        ),
        DatasetInfo(
            "fmnist",
            "Fashion-MNIST",
            "image",
            (_idx(TRAIN_IMAGES),),
            (_idx(TEST_IMAGES),),
            load_idx,
        ),
        DatasetInfo(
            "digits", "scikit-learn digits", "builtin", (), (), lambda c, r: load_digits(c)
        ),
        DatasetInfo(
            "svhn",
            "SVHN",
            "image",
            ((formats.SVHN_TRAIN,),),
            ((formats.SVHN_TEST,),),
            formats.load_svhn,
        ),
        DatasetInfo(
            "cifar10",
            "CIFAR-10",
            "image",
            _CIFAR_TRAIN,
            (
                (
                    f"{formats.CIFAR_FOLDER}/{formats.CIFAR_TEST_BATCH}",
                    formats.CIFAR_TEST_BATCH,
                ),
            ),
            formats.load_cifar10,
        ),
        DatasetInfo(
            "celeba",
            "CelebA",
            "image",
            ((f"{formats.CELEBA_FOLDER}/",),),
            ((formats.CELEBA_PARTITION, f"Eval/{formats.CELEBA_PARTITION}"),),
            formats.load_celeba,
        ),
        DatasetInfo(
            "darcy", "Darcy flow", "generated", ((darcy.DARCY_FILE,),), (), darcy.load_darcy
        ),
        DatasetInfo(
            "ptb",
            "Penn Treebank",
            "text",
            ((text.PTB_FILES["train"],),),
            ((text.PTB_FILES["test"],),),
            text.load_ptb,
        ),
    )
}
#: The data set names ``data.name`` accepts.
DATASETS: tuple[str, ...] = tuple(_INFO)


def dataset_info(name: str) -> DatasetInfo:
    """The :class:`DatasetInfo` of a data set name (case-insensitive)."""
    key = name.strip().lower()
    if key not in _INFO:
        raise DataError(f"unknown data set {name!r}; choose one of {', '.join(DATASETS)}")
    return _INFO[key]


def default_root(name: str) -> Path | None:
    """The directory a data set is read from when ``DataConfig.root`` is empty (None: built in).

    ``~/.cache/tkam/<name>`` for every data set with files, except Fashion-MNIST, which is read
    from the Debian package's ``/usr/share/datasets/fashion-mnist`` when that is installed.
    """
    info = dataset_info(name)
    if info.kind == "builtin":
        return None
    if info.name == "fmnist" and DEBIAN_FMNIST.is_dir():
        return DEBIAN_FMNIST
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
    if info.name == "darcy":
        path = darcy.darcy_path(root)
        return [] if path.is_file() else [str(path.name)]
    needed = info.files + (info.official_files if split == "official" else ())
    missing = []
    for alternatives in needed:
        if not any((root / candidate).exists() for candidate in alternatives):
            missing.append(alternatives[0])
    return missing


def load_dataset(config: DataConfig) -> ImageData:
    """Load and split a data set (spec section 6).

    Args:
        config: ``name`` (mnist, fmnist, digits, svhn, cifar10, celeba, darcy, ptb), ``root``
            (``""``: the default root, see :func:`default_root`), ``num_train`` and ``num_test``
            (0 = all remaining, see :func:`~tkam.data.split_counts`), ``split`` (``spec``: the
            test items follow the training items in the training file; ``official``: they come
            from the official test file), and for ``ptb`` ``vocab_size`` and
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
