"""Image data sets from IDX files and scikit-learn's digits, and the helpers every loader shares
(spec section 6, DESIGN.md section 6).

Every loader returns float32 values in ``[0, 1]`` with a channel axis, ``(N, C, H, W)``, split as
the reference does: the first ``num_train`` images of the *training* file for training and the
next ``num_test`` for testing (``split = "spec"``), or, with ``split = "official"``, the test
images from the data set's official test file.

* ``digits``: scikit-learn's bundled 8x8 digits, values ``0..16`` scaled by ``1/16``; always
  offline.
* ``mnist`` / ``fmnist``: the IDX files ``train-images-idx3-ubyte`` and (official split)
  ``t10k-images-idx3-ubyte``, optionally ``.gz``, under the data root. Fashion-MNIST is packaged
  by Debian (``dataset-fashion-mnist``) and is read from ``/usr/share/datasets/fashion-mnist``
  unless a root is given.

The other data sets live in :mod:`tkam.data.formats` (SVHN, CIFAR-10, CelebA),
:mod:`tkam.data.text` (Penn Treebank) and :mod:`tkam.data.darcy`; :func:`tkam.data.load_dataset`
dispatches on the name.

Nothing is silently padded or cut: a truncated or corrupt file, a file of the wrong shape (labels
given as images) or a split larger than the file is a :class:`DataError` that names the file.
"""

from __future__ import annotations

import gzip
import math
import zlib
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from tkam.config import DataConfig

__all__ = [
    "DataError",
    "ImageData",
    "check_images",
    "load_digits",
    "load_idx",
    "official_counts",
    "read_idx",
    "split_counts",
]


class DataError(ValueError):
    """A data set that is missing, malformed or too small; the message names the file."""


class ImageData(NamedTuple):
    """A data set split into training and test items.

    Attributes:
        train: ``(N, C, H, W)`` float32 images in ``[0, 1]``; for text (``ptb``) ``(N, n_v, L)``
            one-hot columns (``n_v`` = vocabulary size + 2, ``L`` tokens).
        test: ``(M, ...)`` like ``train`` (``M`` may be 0).
        name: the data set's name (``digits``, ``mnist``, ``fmnist``, ``svhn``, ``cifar10``,
            ``celeba``, ``darcy``, ``ptb``).
    """

    train: Tensor
    test: Tensor
    name: str

    @property
    def image_shape(self) -> tuple[int, ...]:
        """Shape of one item: ``(C, H, W)`` for images, ``(n_v, L)`` for text."""
        return tuple(int(size) for size in self.train.shape[1:])


# ------------------------------------------------------------------------------------------------
# IDX files

#: IDX type code -> big-endian numpy dtype (the format stores multi-byte values big-endian).
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_GZIP_MAGIC = b"\x1f\x8b"


