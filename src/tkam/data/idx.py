"""MNIST and Fashion-MNIST: the IDX format and everything about the two data sets' files (maths
6, design 6).

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
than the file is a :class:`~tkam.data.types.DataError` that names the file. :func:`check_idx`
checks the files cheaply for ``tkam data list`` (headers and declared lengths, not the data).
"""

from __future__ import annotations

import gzip
import math
import os
import zlib
from dataclasses import replace
from pathlib import Path
from typing import BinaryIO, NamedTuple

import numpy as np

from tkam.config import DataConfig
from tkam.data import types as dt
from tkam.data.pixels import check_image_shape, check_images, to_unit_float
from tkam.data.splits import take_official, take_split
from tkam.data.types import DataError, DatasetInfo, ImageData, MalformedFileError, RemoteFile

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
    "IdxHeader",
    "check_idx",
    "find_idx",
    "inspect_idx",
    "inspect_idx_images",
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
_EXPECTED_MAGIC = (
    "expected 0x00000801/0x00000803 (labels/images: two zero bytes, a type code, the number of "
    "dimensions)"
)
#: The longest IDX header (255 dimensions), and the compressed bytes read to decompress it.
_HEAD = 4 + 4 * 255
_PROBE = 1 << 16
_BLOCK = 1 << 20

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


class IdxHeader(NamedTuple):
    """What an IDX header declares.

    Attributes:
        dtype: the values' big-endian type.
        shape: the declared sizes.
        offset: the header's length in bytes (``4 + 4 * ndim``).
    """

    dtype: np.dtype
    shape: tuple[int, ...]
    offset: int

    @property
    def size(self) -> int:
        """The length of the whole file (decompressed) the header declares, in bytes."""
        return self.offset + math.prod(self.shape) * self.dtype.itemsize

    def __str__(self) -> str:
        return f"shape {self.shape} of {self.dtype.name}"


def _parse_header(head: bytes, path: Path, compressed: bool) -> IdxHeader:
    """The header at the start of ``head`` (the file's first bytes, decompressed).

    Raises:
        MalformedFileError: ``empty``, ``not an IDX file`` (wrong magic), ``not gzip-compressed``
            (a ``.gz`` file that is neither gzip nor plain IDX) or ``truncated`` (a magic number
            or header cut short).
    """
    inside = " in its gzip stream" if compressed else ""
    if not head:
        raise MalformedFileError("empty", path, f"0 bytes{inside}")
    if len(head) < 4 and not any(head[:2]) and (len(head) < 3 or head[2] in IDX_DTYPES):
        # The start of a magic number: a file cut short.
        detail = f"has {len(head)} byte(s){inside}, the magic number alone needs 4"
        raise MalformedFileError("truncated", path, detail)
    if len(head) < 4 or head[0] != 0 or head[1] != 0 or head[2] not in IDX_DTYPES:
        magic = f"magic 0x{head[:4].hex().upper()}"
        if len(head) < 4:
            magic += f", only {len(head)} byte(s)"
        if not compressed and path.suffix == ".gz":
            # A .gz file may hold plain IDX (browsers decompress downloads): only both failing
            # is an error.
            detail = f"{magic}: neither gzip (0x1F8B) nor a plain IDX file"
            raise MalformedFileError("not gzip-compressed", path, detail)
        raise MalformedFileError("not an IDX file", path, f"{magic}{inside}, {_EXPECTED_MAGIC}")
    ndim = head[3]
    offset = 4 + 4 * ndim
    if len(head) < offset:
        detail = f"has {len(head)} bytes{inside}, a header of {ndim} dimension(s) needs {offset}"
        raise MalformedFileError("truncated", path, detail)
    shape = tuple(int(size) for size in np.frombuffer(head, dtype=">i4", count=ndim, offset=4))
    return IdxHeader(IDX_DTYPES[head[2]], shape, offset)


def _validate(
    path: Path, head: bytes, found: int, *, compressed: bool, complete: bool = True
) -> IdxHeader:
    """The header of a file whose (decompressed) length is ``found``, checked against it.

    Args:
        path: the file, named in errors.
        head: its first bytes (decompressed): at least the header, when the file has one.
        found: its whole length in bytes (decompressed).
        compressed: whether it is gzip-compressed.
        complete: ``False`` when its gzip stream ends before its end marker.

    Raises:
        MalformedFileError: see :func:`_parse_header`; ``truncated`` or ``trailing bytes`` when
            the length differs from what the header declares (both numbers given).
    """
    if not complete:
        cut = f"its gzip stream ends early, after {found} decompressed bytes"
        try:
            header = _parse_header(head, path, compressed)
        except MalformedFileError:
            raise MalformedFileError("truncated", path, cut) from None
        raise MalformedFileError("truncated", path, f"{cut}; the header declares {header.size}")
    header = _parse_header(head, path, compressed)
    if found != header.size:
        kind = "truncated" if found < header.size else "trailing bytes"
        unit = " decompressed" if compressed else ""
        detail = f"has {found} bytes{unit}, the header declares {header.size} for {header}"
        raise MalformedFileError(kind, path, detail)
    return header


