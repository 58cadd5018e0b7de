"""MNIST and Fashion-MNIST: the IDX format and everything about the two data sets' files (spec
section 6, DESIGN.md section 6).

* Images: ``train-images-idx3-ubyte`` and (official split) ``t10k-images-idx3-ubyte``, optionally
  ``.gz``, under the data root; ``(N, 1, 28, 28)`` uint8 divided by 255. The test images of the
  spec split are the training images after the training split.
* Labels (for the FID classifier only): ``train-labels-idx1-ubyte[.gz]``.
* Downloads: the official locations and mirrors of each data set, with the MD5 sums the authors
  publish. Fashion-MNIST is also packaged by Debian (``dataset-fashion-mnist``): it is read from
  ``/usr/share/datasets/fashion-mnist`` unless a root is given, and ``tkam data download``
  copies from there when a file's SHA-256 matches :data:`DEBIAN_FMNIST_SHA256`. Debian
  recompressed the gzip files, so they differ byte-wise from the official downloads (their MD5 is
  not the published one) and these hashes verify only the Debian copy.

A truncated or corrupt file, a file of the wrong shape (labels given as images) or a split larger
than the file is a :class:`~tkam.data.types.DataError` that names the file.
"""

from __future__ import annotations

import gzip
import math
import zlib
from dataclasses import replace
from pathlib import Path

import numpy as np

from tkam.config import DataConfig
from tkam.data.pixels import check_images, to_unit_float
from tkam.data.splits import take_official, take_split
from tkam.data.types import DataError, DatasetInfo, ImageData, RemoteFile

__all__ = [
    "DEBIAN_FMNIST",
    "DEBIAN_FMNIST_SHA256",
    "FMNIST",
    "FMNIST_SOURCES",
    "IDX_DTYPES",
    "MNIST",
    "MNIST_SOURCES",
    "TEST_IMAGES",
    "TRAIN_IMAGES",
    "TRAIN_LABELS",
    "find_idx",
    "load_idx",
    "read_idx",
    "read_idx_labels",
]

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

TRAIN_IMAGES = "train-images-idx3-ubyte"
TEST_IMAGES = "t10k-images-idx3-ubyte"
TRAIN_LABELS = "train-labels-idx1-ubyte"
IMAGE_SHAPE = (1, 28, 28)

DEBIAN_FMNIST = Path("/usr/share/datasets/fashion-mnist")
#: SHA-256 of the Fashion-MNIST files installed by Debian's ``dataset-fashion-mnist``
#: (0.0~git20200523.55506a9-1), computed locally; they verify the copy from that directory.
DEBIAN_FMNIST_SHA256: dict[str, str] = {
    "train-images-idx3-ubyte.gz": "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",
    "t10k-images-idx3-ubyte.gz": "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
    "train-labels-idx1-ubyte.gz": "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",
    "t10k-labels-idx1-ubyte.gz": "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
}
_APT = "apt-get install -y dataset-fashion-mnist"


# ------------------------------------------------------------------------------------------------
# The IDX format


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