def _read_bytes(path: Path) -> bytes:
    """The file's bytes, decompressed when it is gzip (by its magic, whatever its suffix)."""
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise DataError(f"cannot read IDX file {path}: {error}") from error
    if raw[:2] != _GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as error:
        # gzip raises EOFError for a truncated stream and BadGzipFile / zlib.error for corruption.
        raise DataError(
            f"{path}: corrupt or truncated gzip stream ({type(error).__name__}: {error})"
        ) from error


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (the MNIST format), plain or gzip-compressed.

    Layout: two zero bytes, a type code (``0x08`` uint8, ``0x09`` int8, ``0x0B`` int16, ``0x0C``
    int32, ``0x0D`` float32, ``0x0E`` float64), the number of dimensions ``d``, ``d`` big-endian
    int32 sizes, then the values in C order, big-endian. Gzip is recognised by its ``1f 8b`` magic
    (a file named ``.gz`` that was already decompressed, as browsers do, is read as plain IDX).

    Args:
        path: the file.

    Returns:
        an array of the header's shape and type, in native byte order.

    Raises:
        DataError: naming the file, when the magic number or type code is wrong, or the data
            length differs from what the header announces (truncated or padded files).
    """
    path = Path(path)
    data = _read_bytes(path)
    gz_note = " (named .gz but not gzip-compressed)" if path.suffix == ".gz" else ""
    if len(data) < 4:
        raise DataError(
            f"{path}: not an IDX file{gz_note}: expected a 4-byte magic number, found "
            f"{len(data)} byte(s)"
        )
    if data[0] != 0 or data[1] != 0 or data[2] not in IDX_DTYPES:
        codes = ", ".join(f"0x{code:02X}" for code in IDX_DTYPES)
        raise DataError(
            f"{path}: not an IDX file{gz_note}: expected magic 00 00 <type code in {codes}> "
            f"<ndim>, found {data[:4].hex(' ')}"
        )
    dtype = IDX_DTYPES[data[2]]
    ndim = data[3]
    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        raise DataError(
            f"{path}: truncated header: expected {header_size} bytes for {ndim} dimension(s), "
            f"found {len(data)}"
        )
    shape = tuple(int(size) for size in np.frombuffer(data, dtype=">i4", count=ndim, offset=4))
    expected = math.prod(shape) * dtype.itemsize
    found = len(data) - header_size
    if found != expected:
        kind = "truncated" if found < expected else "has trailing bytes"
        raise DataError(
            f"{path}: {kind}: header announces shape {shape} of {dtype.name}, i.e. {expected} "
            f"bytes of data, found {found}"
        )
    values = np.frombuffer(data, dtype=dtype, offset=header_size).reshape(shape)
    # frombuffer views the immutable bytes; copy into a writable native-order array.
    return np.array(values, dtype=dtype.newbyteorder("="))


# ------------------------------------------------------------------------------------------------
# Checks and conversion


def check_images(
    images: Tensor | np.ndarray, expected_shape: tuple[int, ...], source: str | Path
) -> Tensor | np.ndarray:
    """Check that ``images`` is a batch ``(N, *expected_shape)``.

    Args:
        images: the loaded batch (a tensor, or the raw array before conversion).
        expected_shape: the shape of one image, e.g. ``(1, 28, 28)``.
        source: the file or data set the images came from, named in the error.

    Returns:
        ``images`` unchanged.

    Raises:
        DataError: naming ``source``, the expected and the found shape.
    """
    shape = tuple(images.shape)
    if len(shape) != len(expected_shape) + 1 or shape[1:] != tuple(expected_shape):
        expected = "(N, " + ", ".join(str(size) for size in expected_shape) + ")"
        hint = " (a labels file given as images?)" if len(shape) == 1 else ""
        raise DataError(f"{source}: expected images of shape {expected}, found shape {shape}{hint}")
    return images


def _to_unit_float(values: np.ndarray, source: str | Path, scale: float | None = None) -> Tensor:
    """Pixel values as a float32 tensor in ``[0, 1]``.

    ``uint8`` values are divided by 255 (or ``scale``); float values must already lie in ``[0, 1]``;
    other integer types have no agreed scale and are refused.
    """
    if scale is None:
        if values.dtype == np.uint8:
            scale = 255.0
        elif not np.issubdtype(values.dtype, np.floating):
            raise DataError(
                f"{source}: expected uint8 or floating-point pixel values, found {values.dtype}"
            )
    tensor = torch.from_numpy(np.ascontiguousarray(values)).to(torch.float32)
    if scale is not None:
        tensor = tensor / scale
    if tensor.numel() and not (tensor.min() >= 0.0 and tensor.max() <= 1.0):
        raise DataError(
            f"{source}: pixel values must lie in [0, 1] after scaling, found "
            f"[{float(tensor.min())}, {float(tensor.max())}]"
        )
    return tensor


def split_counts(
    available: int, num_train: int, num_test: int, source: str | Path
) -> tuple[int, int]:
    """Resolve the split sizes (spec section 6: first ``num_train``, then the next ``num_test``).

    A zero means "all remaining": ``num_train = 0`` takes every image not reserved for the test
    split; ``num_test = 0`` takes every image after the training split (none when ``num_train`` is
    also 0, so all images train).

    Args:
        available: number of images in the file.
        num_train, num_test: the requested sizes (0 = all remaining).
        source: named in the error.

    Returns:
        ``(num_train, num_test)`` as integers that fit in ``available``.

    Raises:
        DataError: when the requested images exceed those available.
    """
    if num_train < 0 or num_test < 0:
        raise DataError(
            f"{source}: num_train and num_test must be >= 0, got {num_train}, {num_test}"
        )
    if num_train + num_test > available:
        raise DataError(
            f"{source}: num_train + num_test = {num_train} + {num_test} = {num_train + num_test} "
            f"exceeds the {available} images available"
        )
    if num_train == 0:
        num_train = available - num_test
    elif num_test == 0:
        num_test = available - num_train
    return num_train, num_test


def official_counts(
    train_available: int,
    test_available: int,
    num_train: int,
    num_test: int,
    train_source: str | Path,
    test_source: str | Path,
) -> tuple[int, int]:
    """Resolve the split sizes of the official split: the first ``num_train`` items of the
    training file and the first ``num_test`` of the test file (0 = all of that file).

    Raises:
        DataError: naming the file whose items do not suffice.
    """
    if num_train < 0 or num_test < 0:
        raise DataError(
            f"{train_source}: num_train and num_test must be >= 0, got {num_train}, {num_test}"
        )
    for requested, available, source, what in (
        (num_train, train_available, train_source, "num_train"),
        (num_test, test_available, test_source, "num_test"),
    ):
        if requested > available:
            raise DataError(
                f"{source}: {what} = {requested} exceeds the {available} items available"
            )
    return num_train or train_available, num_test or test_available


def take_split(
    values: np.ndarray, config: DataConfig, source: str | Path
) -> tuple[np.ndarray, np.ndarray]:
    """The spec split of one array: the first ``num_train`` items, then the next ``num_test``."""
    num_train, num_test = split_counts(len(values), config.num_train, config.num_test, source)
    return values[:num_train], values[num_train : num_train + num_test]


def no_official_split(name: str) -> DataError:
    """The error for ``split = "official"`` on a data set without an official test file."""
    return DataError(
        f'data set {name!r} has no official test split; use data.split = "spec" (the test '
        "items are then the ones after the training items)"
    )


# ------------------------------------------------------------------------------------------------
# Data sets

#: Name -> (display name, shape of one image).
IDX_DATASETS: dict[str, tuple[str, tuple[int, int, int]]] = {
    "mnist": ("MNIST", (1, 28, 28)),
    "fmnist": ("Fashion-MNIST", (1, 28, 28)),
}
TRAIN_IMAGES = "train-images-idx3-ubyte"
TEST_IMAGES = "t10k-images-idx3-ubyte"
DEBIAN_FMNIST = Path("/usr/share/datasets/fashion-mnist")


def load_digits(config: DataConfig) -> ImageData:
    """scikit-learn's 8x8 digits, ``(N, 1, 8, 8)``, values ``0..16`` scaled by ``1/16``."""
    from sklearn.datasets import load_digits as sklearn_digits

    if config.split == "official":
        raise no_official_split("digits")
    source = "scikit-learn digits"
    images = sklearn_digits().images[:, None]  # (1797, 1, 8, 8), values 0..16
    train, test = take_split(images, config, source)
    train_tensor = check_images(_to_unit_float(train, source, scale=16.0), (1, 8, 8), source)
    test_tensor = check_images(_to_unit_float(test, source, scale=16.0), (1, 8, 8), source)
    return ImageData(train_tensor, test_tensor, "digits")


