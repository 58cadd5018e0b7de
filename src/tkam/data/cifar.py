"""CIFAR-10: the python pickle batches, their images, labels and download (maths 6).

``cifar-10-batches-py/data_batch_1..5`` (and ``test_batch`` for the official split) are pickled
dicts whose ``b"data"`` is ``(N, 3072)`` uint8, every row the red, green and blue 32x32 planes in
row-major order, and ``b"labels"`` the ``N`` class labels (used only by the FID classifier). The
batches are pickles: only read files you trust. The images become ``(N, 3, 32, 32)`` float32,
uint8 / 255. Download: ``cifar-10-python.tar.gz`` from Toronto, with the published MD5 sum.
:func:`check_cifar` checks the batches cheaply for ``tkam data list`` (a pickle's first and last
opcodes and the file's size), never unpickling them.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from tkam.config import DataConfig
from tkam.data import types as dt
from tkam.data.pixels import to_unit_float
from tkam.data.splits import take_official, take_split
from tkam.data.types import DataError, DatasetInfo, ImageData, MalformedFileError, RemoteFile

__all__ = [
    "CIFAR10",
    "CIFAR_ARCHIVE",
    "CIFAR_FOLDER",
    "CIFAR_TEST_BATCH",
    "CIFAR_TRAIN_BATCHES",
    "OFFICIAL_SIZES",
    "SOURCES",
    "check_cifar",
    "cifar_folder",
    "inspect_cifar_batch",
    "load_cifar10",
    "read_cifar_batch",
    "read_cifar_labels",
]

CIFAR_FOLDER = "cifar-10-batches-py"
CIFAR_TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR_TEST_BATCH = "test_batch"
CIFAR_ARCHIVE = "cifar-10-python.tar.gz"


#: The sizes in bytes of the official batches (unpacked from ``cifar-10-python.tar.gz``, 10,000
#: images each; they differ by the pickled labels and file names), quoted as evidence when a batch
#: of that name looks cut short, never required: a batch of fewer images is valid.
OFFICIAL_SIZES = {
    "data_batch_1": 31035704,
    "data_batch_2": 31035320,
    "data_batch_3": 31035999,
    "data_batch_4": 31035696,
    "data_batch_5": 31035623,
    "test_batch": 31035526,
}
#: One image's values: three 32x32 planes of uint8.
_IMAGE_BYTES = 3 * 32 * 32
_PROTO = 0x80  # the PROTO opcode, followed by the protocol (2..5), starts a pickle of protocol >= 2
#: MARK (protocol 0, "(dp0") or EMPTY_DICT (protocol 1): a pickled dict's first opcode.
_DICT_STARTS = (b"(", b"}")
_STOP = b"."  # every pickle ends with STOP ...
_DICT_ENDS = (b"u", b"s")  # ... after SETITEMS or SETITEM, the last opcode that fills a dict


def _official_size(path: Path) -> str:
    size = OFFICIAL_SIZES.get(path.name)
    return f"; the official {path.name} has {size} bytes" if size else ""


def inspect_cifar_batch(path: str | Path) -> int:
    """Check a CIFAR-10 python batch cheaply, without unpickling it: that it starts like a pickle
    (``PROTO`` and a protocol 2..5, or a protocol 0/1 dict), ends like a pickled dict
    (``SETITEMS`` or ``SETITEM``, then ``STOP``: a file cut short ends elsewhere), and holds at
    least one image's 3072 bytes.

    The exact size is not checked (a batch of fewer images is valid); the official one is quoted
    as evidence.

    Returns:
        the file's size.

    Raises:
        MalformedFileError: ``empty``, ``not a pickle file``, ``truncated`` (no ``STOP`` at the
            end), ``not a pickled dict`` (a pickle of something else), ``too small``.
        OSError: when the file cannot be read.
    """
    path = Path(path)
    head, tail, size = dt.read_ends(path, 2, tail=2)
    protocol = head[1] if head[0] == _PROTO and len(head) == 2 else None
    if not (protocol is not None and 2 <= protocol <= 5 or head[:1] in _DICT_STARTS):
        detail = (
            f"starts with {dt.show_bytes(head)}; a pickle starts with 0x80 and its protocol (2 to "
            "5), or '(' or '}' (protocols 0, 1)"
        )
        raise MalformedFileError("not a pickle file", path, detail)
    if tail[-1:] != _STOP:
        detail = (
            f"has {size} bytes and ends with {dt.show_bytes(tail)}, not the pickle STOP opcode 0x2E"
            f"{_official_size(path)}"
        )
        raise MalformedFileError("truncated", path, detail)
    if len(tail) < 2 or tail[:1] not in _DICT_ENDS:
        detail = (
            f"ends with {dt.show_bytes(tail)}, a pickled dict with SETITEMS or SETITEM and STOP "
            "(0x752E, 0x732E)"
        )
        raise MalformedFileError("not a pickled dict", path, detail)
    if size < _IMAGE_BYTES:
        detail = f"has {size} bytes, less than one image's {_IMAGE_BYTES}{_official_size(path)}"
        raise MalformedFileError("too small", path, detail)
    return size


def _batch_files(root: Path, split: str) -> list[Path]:
    folder = cifar_folder(root)
    names = (*CIFAR_TRAIN_BATCHES, CIFAR_TEST_BATCH) if split == "official" else CIFAR_TRAIN_BATCHES
    return [folder / name for name in names]


def check_cifar(root: Path, split: str = "spec") -> list[str]:
    """The problems of the batches a split reads (``tkam data list``; see
    :func:`~tkam.data.types.file_problems`): the five training batches in the folder
    :func:`load_cifar10` reads, and ``test_batch`` for ``split = "official"``."""
    return dt.file_problems(root, _batch_files(root, split), inspect_cifar_batch)


def _load_batch(path: Path) -> dict:
    """The unpickled dict of one batch, or a :class:`DataError` naming the file (what
    :func:`inspect_cifar_batch` finds wrong with a file that does not unpickle)."""
    try:
        with path.open("rb") as handle:
            batch = pickle.load(handle, encoding="bytes")
    except OSError as error:
        raise DataError(f"cannot read CIFAR-10 batch {path}: {error}") from error
    except Exception as error:  # UnpicklingError, EOFError, ValueError... of a corrupt file
        try:
            inspect_cifar_batch(path)
        except MalformedFileError as problem:
            raise problem from error
        except OSError:
            pass
        raise DataError(
            f"{path}: not a readable CIFAR-10 python batch ({type(error).__name__}: {error})"
        ) from error
    if not isinstance(batch, dict):
        raise DataError(f"{path}: expected a pickled dict, found {type(batch).__name__}")
    return batch


def read_cifar_batch(path: str | Path) -> np.ndarray:
    """The images of one CIFAR-10 python batch.

    Args:
        path: a pickled dict (protocol 2, bytes keys) whose ``b"data"`` is ``(N, 3072)`` uint8.
            A pickle can run code when loaded: read only files you trust.

    Returns:
        ``(N, 3, 32, 32)`` uint8 (the 3072 values are the R, G and B planes, row-major).

    Raises:
        DataError: naming the file when it is not a readable pickle, not a dict with ``data``,
            or the data is not ``(N, 3072)`` uint8.
    """
    path = Path(path)
    batch = _load_batch(path)
    data = batch.get(b"data", batch.get("data"))
    if data is None:
        keys = sorted(str(key) for key in batch)
        raise DataError(f"{path}: expected a 'data' entry with the images, found keys {keys}")
    data = np.asarray(data)
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise DataError(
            f"{path}: expected data of shape (N, 3072) (three 32x32 planes per row), found shape "
            f"{data.shape}"
        )
    if data.dtype != np.uint8:
        raise DataError(f"{path}: expected data of type uint8, found {data.dtype}")
    return data.reshape(len(data), 3, 32, 32)


def cifar_folder(root: Path) -> Path:
    """``root/cifar-10-batches-py``, or ``root`` itself when it holds the batches."""
    nested = root / CIFAR_FOLDER
    if nested.is_dir() or not (root / CIFAR_TRAIN_BATCHES[0]).is_file():
        return nested
    return root


def read_cifar_labels(root: Path, count: int) -> np.ndarray | None:
    """The labels of the first ``count`` training images, read from as many training batches (in
    the loader's order) as they need.

    Returns:
        ``(>= count,)`` integer labels, or ``None`` when a needed batch is missing or unreadable.
    """
    folder = cifar_folder(root)  # the folder load_cifar10 reads
    labels: list[int] = []
    for name in CIFAR_TRAIN_BATCHES:
        path = folder / name
        if len(labels) >= count or not path.is_file():
            break
        try:
            batch = _load_batch(path)
        except DataError:
            return None
        labels.extend(int(v) for v in batch.get(b"labels", batch.get("labels", [])))
    return np.asarray(labels) if len(labels) >= count else None


def load_cifar10(config: DataConfig, root: Path) -> ImageData:
    """CIFAR-10 from the python batches under ``root/cifar-10-batches-py`` (or ``root``).

    Batches are read in order until the split is filled, so a small split needs only
    ``data_batch_1``.

    Returns:
        ``(N, 3, 32, 32)`` float32 training and test images, uint8 / 255.
    """
    folder = cifar_folder(root)
    official = config.split == "official"
    # Images to read from the training batches; 0 = all of them ("all remaining" splits).
    if official:
        wanted = config.num_train
    elif config.num_train == 0 or config.num_test == 0:
        wanted = 0
    else:
        wanted = config.num_train + config.num_test
    batches: list[np.ndarray] = []
    sources: list[Path] = []
    count = 0
    for name in CIFAR_TRAIN_BATCHES:
        if wanted and count >= wanted:
            break
        path = folder / name
        if not path.is_file():
            needed = [*CIFAR_TRAIN_BATCHES] + ([CIFAR_TEST_BATCH] if official else [])
            missing = [n for n in needed if not (folder / n).is_file()]
            raise dt.missing_files_error(
                "CIFAR-10",
                "cifar10",
                folder,
                missing,
                f" ({CIFAR_FOLDER} is the folder inside {CIFAR_ARCHIVE}.)",
            )
        batches.append(read_cifar_batch(path))
        sources.append(path)
        count += len(batches[-1])
    images = np.concatenate(batches)
    source = sources[0] if len(sources) == 1 else f"{folder}/data_batch_1..{len(sources)}"
    if official:
        test_path = folder / CIFAR_TEST_BATCH
        if not test_path.is_file():
            raise dt.missing_files_error(
                "CIFAR-10 test batch", "cifar10", folder, [CIFAR_TEST_BATCH]
            )
        test_source: str | Path = test_path
        train, test = take_official(images, read_cifar_batch(test_path), config, source, test_path)
    else:
        test_source = source
        train, test = take_split(images, config, source)
    return ImageData(to_unit_float(train, source), to_unit_float(test, test_source), "cifar10")


_BATCHES = (*CIFAR_TRAIN_BATCHES, CIFAR_TEST_BATCH)
#: The archive ``tkam data download cifar10`` fetches and unpacks.
SOURCES = (
    RemoteFile(
        CIFAR_ARCHIVE,
        ("https://www.cs.toronto.edu/~kriz/" + CIFAR_ARCHIVE,),
        md5="c58f30108f718f92721af3b95e74349a",
        provides=tuple(f"{CIFAR_FOLDER}/{batch}" for batch in _BATCHES),
        unpack=True,
    ),
)
CIFAR10 = DatasetInfo(
    "cifar10",
    "CIFAR-10",
    "image",
    tuple((f"{CIFAR_FOLDER}/{batch}", batch) for batch in CIFAR_TRAIN_BATCHES),
    ((f"{CIFAR_FOLDER}/{CIFAR_TEST_BATCH}", CIFAR_TEST_BATCH),),
    load_cifar10,
    sources=SOURCES,
    labels=read_cifar_labels,
    check=check_cifar,
)