def _gunzip(handle: BinaryIO, path: Path, keep: bool) -> tuple[bytes, int, bool]:
    """Decompress a gzip stream block by block.

    Args:
        handle: the open file, at its start.
        path: its name, for errors.
        keep: keep every block; else only the first ones, enough for the header.

    Returns:
        the decompressed bytes kept, the decompressed length, and whether the stream was
        complete (``False``: it ends before its end marker, a truncated file).

    Raises:
        MalformedFileError: ``corrupt gzip stream`` (a bad header, CRC or compressed block).
    """
    blocks: list[bytes] = []
    found = 0
    try:
        with gzip.GzipFile(fileobj=handle, mode="rb") as stream:
            # read1: what one step decompresses, so a stream cut short still counts what it held.
            while block := stream.read1(_BLOCK):
                if keep or found < _HEAD:
                    blocks.append(block)
                found += len(block)
    except EOFError:  # what gzip raises for a stream cut short
        return b"".join(blocks), found, False
    except (OSError, zlib.error) as error:  # BadGzipFile (an OSError) and zlib.error
        detail = f"{type(error).__name__}: {error}, after {found} decompressed bytes"
        raise MalformedFileError("corrupt gzip stream", path, detail) from error
    return b"".join(blocks), found, True


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
        DataError: naming the file: :class:`~tkam.data.types.MalformedFileError` when it is
            empty, its magic number or type code is wrong (``not an IDX file``, with the magic
            found), its gzip stream is corrupt, or its length differs from what the header
            declares (``truncated`` or ``trailing bytes``, with both lengths).
    """
    path = Path(path)
    try:
        with path.open("rb") as handle:
            compressed = handle.read(2) == _GZIP_MAGIC
            handle.seek(0)
            if compressed:
                data, found, complete = _gunzip(handle, path, keep=True)
            else:
                data = handle.read()
                found, complete = len(data), True
    except OSError as error:
        raise DataError(f"cannot read IDX file {path}: {error}") from error
    header = _validate(path, data, found, compressed=compressed, complete=complete)
    values = np.frombuffer(data, dtype=header.dtype, offset=header.offset).reshape(header.shape)
    # frombuffer views the immutable bytes; copy into a writable native-order array.
    return np.array(values, dtype=header.dtype.newbyteorder("="))


def inspect_idx(path: str | Path) -> IdxHeader:
    """Check an IDX file cheaply, without reading its data: its header, and its length against
    what the header declares.

    A plain file's length is its size. A gzip file's header comes from decompressing its first
    block, its length from the gzip trailer (ISIZE, the decompressed length modulo 2**32, RFC
    1952); only when they disagree is the whole stream decompressed, to report the exact
    lengths. A stream corrupt in its middle with an intact trailer passes (the loader reports
    it).

    Returns:
        the header.

    Raises:
        MalformedFileError: as :func:`read_idx`.
        OSError: when the file cannot be read.
    """
    path = Path(path)
    with path.open("rb") as handle:
        probe = handle.read(_PROBE)
        if probe[:2] != _GZIP_MAGIC:
            return _validate(path, probe[:_HEAD], path.stat().st_size, compressed=False)
        try:
            head = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(probe, _HEAD)
            header: IdxHeader | None = _parse_header(head, path, compressed=True)
        except (zlib.error, MalformedFileError):
            header = None
        if header is not None:
            handle.seek(-4, os.SEEK_END)
            if int.from_bytes(handle.read(4), "little") == header.size % 2**32:
                return header
        # Something is off: decompress everything, to say exactly what.
        handle.seek(0)
        head, found, complete = _gunzip(handle, path, keep=False)
    return _validate(path, head, found, compressed=True, complete=complete)


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
    problem = (
        "does not exist"
        if not root.exists()
        else "is a file, not a folder"
        if not root.is_dir()
        else f"has no {stem}[.gz]"
    )
    message = (
        f"{_DATASETS[name].display} not found: the {where} {root} {problem}. Place {stem}.gz (or "
        f"the uncompressed {stem}) in {root}, or set data.root to the directory that holds it, or "
        f"run `tkam data download {name} --root {root}`; to evaluate a run whose data moved, "
        "pass `tkam evaluate RUN --data-root PATH`."
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


def inspect_idx_images(path: Path) -> IdxHeader:
    """Check an IDX images file cheaply (:func:`inspect_idx`) and that it declares what
    :func:`load_idx` reads: ``(N, 28, 28)`` or ``(N, 1, 28, 28)`` uint8 or float values.

    Raises:
        MalformedFileError: as :func:`read_idx`; ``wrong shape`` (a labels file given as
            images), ``wrong type`` (integers other than uint8, which have no agreed scale).
    """
    header = inspect_idx(path)
    shape = header.shape
    if len(shape) == len(IMAGE_SHAPE):  # (N, H, W): the loader adds the channel axis
        shape = (shape[0], 1, *shape[1:])
    check_image_shape(shape, IMAGE_SHAPE, path)
    if header.dtype.kind == "i":
        detail = f"{header.dtype.name} values, expected uint8 (or floats in [0, 1])"
        raise MalformedFileError("wrong type", path, detail)
    return header


def check_idx(root: Path, split: str = "spec") -> list[str]:
    """The problems of the images files a split reads (``tkam data list``; see
    :func:`~tkam.data.types.file_problems`): the training images, and for ``split =
    "official"`` the test images, each the file :func:`load_idx` would read."""
    stems = (TRAIN_IMAGES, TEST_IMAGES) if split == "official" else (TRAIN_IMAGES,)
    found = [find_idx(root, stem) for stem in stems]
    return dt.file_problems(root, [path for path in found if path is not None], inspect_idx_images)


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
    check=check_idx,
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
    check=check_idx,
    download_note=(
        f"\nor install the Debian package dataset-fashion-mnist ({_APT}), which puts them in "
        f"{DEBIAN_FMNIST}"
    ),
)
_DATASETS = {info.name: info for info in (MNIST, FMNIST)}