def find_idx(root: Path, stem: str) -> Path | None:
    """``root/stem`` or ``root/stem.gz``, whichever exists (None: neither)."""
    for candidate in (root / stem, root / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None


# ------------------------------------------------------------------------------------------------
# Images and labels


def _missing_message(config: DataConfig, root: Path, stem: str) -> str:
    name = config.name
    where = "data root" if config.root else "default data root"
    problem = "does not exist" if not root.is_dir() else f"has no {stem}[.gz]"
    message = (
        f"{_DATASETS[name].display} not found: the {where} {root} {problem}. Place {stem}.gz (or "
        f"the uncompressed {stem}) in {root}, or set data.root to the directory that holds it, or "
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
    if name == FMNIST.name:
        message += (
            " On Debian/Ubuntu the files come with the package dataset-fashion-mnist "
            f"({_APT}), installed under {DEBIAN_FMNIST}."
        )
    return message


def _read_images(config: DataConfig, root: Path, stem: str) -> tuple[np.ndarray, Path]:
    """``(N, 1, 28, 28)`` uint8 images of ``root/stem[.gz]`` and the file read."""
    path = find_idx(root, stem) if root.is_dir() else None
    if path is None:
        raise DataError(_missing_message(config, root, stem))
    values = read_idx(path)
    if values.ndim == len(IMAGE_SHAPE):  # (N, H, W): add the channel axis
        values = values[:, None]
    # Checked on the raw array, before a possibly large wrong file is converted.
    check_images(values, IMAGE_SHAPE, path)
    return values, path


def load_idx(config: DataConfig, root: Path) -> ImageData:
    """MNIST or Fashion-MNIST (``config.name``) from the IDX files under ``root``.

    Returns:
        ``(N, 1, 28, 28)`` float32 training and test images, uint8 / 255.
    """
    values, path = _read_images(config, root, TRAIN_IMAGES)
    if config.split == "official":
        test_values, test_path = _read_images(config, root, TEST_IMAGES)
        train, test = take_official(values, test_values, config, path, test_path)
    else:
        test_path = path
        train, test = take_split(values, config, path)
    return ImageData(to_unit_float(train, path), to_unit_float(test, test_path), config.name)


def read_idx_labels(root: Path, count: int) -> np.ndarray | None:
    """The training labels ``(N,)`` of ``root/train-labels-idx1-ubyte[.gz]`` (``count`` is
    checked by the caller); ``None`` when the file is missing or unreadable."""
    path = find_idx(root, TRAIN_LABELS)
    if path is None:
        return None
    try:
        return read_idx(path)
    except DataError:
        return None


# ------------------------------------------------------------------------------------------------
# Downloads and declarations

_MNIST_MIRRORS = (
    "http://yann.lecun.com/exdb/mnist/",
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
)
_FMNIST_MIRRORS = (
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
)


def _download(stem: str, mirrors: tuple[str, ...], md5: str) -> RemoteFile:
    # Either the .gz or the decompressed file satisfies the loader.
    name = f"{stem}.gz"
    return RemoteFile(name, tuple(base + name for base in mirrors), md5=md5, alternatives=(stem,))


#: The MNIST images ``tkam data download mnist`` fetches (labels are never needed to train).
MNIST_SOURCES = (
    _download(TRAIN_IMAGES, _MNIST_MIRRORS, "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
    _download(TEST_IMAGES, _MNIST_MIRRORS, "9fb629c4189551a2d022fa330f9573f3"),
)
#: The Fashion-MNIST images, copied from the Debian package's folder when that is installed.
FMNIST_SOURCES = tuple(
    replace(
        remote,
        local_copy=DEBIAN_FMNIST / remote.name,
        local_sha256=DEBIAN_FMNIST_SHA256[remote.name],
    )
    for remote in (
        _download(TRAIN_IMAGES, _FMNIST_MIRRORS, "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
        _download(TEST_IMAGES, _FMNIST_MIRRORS, "bef4ecab320f06d8554ea6380940ec79"),
    )
)

_TRAIN_FILES = ((f"{TRAIN_IMAGES}.gz", TRAIN_IMAGES),)
_TEST_FILES = ((f"{TEST_IMAGES}.gz", TEST_IMAGES),)
MNIST = DatasetInfo(
    "mnist",
    "MNIST",
    "image",
    _TRAIN_FILES,
    _TEST_FILES,
    load_idx,
    sources=MNIST_SOURCES,
    labels=read_idx_labels,
)
FMNIST = DatasetInfo(
    "fmnist",
    "Fashion-MNIST",
    "image",
    _TRAIN_FILES,
    _TEST_FILES,
    load_idx,
    sources=FMNIST_SOURCES,
    labels=read_idx_labels,
    system_root=DEBIAN_FMNIST,
    download_note=(
        f"\nor install the Debian package dataset-fashion-mnist ({_APT}), which puts them in "
        f"{DEBIAN_FMNIST}"
    ),
)
_DATASETS = {info.name: info for info in (MNIST, FMNIST)}
