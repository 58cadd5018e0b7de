"""CIFAR-10: the python pickle batches, their images, labels and download (spec section 6).

``cifar-10-batches-py/data_batch_1..5`` (and ``test_batch`` for the official split) are pickled
dicts whose ``b"data"`` is ``(N, 3072)`` uint8, every row the red, green and blue 32x32 planes in
row-major order, and ``b"labels"`` the ``N`` class labels (used only by the FID classifier). The
batches are pickles: only read files you trust. The images become ``(N, 3, 32, 32)`` float32,
uint8 / 255. Download: ``cifar-10-python.tar.gz`` from Toronto, with the published MD5 sum.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from tkam.config import DataConfig
from tkam.data.pixels import to_unit_float
from tkam.data.splits import take_official, take_split
from tkam.data.types import DataError, DatasetInfo, ImageData, RemoteFile, missing_files_error

__all__ = [
    "CIFAR10",
    "CIFAR_ARCHIVE",
    "CIFAR_FOLDER",
    "CIFAR_TEST_BATCH",
    "CIFAR_TRAIN_BATCHES",
    "SOURCES",
    "cifar_folder",
    "load_cifar10",
    "read_cifar_batch",
    "read_cifar_labels",
]

CIFAR_FOLDER = "cifar-10-batches-py"
CIFAR_TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR_TEST_BATCH = "test_batch"
CIFAR_ARCHIVE = "cifar-10-python.tar.gz"


def _load_batch(path: Path) -> dict:
    """The unpickled dict of one batch, or a :class:`DataError` naming the file."""
    try:
        with path.open("rb") as handle:
            batch = pickle.load(handle, encoding="bytes")
    except OSError as error:
        raise DataError(f"cannot read CIFAR-10 batch {path}: {error}") from error
    except Exception as error:  # UnpicklingError, EOFError, ValueError... of a corrupt file
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
            raise missing_files_error(
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
            raise missing_files_error("CIFAR-10 test batch", "cifar10", folder, [CIFAR_TEST_BATCH])
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
)
