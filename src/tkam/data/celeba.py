"""CelebA: the aligned JPEG folder, the partition file and their downloads (spec section 6).

The aligned images ``img_align_celeba/*.jpg`` (178x218) are read in sorted file-name order and
resized directly (no crop) to 64x64 with PIL's bilinear filter (which antialiases when shrinking),
then uint8 / 255: ``(N, 3, 64, 64)`` float32. Only as many files as the split needs are decoded.
The official split takes its training and test images from ``list_eval_partition.txt``
(partition 0 and 2). CelebA has no class labels. Downloads: the authors' Google Drive files, with
their published MD5 sums (Drive may ask for confirmation: then they are placed by hand).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from tkam.config import DataConfig
from tkam.data.pixels import check_images, to_unit_float
from tkam.data.splits import take_official, take_split
from tkam.data.types import DataError, DatasetInfo, ImageData, RemoteFile, missing_files_error

__all__ = [
    "CELEBA",
    "CELEBA_FOLDER",
    "CELEBA_PARTITION",
    "CELEBA_SIZE",
    "SOURCES",
    "celeba_files",
    "load_celeba",
    "read_celeba_images",
    "read_partition",
]

CELEBA_FOLDER = "img_align_celeba"
CELEBA_PARTITION = "list_eval_partition.txt"
CELEBA_SIZE = 64


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


def read_partition(root: Path, folder: Path) -> tuple[Path, dict[str, int]]:
    """The official partition: ``list_eval_partition.txt`` in ``root``, ``root/Eval`` or beside
    the image folder.

    Returns:
        the file read and image name -> 0 (train), 1 (validation) or 2 (test).

    Raises:
        DataError: when the file is missing, unreadable, or a line is not
            ``<file name> <0|1|2>`` (naming the file and line).
    """
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
    """CelebA from the aligned JPEGs in ``root/img_align_celeba`` (or ``root`` itself).

    Returns:
        ``(N, 3, 64, 64)`` float32 training and test images.
    """
    folder = _celeba_folder(root)
    if not folder.is_dir():
        raise missing_files_error(
            "CelebA",
            "celeba",
            root,
            [f"{CELEBA_FOLDER}/ (the aligned *.jpg images from img_align_celeba.zip)"],
        )
    files = celeba_files(folder)
    if not files:
        raise DataError(f"CelebA: {folder} holds no *.jpg images")
    if config.split == "official":
        partition_path, partition = read_partition(root, folder)
        unlisted = [path.name for path in files if path.name not in partition]
        if unlisted:
            raise DataError(
                f"{partition_path}: no partition for {len(unlisted)} image(s) of {folder}, e.g. "
                f"{unlisted[0]}"
            )
        train_files = [path for path in files if partition[path.name] == 0]
        test_files = [path for path in files if partition[path.name] == 2]
        chosen_train, chosen_test = take_official(
            train_files,
            test_files,
            config,
            f"{folder} (partition 0 of {partition_path.name})",
            f"{folder} (partition 2 of {partition_path.name})",
        )
    else:
        chosen_train, chosen_test = take_split(files, config, folder)
    shape = (3, CELEBA_SIZE, CELEBA_SIZE)
    train = check_images(read_celeba_images(chosen_train), shape, folder)
    test = check_images(read_celeba_images(chosen_test), shape, folder)
    return ImageData(to_unit_float(train, folder), to_unit_float(test, folder), "celeba")


_DRIVE = "https://drive.google.com/uc?export=download&id="
#: The files ``tkam data download celeba`` fetches (the image archive is unpacked).
SOURCES = (
    RemoteFile(
        f"{CELEBA_FOLDER}.zip",
        (_DRIVE + "0B7EVK8r0v71pZjFTYXZWM3FlRnM",),
        md5="00d2c5bc6d35e252742224ab0c1e8fcb",
        provides=(CELEBA_FOLDER,),
        unpack=True,
    ),
    RemoteFile(
        CELEBA_PARTITION,
        (_DRIVE + "0B7EVK8r0v71pY0NSMzRuSXJEVkk",),
        md5="d32c9cbf5e040fd4025c592c306e6668",
    ),
)
CELEBA = DatasetInfo(
    "celeba",
    "CelebA",
    "image",
    ((f"{CELEBA_FOLDER}/",),),
    ((CELEBA_PARTITION, f"Eval/{CELEBA_PARTITION}"),),
    load_celeba,
    sources=SOURCES,
)
