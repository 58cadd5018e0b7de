"""SVHN (cropped digits): the ``.mat`` files, their images, labels and downloads (maths 6).

``train_32x32.mat`` (and ``test_32x32.mat`` for the official split) are MATLAB v5 files whose ``X``
is ``(32, 32, 3, N)`` uint8 images and ``y`` the ``(N, 1)`` labels ``1..10`` (10 meaning the digit
0; used only by the FID classifier). The images become ``(N, 3, 32, 32)`` float32, uint8 / 255.
Downloads: the Stanford location, with the published MD5 sums. :func:`check_svhn` checks the files
cheaply for ``tkam data list`` (the MATLAB header, the data elements' declared sizes against the
file's size, and the variables' headers), never reading the images.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.io

from tkam.config import DataConfig
from tkam.data import types as dt
from tkam.data.pixels import to_unit_float
from tkam.data.splits import take_official, take_split
from tkam.data.types import DataError, DatasetInfo, ImageData, MalformedFileError, RemoteFile

__all__ = [
    "SOURCES",
    "SVHN",
    "SVHN_TEST",
    "SVHN_TRAIN",
    "check_svhn",
    "inspect_svhn_mat",
    "load_svhn",
    "read_svhn_labels",
    "read_svhn_mat",
]

SVHN_TRAIN = "train_32x32.mat"
SVHN_TEST = "test_32x32.mat"


#: A MATLAB 5.0 file starts with 116 bytes of text, 8 of subsystem offset, a 2-byte version
#: (0x0100; 0x0200 for 7.3, an HDF5 file) and the endian indicator ``IM`` (little-endian) or ``MI``.
_MAT_HEADER = 128
_MAT_TEXT = b"MATLAB 5.0 MAT-file"
_EXPECTED_HEADER = (
    "expected the 128-byte MATLAB 5.0 header: text starting 'MATLAB 5.0 MAT-file', version "
    "0x0100 and 'IM' or 'MI' at byte 124"
)
#: Data elements walked at most (a real SVHN file has two: X and y).
_MAX_ELEMENTS = 4096
_IMAGES = ("X", (32, 32, 3), "uint8")


def _mat_byte_order(head: bytes, path: Path, size: int) -> str:
    """``<`` or ``>``: the byte order of a MATLAB 5.0 file whose first bytes are ``head``.

    Raises:
        MalformedFileError: ``not a MATLAB file``, ``truncated`` (a header cut short) or
            ``unsupported MATLAB version`` (7.3, which scipy cannot read).
    """
    indicator = head[126:128]
    if len(head) >= _MAT_HEADER and indicator in (b"IM", b"MI"):
        order = "<" if indicator == b"IM" else ">"
        version = int.from_bytes(head[124:126], "little" if order == "<" else "big")
        if version == 0x0200:
            detail = "a MATLAB 7.3 (HDF5) file; the loader reads MATLAB 5.0 files (save with -v7)"
            raise MalformedFileError("unsupported MATLAB version", path, detail)
        if version == 0x0100:
            return order
    if head.startswith(_MAT_TEXT) and len(head) < _MAT_HEADER:
        detail = f"has {size} bytes, the MATLAB header alone needs {_MAT_HEADER}"
        raise MalformedFileError("truncated", path, detail)
    detail = f"starts with {dt.show_bytes(head)}, {_EXPECTED_HEADER}"
    raise MalformedFileError("not a MATLAB file", path, detail)


def _check_elements(path: Path, order: str, size: int) -> int:
    """Walk the top-level data elements (each a variable, its 8-byte tag giving its type and
    length) and check that each ends within the file; returns their number.

    Raises:
        MalformedFileError: ``truncated``: an element or its tag runs past the end of the file.
    """
    position, count = _MAT_HEADER, 0
    with path.open("rb") as handle:
        while position < size and count < _MAX_ELEMENTS:
            handle.seek(position)
            tag = handle.read(8)
            count += 1
            if len(tag) < 8:
                detail = f"has {size} bytes, which end inside the tag of data element {count}"
                raise MalformedFileError("truncated", path, f"{detail} (at byte {position})")
            kind, length = (int(v) for v in np.frombuffer(tag, dtype=f"{order}u4"))
            if kind >> 16:  # a small data element: type, length and data in its 8 bytes
                length = 0
            end = position + 8 + length
            if end > size:
                detail = (
                    f"has {size} bytes, data element {count} (at byte {position}) declares "
                    f"{length} bytes, ending at byte {end}"
                )
                raise MalformedFileError("truncated", path, detail)
            position = end
    return count


def _check_variable(path: Path, shapes: dict[str, tuple[tuple[int, ...], str]]) -> None:
    """Check that ``X`` (``name -> (shape, type name)``) holds SVHN images: (32, 32, 3, N) uint8.

    Raises:
        MalformedFileError: ``missing variable``, ``wrong shape`` or ``wrong type``.
    """
    name, image_shape, type_name = _IMAGES
    if name not in shapes:
        found = sorted(key for key in shapes if not key.startswith("__"))
        detail = f"no variable {name!r} with the images, found {found or 'none'}"
        raise MalformedFileError("missing variable", path, detail)
    shape, found_type = shapes[name]
    if len(shape) != len(image_shape) + 1 or tuple(shape[:3]) != image_shape:
        detail = f"expected {name!r} of shape (32, 32, 3, N) as in the SVHN files, found {shape}"
        raise MalformedFileError("wrong shape", path, detail)
    if found_type != type_name:
        detail = f"expected {name!r} of type {type_name}, found {found_type}"
        raise MalformedFileError("wrong type", path, detail)


def inspect_svhn_mat(path: str | Path) -> int:
    """Check an SVHN ``.mat`` file cheaply, without reading its images: the MATLAB 5.0 header, each
    data element's declared length against the file's size, and (``scipy.io.whosmat``, which
    reads the variables' headers only) that ``X`` is ``(32, 32, 3, N)`` uint8.

    Returns:
        the number of images ``N``.

    Raises:
        MalformedFileError: ``empty``, ``not a MATLAB file``, ``unsupported MATLAB version``,
            ``truncated`` (with the file's size and the length a data element declares),
            ``corrupt MATLAB file``, ``missing variable``, ``wrong shape`` or ``wrong type``.
        OSError: when the file cannot be read.
    """
    path = Path(path)
    head, _, size = dt.read_ends(path, _MAT_HEADER)
    order = _mat_byte_order(head, path, size)
    _check_elements(path, order, size)
    try:
        variables = scipy.io.whosmat(path)
    except OSError:
        raise
    except Exception as error:  # ValueError, TypeError, zlib.error... of a corrupt header
        detail = f"{type(error).__name__}: {error}"
        raise MalformedFileError("corrupt MATLAB file", path, detail) from error
    shapes = {name: (tuple(shape), kind) for name, shape, kind in variables}
    _check_variable(path, shapes)
    return int(shapes[_IMAGES[0]][0][3])


def check_svhn(root: Path, split: str = "spec") -> list[str]:
    """The problems of the ``.mat`` files a split reads (``tkam data list``; see
    :func:`~tkam.data.types.file_problems`): ``train_32x32.mat``, and ``test_32x32.mat`` for
    ``split = "official"``."""
    names = (SVHN_TRAIN, SVHN_TEST) if split == "official" else (SVHN_TRAIN,)
    return dt.file_problems(root, [root / name for name in names], inspect_svhn_mat)


def _unreadable(path: Path, error: Exception, problem: str) -> DataError:
    """The error of a file scipy failed to read: what :func:`inspect_svhn_mat` finds wrong with
    it, else ``<file>: <problem> (<scipy's error>)``."""
    try:
        inspect_svhn_mat(path)
    except MalformedFileError as found:
        return found
    except OSError:
        pass
    return DataError(f"{path}: {problem} ({type(error).__name__}: {error})")


def _read_variable(path: Path, variable: str, what: str) -> np.ndarray:
    """One variable of a MATLAB file, or a :class:`DataError` naming the file."""
    try:
        contents = scipy.io.loadmat(path, variable_names=[variable])
    except NotImplementedError as error:  # MATLAB v7.3 files are HDF5 inside
        raise DataError(f"{path}: unsupported MATLAB file version ({error})") from error
    except (OSError, ValueError, TypeError, EOFError, KeyError) as error:
        # scipy raises ValueError/MatReadError (a ValueError) for bad headers, OSError/EOFError/
        # zlib errors (ValueError) for truncated streams.
        raise _unreadable(path, error, "not a readable MATLAB .mat file") from error
    except Exception as error:  # zlib.error and other decoder failures of a corrupt stream
        raise _unreadable(path, error, "corrupt MATLAB .mat file") from error
    if variable not in contents:
        found = sorted(key for key in contents if not key.startswith("__"))
        raise MalformedFileError(
            "missing variable",
            path,
            f"no variable {variable!r} with {what}, found {found or 'none'}",
        )
    return contents[variable]


def read_svhn_mat(path: str | Path) -> np.ndarray:
    """The images of an SVHN ``*_32x32.mat`` file.

    Args:
        path: a MATLAB v5 file holding ``X`` of shape ``(32, 32, 3, N)``, uint8.

    Returns:
        ``(N, 3, 32, 32)`` uint8.

    Raises:
        DataError: naming the file when it is not a readable MATLAB file (a
            :class:`~tkam.data.types.MalformedFileError` saying what is wrong where
            :func:`inspect_svhn_mat` finds it: ``truncated``, ``not a MATLAB file``...), has no
            ``X``, or ``X`` has another shape or type.
    """
    path = Path(path)
    images = _read_variable(path, "X", "the images")
    _check_variable(path, {"X": (images.shape, images.dtype.name)})
    return np.ascontiguousarray(images.transpose(3, 2, 0, 1))  # (N, 3, 32, 32)


def read_svhn_labels(root: Path, count: int) -> np.ndarray | None:
    """The ``(N,)`` digit labels ``0..9`` of ``root/train_32x32.mat`` (its ``y``, 10 meaning 0);
    ``None`` when the file is missing or unreadable (``count`` is checked by the caller)."""
    path = root / SVHN_TRAIN
    if not path.is_file():
        return None
    try:
        labels = _read_variable(path, "y", "the labels")
    except DataError:
        return None
    return labels.reshape(-1) % 10


def load_svhn(config: DataConfig, root: Path) -> ImageData:
    """SVHN from ``train_32x32.mat`` (and ``test_32x32.mat``) under ``root``.

    Returns:
        ``(N, 3, 32, 32)`` float32 training and test images, uint8 / 255.
    """
    official = config.split == "official"
    needed = (SVHN_TRAIN, SVHN_TEST) if official else (SVHN_TRAIN,)
    missing = [name for name in needed if not (root / name).is_file()]
    if missing:
        raise dt.missing_files_error("SVHN", "svhn", root, missing)
    train_path = root / SVHN_TRAIN
    images = read_svhn_mat(train_path)
    if official:
        test_path = root / SVHN_TEST
        train, test = take_official(images, read_svhn_mat(test_path), config, train_path, test_path)
    else:
        test_path = train_path
        train, test = take_split(images, config, train_path)
    return ImageData(to_unit_float(train, train_path), to_unit_float(test, test_path), "svhn")


_URL = "http://ufldl.stanford.edu/housenumbers/"
#: The files ``tkam data download svhn`` fetches (the labels are inside them).
SOURCES = (
    RemoteFile(SVHN_TRAIN, (_URL + SVHN_TRAIN,), md5="e26dedcc434d2e4c54c9b2d4a06d8373"),
    RemoteFile(SVHN_TEST, (_URL + SVHN_TEST,), md5="eb5a983be6a315427106f1b164d9cef3"),
)
SVHN = DatasetInfo(
    "svhn",
    "SVHN",
    "image",
    ((SVHN_TRAIN,),),
    ((SVHN_TEST,),),
    load_svhn,
    sources=SOURCES,
    labels=read_svhn_labels,
    check=check_svhn,
)
