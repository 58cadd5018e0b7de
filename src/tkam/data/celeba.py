"""CelebA: the aligned JPEG folder, the partition file and their downloads (maths 6).

The aligned images ``img_align_celeba/*.jpg`` (178x218) are read in sorted file-name order and
resized directly (no crop) to 64x64 with PIL's bilinear filter (which antialiases when shrinking),
then uint8 / 255: ``(N, 3, 64, 64)`` float32. Only as many files as the split needs are decoded.
The official split takes its training and test images from ``list_eval_partition.txt``
(partition 0 and 2). CelebA has no class labels. Downloads: the authors' Google Drive files, with
their published MD5 sums (Drive may ask for confirmation: then they are placed by hand).
:func:`check_celeba` checks the files cheaply for ``tkam data list``: the folder is not empty, the
first few images the split reads are JPEGs that end with their end marker, and the partition file
parses and names every image; no image is decoded.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from tkam.config import DataConfig
from tkam.data import types as dt
from tkam.data.pixels import check_images, to_unit_float
from tkam.data.splits import take_official, take_split
from tkam.data.types import DataError, DatasetInfo, ImageData, MalformedFileError, RemoteFile

__all__ = [
    "CELEBA",
    "CELEBA_FOLDER",
    "CELEBA_PARTITION",
    "CELEBA_SIZE",
    "SOURCES",
    "celeba_files",
    "check_celeba",
    "inspect_jpeg",
    "load_celeba",
    "read_celeba_images",
    "read_partition",
]

CELEBA_FOLDER = "img_align_celeba"
CELEBA_PARTITION = "list_eval_partition.txt"
CELEBA_SIZE = 64
#: Every JPEG starts with SOI and the next marker's 0xFF, and ends with EOI (0xFFD9).
_JPEG_START = b"\xff\xd8\xff"
_JPEG_END = b"\xff\xd9"
#: The bytes searched for EOI at a JPEG's end (some writers pad after it).
_JPEG_TAIL = 64
#: The images :func:`check_celeba` inspects at the start of each part of a split.
_SAMPLED = 3
#: The longest partition file read whole (CelebA's, 202,599 lines, is 2.8 MB); of a longer one
#: only the start is parsed.
_PARTITION_LIMIT = 8 << 20
_PARTITION_LINE = "expected '<file name> <0|1|2>'"


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
            try:
                inspect_jpeg(path)
            except MalformedFileError as problem:
                raise problem from error
            except OSError:
                pass
            raise DataError(
                f"{path}: not a readable image ({type(error).__name__}: {error})"
            ) from error
        out[index] = np.asarray(rgb, dtype=np.uint8).transpose(2, 0, 1)
    return out


def inspect_jpeg(path: str | Path) -> int:
    """Check a JPEG cheaply, without decoding it: its first bytes (SOI, 0xFFD8FF) and its end
    marker (EOI, 0xFFD9, within its last 64 bytes: a file cut short lacks it).

    Returns:
        the file's size.

    Raises:
        MalformedFileError: ``empty``, ``not a JPEG file``, ``truncated``.
        OSError: when the file cannot be read.
    """
    path = Path(path)
    head, tail, size = dt.read_ends(path, len(_JPEG_START), tail=_JPEG_TAIL)
    if head != _JPEG_START:
        detail = f"starts with {dt.show_bytes(head)}, a JPEG with 0x{_JPEG_START.hex().upper()}"
        raise MalformedFileError("not a JPEG file", path, detail)
    if _JPEG_END not in tail:
        detail = (
            f"has {size} bytes and no end-of-image marker 0xFFD9 in its last {_JPEG_TAIL}; it "
            f"ends with {dt.show_bytes(tail[-4:], 4)}"
        )
        raise MalformedFileError("truncated", path, detail)
    return size


def _parse_partition(path: Path, text: str, complete: bool = True) -> dict[str, int]:
    """Image name -> partition of the lines of a partition file (``complete``: ``text`` is all of
    it; else its last, possibly cut, line is skipped).

    Raises:
        MalformedFileError: ``not a partition file`` (a line that is not
            ``<file name> <0|1|2>``, with its number), ``truncated`` (the last line, cut short).
    """
    lines = text.splitlines()
    if not complete:
        lines = lines[:-1]
    partition: dict[str, int] = {}
    for number, line in enumerate(lines, start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2 or fields[1] not in ("0", "1", "2"):
            detail = f"line {number}: {_PARTITION_LINE}, found {line.strip()!r}"
            if complete and number == len(lines) and not text.endswith(("\n", "\r")):
                raise MalformedFileError("truncated", path, f"its last {detail}")
            raise MalformedFileError("not a partition file", path, detail)
        partition[fields[0]] = int(fields[1])
    return partition


def _read_partition_text(path: Path, limit: int | None = None) -> tuple[str, bool]:
    """The text of a partition file (its first ``limit`` bytes) and whether that is all of it.

    Raises:
        MalformedFileError: ``empty``, ``not a text file`` (NUL bytes, or not UTF-8).
        OSError: when the file cannot be read.
    """
    with path.open("rb") as handle:
        data = handle.read() if limit is None else handle.read(limit + 1)
    complete = limit is None or len(data) <= limit
    data = data if complete else data[:limit]
    if not data.strip():
        raise MalformedFileError("empty", path, f"{len(data)} bytes, no lines")
    if b"\x00" in data:
        detail = f"NUL byte at byte {data.index(0)}; {_PARTITION_LINE} on each line"
        raise MalformedFileError("not a text file", path, detail)
    try:
        text = data.decode("utf-8", errors="strict" if complete else "ignore")
    except UnicodeDecodeError as error:
        detail = f"not UTF-8: byte {error.start}: {error.reason}"
        raise MalformedFileError("not a text file", path, detail) from error
    return text, complete


def find_partition(root: Path, folder: Path) -> Path | None:
    """``list_eval_partition.txt`` in ``root``, ``root/Eval`` or beside the image folder (None:
    in none of them)."""
    candidates = [root / CELEBA_PARTITION, root / "Eval" / CELEBA_PARTITION]
    candidates.append(folder.parent / CELEBA_PARTITION)
    return next((candidate for candidate in candidates if candidate.is_file()), None)


def read_partition(root: Path, folder: Path) -> tuple[Path, dict[str, int]]:
    """The official partition: ``list_eval_partition.txt`` in ``root``, ``root/Eval`` or beside
    the image folder.

    Returns:
        the file read and image name -> 0 (train), 1 (validation) or 2 (test).

    Raises:
        DataError: when the file is missing, unreadable, or a line is not
            ``<file name> <0|1|2>`` (naming the file and line).
    """
    path = find_partition(root, folder)
    if path is None:
        raise DataError(
            f"CelebA official split: {CELEBA_PARTITION} not found in {root} (nor in {root}/Eval); "
            f"it assigns each image to train (0), validation (1) or test (2). Place it there or "
            f'use data.split = "spec".'
        )
    try:
        text, _ = _read_partition_text(path)
    except OSError as error:
        raise DataError(f"cannot read {path}: {error}") from error
    return path, _parse_partition(path, text)


def _unlisted(partition_path: Path, partition: dict[str, int], files: list[Path]) -> None:
    """Check that the partition names every image (else the official split is undefined).

    Raises:
        MalformedFileError: ``incomplete``, with the number of images it lacks and one of them.
    """
    unlisted = [path.name for path in files if path.name not in partition]
    if unlisted:
        folder = files[0].parent
        detail = (
            f"no partition for {len(unlisted)} of the {len(files)} images in {folder.name}, e.g. "
            f"{unlisted[0]}; it lists {len(partition)}"
        )
        raise MalformedFileError("incomplete", partition_path, detail)


def _inspect_partition(path: Path, files: list[Path]) -> None:
    """Check the partition file the official split reads: text, every line
    ``<file name> <0|1|2>``, every image listed (the start of a file over 8 MiB only), and the
    first few test images (partition 2) JPEGs.

    Raises:
        MalformedFileError: ``empty``, ``not a text file``, ``not a partition file``,
            ``truncated``, ``incomplete``, or what :func:`inspect_jpeg` finds in a test image.
    """
    text, complete = _read_partition_text(path, _PARTITION_LIMIT)
    partition = _parse_partition(path, text, complete)
    if not partition:
        raise MalformedFileError("empty", path, "only blank lines")
    if complete:
        _unlisted(path, partition, files)
    tests = [image for image in files if partition.get(image.name) == 2]
    for image in tests[:_SAMPLED]:
        inspect_jpeg(image)


def check_celeba(root: Path, split: str = "spec") -> list[str]:
    """The problems of the files a split reads (``tkam data list``; see
    :func:`~tkam.data.types.file_problems`): the image folder (not empty, its first few images
    JPEGs that end with their end marker), and for ``split = "official"`` the partition file
    (every line ``<file name> <0|1|2>``, every image listed) and its first few test images."""
    folder = _celeba_folder(root)
    files: list[Path] = []

    def inspect_folder(path: Path) -> None:
        if not path.is_dir():
            raise MalformedFileError("not a folder", path, "expected the aligned *.jpg images")
        files.extend(celeba_files(path))
        if not files:
            raise MalformedFileError("empty", path, "no *.jpg images")
        for image in files[:_SAMPLED]:  # the first images the loader reads
            inspect_jpeg(image)

    problems = dt.file_problems(root, [folder], inspect_folder)
    partition = find_partition(root, folder) if split == "official" else None
    if partition is not None and files:
        problems += dt.file_problems(
            root, [partition], lambda path: _inspect_partition(path, files)
        )
    return problems


def load_celeba(config: DataConfig, root: Path) -> ImageData:
    """CelebA from the aligned JPEGs in ``root/img_align_celeba`` (or ``root`` itself).

    Returns:
        ``(N, 3, 64, 64)`` float32 training and test images.
    """
    folder = _celeba_folder(root)
    if not folder.is_dir():
        raise dt.missing_files_error(
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
        _unlisted(partition_path, partition, files)
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
    check=check_celeba,
)