def find_idx(root: Path, stem: str) -> Path | None:
    """``root/stem`` or ``root/stem.gz``, whichever exists (None: neither)."""
    for candidate in (root / stem, root / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _missing_files_message(name: str, root: Path, configured: bool, stem: str) -> str:
    display = IDX_DATASETS[name][0]
    where = "data root" if configured else "default data root"
    problem = "does not exist" if not root.is_dir() else f"has no {stem}[.gz]"
    message = (
        f"{display} not found: the {where} {root} {problem}. Place {stem}.gz (or the "
        f"uncompressed {stem}) in {root}, or set data.root to the directory that holds it, or "
        f"run `tkam data download {name} --root {root}`."
    )
    if stem == TRAIN_IMAGES:
        message += (
            f" Only the training images are read for the spec split (the test split is the "
            f"images after the training split); {TEST_IMAGES}[.gz] is needed only with "
            f'data.split = "official".'
        )
    else:
        message += ' The official test images are needed because data.split = "official".'
    if name == "fmnist":
        message += (
            " On Debian/Ubuntu the files come with the package dataset-fashion-mnist "
            "(apt-get install -y dataset-fashion-mnist), installed under "
            f"{DEBIAN_FMNIST}."
        )
    return message


def _read_idx_images(name: str, root: Path, configured: bool, stem: str) -> tuple[np.ndarray, Path]:
    image_shape = IDX_DATASETS[name][1]
    path = find_idx(root, stem) if root.is_dir() else None
    if path is None:
        raise DataError(_missing_files_message(name, root, configured, stem))
    values = read_idx(path)
    if values.ndim == len(image_shape):  # (N, H, W): add the channel axis
        values = values[:, None]
    # Checked on the raw array, before a possibly large wrong file is converted.
    check_images(values, image_shape, path)
    return values, path


def load_idx(config: DataConfig, root: Path) -> ImageData:
    """MNIST or Fashion-MNIST from the IDX files under ``root``, ``(N, 1, 28, 28)``, uint8/255."""
    name = config.name
    configured = bool(config.root)
    values, path = _read_idx_images(name, root, configured, TRAIN_IMAGES)
    if config.split == "official":
        test_values, test_path = _read_idx_images(name, root, configured, TEST_IMAGES)
        num_train, num_test = official_counts(
            len(values), len(test_values), config.num_train, config.num_test, path, test_path
        )
        train, test = values[:num_train], test_values[:num_test]
        return ImageData(_to_unit_float(train, path), _to_unit_float(test, test_path), name)
    train, test = take_split(values, config, path)
    return ImageData(_to_unit_float(train, path), _to_unit_float(test, path), name)
