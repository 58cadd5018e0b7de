"""SVHN (cropped digits): the ``.mat`` files, their images, labels and downloads (spec section 6).

``train_32x32.mat`` (and ``test_32x32.mat`` for the official split) are MATLAB v5 files whose ``X``
is ``(32, 32, 3, N)`` uint8 images and ``y`` the ``(N, 1)`` labels ``1..10`` (10 meaning the digit
0; used only by the FID classifier). The images become ``(N, 3, 32, 32)`` float32, uint8 / 255.
Downloads: the Stanford location, with the published MD5 sums.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.io

from tkam.config import DataConfig
from tkam.data.pixels import to_unit_float
from tkam.data.splits import take_official, take_split
from tkam.data.types import DataError, DatasetInfo, ImageData, RemoteFile, missing_files_error

__all__ = [
    "SOURCES",
    "SVHN",
    "SVHN_TEST",
    "SVHN_TRAIN",
    "load_svhn",
    "read_svhn_labels",
    "read_svhn_mat",
]

SVHN_TRAIN = "train_32x32.mat"
SVHN_TEST = "test_32x32.mat"


def _read_variable(path: Path, variable: str, what: str) -> np.ndarray:
    """One variable of a MATLAB file, or a :class:`DataError` naming the file."""
    try:
        contents = scipy.io.loadmat(path, variable_names=[variable])
    except NotImplementedError as error:  # MATLAB v7.3 files are HDF5 inside
        raise DataError(f"{path}: unsupported MATLAB file version ({error})") from error
    except (OSError, ValueError, TypeError, EOFError, KeyError) as error:
        # scipy raises ValueError/MatReadError (a ValueError) for bad headers, OSError/EOFError/
        # zlib errors (ValueError) for truncated streams.
        raise DataError(
            f"{path}: not a readable MATLAB .mat file ({type(error).__name__}: {error})"
        ) from error
    except Exception as error:  # zlib.error and other decoder failures of a corrupt stream
        raise DataError(
            f"{path}: corrupt MATLAB .mat file ({type(error).__name__}: {error})"
        ) from error
    if variable not in contents:
        found = sorted(key for key in contents if not key.startswith("__"))
        raise DataError(
            f"{path}: expected a variable {variable!r} with {what}, found variables "
            f"{found or 'none'}"
        )
    return contents[variable]


def read_svhn_mat(path: str | Path) -> np.ndarray:
    """The images of an SVHN ``*_32x32.mat`` file.

    Args:
        path: a MATLAB v5 file holding ``X`` of shape ``(32, 32, 3, N)``, uint8.

    Returns:
        ``(N, 3, 32, 32)`` uint8.

    Raises:
        DataError: naming the file when it is not a readable MATLAB file, has no ``X``, or ``X``
            has another shape or type.
    """
    path = Path(path)
    images = _read_variable(path, "X", "the images")
    if images.ndim != 4 or images.shape[:3] != (32, 32, 3):
        raise DataError(
            f"{path}: expected 'X' of shape (32, 32, 3, N) as in the SVHN files, found shape "
            f"{images.shape}"
        )
    if images.dtype != np.uint8:
        raise DataError(f"{path}: expected 'X' of type uint8, found {images.dtype}")
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
        raise missing_files_error("SVHN", "svhn", root, missing)
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
)
