"""SVHN, CIFAR-10 and CelebA, each read from its standard distribution format (spec section 6).

* ``svhn``: ``train_32x32.mat`` (and ``test_32x32.mat`` for the official split), MATLAB v5 files
  whose ``X`` is ``(32, 32, 3, N)`` uint8; the labels ``y`` are not used.
* ``cifar10``: the python pickle batches ``cifar-10-batches-py/data_batch_1..5`` (and
  ``test_batch``), each a dict whose ``b"data"`` is ``(N, 3072)`` uint8, every row the red, green
  and blue 32x32 planes in row-major order. The batches are pickles: only read files you trust.
* ``celeba``: the aligned images ``img_align_celeba/*.jpg`` (178x218), read in sorted file-name
  order and resized directly (no crop) to 64x64 with PIL's bilinear filter (which antialiases
  when shrinking), then uint8/255. Only as many files as the split needs are decoded. The
  official split takes its training and test images from ``list_eval_partition.txt``
  (partition 0 and 2).

Each loader returns :class:`~tkam.data.images.ImageData` with float32 ``(N, 3, H, W)`` values in
``[0, 1]``. A corrupt, truncated or wrongly shaped file is a :class:`~tkam.data.images.DataError`
that names it; nothing is padded or cut to fit.
"""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from tkam.config import DataConfig
from tkam.data.images import (
    DataError,
    ImageData,
    _to_unit_float,
    check_images,
    official_counts,
    split_counts,
    take_split,
)

__all__ = [
    "CELEBA_FOLDER",
    "CELEBA_PARTITION",
    "CELEBA_SIZE",
    "CIFAR_FOLDER",
    "CIFAR_TEST_BATCH",
    "CIFAR_TRAIN_BATCHES",
    "SVHN_TEST",
    "SVHN_TRAIN",
    "celeba_files",
    "load_celeba",
    "load_cifar10",
    "load_svhn",
    "read_celeba_images",
    "read_cifar_batch",
    "read_svhn_mat",
]

SVHN_TRAIN = "train_32x32.mat"
SVHN_TEST = "test_32x32.mat"
CIFAR_FOLDER = "cifar-10-batches-py"
CIFAR_TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR_TEST_BATCH = "test_batch"
CELEBA_FOLDER = "img_align_celeba"
CELEBA_PARTITION = "list_eval_partition.txt"
CELEBA_SIZE = 64


def _missing(
    display: str, name: str, root: Path, files: Sequence[str], note: str = ""
) -> DataError:
    listed = ", ".join(files)
    problem = "does not exist" if not root.exists() else f"lacks {listed}"
    return DataError(
        f"{display} not found: the data root {root} {problem}. Place {listed} in {root} (or set "
        f"data.root to the folder that holds them), or run `tkam data download {name} --root "
        f"{root}` where a network exists.{note}"
    )


# ------------------------------------------------------------------------------------------------
# SVHN


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
    import scipy.io

    path = Path(path)
    try:
        contents = scipy.io.loadmat(path, variable_names=["X"])
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
    if "X" not in contents:
        found = sorted(key for key in contents if not key.startswith("__"))
        raise DataError(
            f"{path}: expected a variable 'X' with the images, found variables {found or 'none'}"
        )
    images = contents["X"]
    if images.ndim != 4 or images.shape[:3] != (32, 32, 3):
        raise DataError(
            f"{path}: expected 'X' of shape (32, 32, 3, N) as in the SVHN files, found shape "
            f"{images.shape}"
        )
    if images.dtype != np.uint8:
        raise DataError(f"{path}: expected 'X' of type uint8, found {images.dtype}")
    return np.ascontiguousarray(images.transpose(3, 2, 0, 1))  # (N, 3, 32, 32)


def load_svhn(config: DataConfig, root: Path) -> ImageData:
    """SVHN (cropped digits) from ``train_32x32.mat`` (and ``test_32x32.mat``): ``(N, 3, 32, 32)``."""
    official = config.split == "official"
    needed = (SVHN_TRAIN, SVHN_TEST) if official else (SVHN_TRAIN,)
    missing = [name for name in needed if not (root / name).is_file()]
    if missing:
        raise _missing("SVHN", "svhn", root, missing)
    train_path = root / SVHN_TRAIN
    images = read_svhn_mat(train_path)
    if official:
        test_path = root / SVHN_TEST
        test_images = read_svhn_mat(test_path)
        num_train, num_test = official_counts(
            len(images), len(test_images), config.num_train, config.num_test, train_path, test_path
        )
        train, test = images[:num_train], test_images[:num_test]
    else:
        test_path = train_path
        train, test = take_split(images, config, train_path)
    return ImageData(_to_unit_float(train, train_path), _to_unit_float(test, test_path), "svhn")


# ------------------------------------------------------------------------------------------------
# CIFAR-10


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


def _cifar_folder(root: Path) -> Path:
    """``root/cifar-10-batches-py``, or ``root`` itself when it holds the batches."""
    nested = root / CIFAR_FOLDER
    if nested.is_dir() or not (root / CIFAR_TRAIN_BATCHES[0]).is_file():
        return nested
    return root


