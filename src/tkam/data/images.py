"""Image data sets, read offline from their standard files (spec section 6, DESIGN.md section 6).

Every loader returns float32 images in ``[0, 1]`` with a channel axis, ``(N, C, H, W)``, split as
the reference does: the first ``num_train`` images of the *training* file for training and the
next ``num_test`` for testing (the official test file is not used).

* ``digits``: scikit-learn's bundled 8x8 digits, values ``0..16`` scaled by ``1/16``; always
  offline.
* ``mnist`` / ``fmnist``: the IDX files ``train-images-idx3-ubyte`` (optionally ``.gz``) under the
  data root. Fashion-MNIST is packaged by Debian (``dataset-fashion-mnist``) and is read from
  ``/usr/share/datasets/fashion-mnist`` unless a root is given.

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
    "DATASETS",
    "DataError",
    "ImageData",
    "check_images",
    "default_root",
    "load_dataset",
    "read_idx",
    "split_counts",
]


class DataError(ValueError):
    """A data set that is missing, malformed or too small; the message names the file."""


class ImageData(NamedTuple):
    """A data set split into training and test images.

    Attributes:
        train: ``(N, C, H, W)`` float32 images in ``[0, 1]``.
        test: ``(M, C, H, W)`` float32 images in ``[0, 1]`` (``M`` may be 0).
        name: the data set's name (``digits``, ``mnist``, ``fmnist``).
    """

    train: Tensor
    test: Tensor
    name: str

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """Shape ``(C, H, W)`` of one image."""
        channels, height, width = self.train.shape[1:]
        return (int(channels), int(height), int(width))


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


# ------------------------------------------------------------------------------------------------
# Data sets

#: Name -> (display name, default root, shape of one image).
_IDX_DATASETS: dict[str, tuple[str, str, tuple[int, int, int]]] = {
    "mnist": ("MNIST", "~/.cache/tkam/mnist", (1, 28, 28)),
    "fmnist": ("Fashion-MNIST", "/usr/share/datasets/fashion-mnist", (1, 28, 28)),
}
DATASETS: tuple[str, ...] = ("digits", *_IDX_DATASETS)
_TRAIN_IMAGES = "train-images-idx3-ubyte"
_TEST_IMAGES = "t10k-images-idx3-ubyte"


def default_root(name: str) -> Path | None:
    """The directory a data set is read from when ``DataConfig.root`` is empty (None: built in)."""
    if name not in DATASETS:
        raise DataError(f"unknown data set {name!r}; choose one of {', '.join(DATASETS)}")
    if name not in _IDX_DATASETS:
        return None
    return Path(_IDX_DATASETS[name][1]).expanduser()


def _split(
    images: np.ndarray, config: DataConfig, source: str | Path
) -> tuple[np.ndarray, np.ndarray]:
    num_train, num_test = split_counts(len(images), config.num_train, config.num_test, source)
    return images[:num_train], images[num_train : num_train + num_test]


def _load_digits(config: DataConfig) -> ImageData:
    from sklearn.datasets import load_digits

    source = "scikit-learn digits"
    images = load_digits().images[:, None]  # (1797, 1, 8, 8), values 0..16
    train, test = _split(images, config, source)
    train_tensor = check_images(_to_unit_float(train, source, scale=16.0), (1, 8, 8), source)
    test_tensor = check_images(_to_unit_float(test, source, scale=16.0), (1, 8, 8), source)
    return ImageData(train_tensor, test_tensor, "digits")


def _find_idx(root: Path, stem: str) -> Path | None:
    for candidate in (root / stem, root / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _missing_files_message(name: str, root: Path, configured: bool) -> str:
    display = _IDX_DATASETS[name][0]
    where = "data root" if configured else "default data root"
    problem = "does not exist" if not root.is_dir() else f"has no {_TRAIN_IMAGES}[.gz]"
    message = (
        f"{display} not found: the {where} {root} {problem}. Place {_TRAIN_IMAGES}.gz (or the "
        f"uncompressed {_TRAIN_IMAGES}) in {root}, or set data.root to the directory that holds "
        f"it. Only the training images are read: the test split is the images after the "
        f"training split, so {_TEST_IMAGES} is not needed."
    )
    if name == "fmnist":
        message += (
            " On Debian/Ubuntu the files come with the package dataset-fashion-mnist "
            "(apt-get install -y dataset-fashion-mnist), installed under "
            f"{_IDX_DATASETS['fmnist'][1]}."
        )
    return message


def _load_idx_dataset(config: DataConfig) -> ImageData:
    name = config.name
    image_shape = _IDX_DATASETS[name][2]
    root = Path(config.root).expanduser() if config.root else default_root(name)
    assert root is not None
    path = _find_idx(root, _TRAIN_IMAGES) if root.is_dir() else None
    if path is None:
        raise DataError(_missing_files_message(name, root, bool(config.root)))
    values = read_idx(path)
    if values.ndim == len(image_shape):  # (N, H, W): add the channel axis
        values = values[:, None]
    # Checked on the raw array, before a possibly large wrong file is converted.
    check_images(values, image_shape, path)
    train, test = _split(values, config, path)
    return ImageData(_to_unit_float(train, path), _to_unit_float(test, path), name)


def load_dataset(config: DataConfig) -> ImageData:
    """Load and split an image data set (spec section 6).

    Args:
        config: ``name`` (``digits``, ``mnist`` or ``fmnist``), ``root`` (``""``: the default
            root, see :func:`default_root`), ``num_train`` and ``num_test`` (0 = all remaining,
            see :func:`split_counts`).

    Returns:
        the training images (the first ``num_train`` of the training file) and the test images
        (the next ``num_test``), float32 in ``[0, 1]``, shape ``(N, C, H, W)``:
        ``(N, 1, 8, 8)`` for digits and ``(N, 1, 28, 28)`` for MNIST / Fashion-MNIST.

    Raises:
        DataError: for an unknown name, missing files (the message says which file to place
            where), a malformed file, or a split larger than the data set.
    """
    name = config.name.strip().lower()
    if name == "digits":
        return _load_digits(config)
    if name in _IDX_DATASETS:
        return _load_idx_dataset(config)
    raise DataError(f"unknown data set {config.name!r}; choose one of {', '.join(DATASETS)}")