def load_cifar10(config: DataConfig, root: Path) -> ImageData:
    """CIFAR-10 from the python batches under ``root/cifar-10-batches-py``: ``(N, 3, 32, 32)``.

    Batches are read in order until the split is filled, so a small split needs only
    ``data_batch_1``.
    """
    folder = _cifar_folder(root)
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
            raise _missing(
                "CIFAR-10",
                "cifar10",
                folder,
                missing,
                f" ({CIFAR_FOLDER} is the folder inside cifar-10-python.tar.gz.)",
            )
        batches.append(read_cifar_batch(path))
        sources.append(path)
        count += len(batches[-1])
    images = np.concatenate(batches)
    source = sources[0] if len(sources) == 1 else f"{folder}/data_batch_1..{len(sources)}"
    if official:
        test_path = folder / CIFAR_TEST_BATCH
        if not test_path.is_file():
            raise _missing("CIFAR-10 test batch", "cifar10", folder, [CIFAR_TEST_BATCH])
        test_images = read_cifar_batch(test_path)
        num_train, num_test = official_counts(
            len(images), len(test_images), config.num_train, config.num_test, source, test_path
        )
        train, test = images[:num_train], test_images[:num_test]
        return ImageData(_to_unit_float(train, source), _to_unit_float(test, test_path), "cifar10")
    train, test = take_split(images, config, source)
    return ImageData(_to_unit_float(train, source), _to_unit_float(test, source), "cifar10")


# ------------------------------------------------------------------------------------------------
# CelebA


def _celeba_folder(root: Path) -> Path:
    """``root/img_align_celeba``, or ``root`` itself when it is that folder."""
    if root.name == CELEBA_FOLDER and not (root / CELEBA_FOLDER).is_dir():
        return root
    return root / CELEBA_FOLDER


def celeba_files(folder: str | Path) -> list[Path]:
    """The JPEG files of an image folder (``*.jpg``, ``*.jpeg``, any case), sorted by name."""
    folder = Path(folder)
    suffixes = {".jpg", ".jpeg"}
    return sorted(
        (
            entry
            for entry in folder.iterdir()
            if entry.suffix.lower() in suffixes and not entry.name.startswith(".")
        ),
        key=lambda entry: entry.name,
    )


def read_celeba_images(paths: Sequence[Path], size: int = CELEBA_SIZE) -> np.ndarray:
    """Decode images and resize them directly (no crop) to ``size x size`` RGB.

    Args:
        paths: image files, in the order wanted.
        size: side of the output images.

    Returns:
        ``(len(paths), 3, size, size)`` uint8.

    Raises:
        DataError: naming the first file that PIL cannot decode (not an image, truncated).
    """
    from PIL import Image

    out = np.empty((len(paths), 3, size, size), dtype=np.uint8)
    for index, path in enumerate(paths):
        try:
            with Image.open(path) as image:
                image.load()  # decode now, so truncation is reported here with the name
                rgb = image.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
        except (OSError, SyntaxError, ValueError) as error:
            # UnidentifiedImageError and "image file is truncated" are OSErrors.
            raise DataError(
                f"{path}: not a readable image ({type(error).__name__}: {error})"
            ) from error
        out[index] = np.asarray(rgb, dtype=np.uint8).transpose(2, 0, 1)
    return out


def _read_partition(root: Path, folder: Path) -> tuple[Path, dict[str, int]]:
    candidates = [root / CELEBA_PARTITION, root / "Eval" / CELEBA_PARTITION]
    candidates.append(folder.parent / CELEBA_PARTITION)
    path = next((candidate for candidate in candidates if candidate.is_file()), None)
    if path is None:
        raise DataError(
            f"CelebA official split: {CELEBA_PARTITION} not found in {root} (nor in {root}/Eval); "
            f"it assigns each image to train (0), validation (1) or test (2). Place it there or "
            f'use data.split = "spec".'
        )
    partition: dict[str, int] = {}
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"cannot read {path}: {error}") from error
    for number, line in enumerate(lines, start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2 or fields[1] not in ("0", "1", "2"):
            raise DataError(
                f"{path}, line {number}: expected '<file name> <0|1|2>', found {line.strip()!r}"
            )
        partition[fields[0]] = int(fields[1])
    return path, partition


def load_celeba(config: DataConfig, root: Path) -> ImageData:
    """CelebA from the aligned JPEGs in ``root/img_align_celeba``: ``(N, 3, 64, 64)``."""
    folder = _celeba_folder(root)
    if not folder.is_dir():
        raise _missing(
            "CelebA",
            "celeba",
            root,
            [f"{CELEBA_FOLDER}/ (the aligned *.jpg images from img_align_celeba.zip)"],
        )
    files = celeba_files(folder)
    if not files:
        raise DataError(f"CelebA: {folder} holds no *.jpg images")
    if config.split == "official":
        partition_path, partition = _read_partition(root, folder)
        unlisted = [path.name for path in files if path.name not in partition]
        if unlisted:
            raise DataError(
                f"{partition_path}: no partition for {len(unlisted)} image(s) of {folder}, e.g. "
                f"{unlisted[0]}"
            )
        train_files = [path for path in files if partition[path.name] == 0]
        test_files = [path for path in files if partition[path.name] == 2]
        num_train, num_test = official_counts(
            len(train_files),
            len(test_files),
            config.num_train,
            config.num_test,
            f"{folder} (partition 0 of {partition_path.name})",
            f"{folder} (partition 2 of {partition_path.name})",
        )
        chosen_train, chosen_test = train_files[:num_train], test_files[:num_test]
    else:
        num_train, num_test = split_counts(len(files), config.num_train, config.num_test, folder)
        chosen_train = files[:num_train]
        chosen_test = files[num_train : num_train + num_test]
    shape = (3, CELEBA_SIZE, CELEBA_SIZE)
    train = check_images(read_celeba_images(chosen_train), shape, folder)
    test = check_images(read_celeba_images(chosen_test), shape, folder)
    return ImageData(_to_unit_float(train, folder), _to_unit_float(test, folder), "celeba")
