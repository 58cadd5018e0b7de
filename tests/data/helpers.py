"""Small files in each data set's real format, written for the tests; damaged copies of them (cut
in half, foreign bytes); the message of a load that fails and the status ``tkam data list`` shows;
and a two-step training run on a data set (the smoke test every format's tests share)."""

from __future__ import annotations

import gzip
import io
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image

from tests.helpers import tiny_config
from tkam.cli import main
from tkam.config import DataConfig
from tkam.data import DataError, load_dataset
from tkam.train import fit

FMNIST_ROOT = Path("/usr/share/datasets/fashion-mnist")

# ---------------------------------------------------------------------------------------------
# IDX

# IDX type codes by numpy dtype, for the writer below.
IDX_CODES = {
    np.dtype(np.uint8): 0x08,
    np.dtype(np.int8): 0x09,
    np.dtype(np.int16): 0x0B,
    np.dtype(np.int32): 0x0C,
    np.dtype(np.float32): 0x0D,
    np.dtype(np.float64): 0x0E,
}


def idx_bytes(array: np.ndarray) -> bytes:
    """Encode ``array`` in the IDX format: magic, big-endian int32 sizes, big-endian values."""
    header = bytes([0, 0, IDX_CODES[array.dtype], array.ndim])
    sizes = struct.pack(f">{array.ndim}i", *array.shape)
    return header + sizes + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_idx(path: Path, array: np.ndarray, compress: bool | None = None) -> Path:
    """Write an IDX file, gzip-compressed when ``compress`` (default: when named ``.gz``)."""
    data = idx_bytes(array)
    if compress if compress is not None else path.suffix == ".gz":
        data = gzip.compress(data)
    path.write_bytes(data)
    return path


def fixture_images(count: int, seed: int = 0) -> np.ndarray:
    """``(count, 28, 28)`` uint8 images that include the extremes 0 and 255."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(count, 28, 28), dtype=np.uint8)
    images[0, 0, 0], images[0, 0, 1] = 0, 255
    return images


# ---------------------------------------------------------------------------------------------
# Colour images: SVHN, CIFAR-10, CelebA


def rgb_images(count: int, size: int = 32, seed: int = 0) -> np.ndarray:
    """``(count, 3, size, size)`` uint8 with the extremes 0 and 255 present."""
    images = np.random.default_rng(seed).integers(0, 256, (count, 3, size, size), dtype=np.uint8)
    images[0, 0, 0, 0], images[0, 0, 0, 1] = 0, 255
    return images


def as_unit(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images.astype(np.float32) / 255.0)


def write_svhn(path: Path, images: np.ndarray) -> Path:
    """An SVHN-style .mat: X is (32, 32, 3, N) uint8, y the labels 1..10 (10 meaning 0)."""
    labels = np.arange(1, len(images) + 1, dtype=np.uint8)[:, None] % 10 + 1
    scipy.io.savemat(path, {"X": images.transpose(2, 3, 1, 0), "y": labels})
    return path


def write_cifar_batch(path: Path, images: np.ndarray, overrides: dict | None = None) -> Path:
    """A CIFAR-10 python batch: bytes keys, data (N, 3072) uint8 as R, G, B planes row-major."""
    path.parent.mkdir(parents=True, exist_ok=True)
    batch = {
        b"batch_label": b"fixture",
        b"labels": list(range(len(images))),
        b"data": images.reshape(len(images), 3 * 32 * 32),
        b"filenames": [b"x.png"] * len(images),
    }
    batch.update(overrides or {})
    with path.open("wb") as handle:
        pickle.dump(batch, handle, protocol=2)
    return path


# Solid colours survive JPEG compression almost exactly, so the decoded values can be checked.
COLOURS = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255), (0, 0, 0), (128, 64, 32)]


def write_celeba(folder: Path, count: int, size: tuple[int, int] = (30, 37)) -> list[tuple]:
    """``count`` solid-colour JPEGs (width x height ``size``), written in reverse name order."""
    folder.mkdir(parents=True, exist_ok=True)
    colours = [COLOURS[i % len(COLOURS)] for i in range(count)]
    for index in reversed(range(count)):
        Image.new("RGB", size, colours[index]).save(folder / f"{index + 1:06d}.jpg", quality=95)
    return colours


# ---------------------------------------------------------------------------------------------
# Penn Treebank

PTB_TRAIN = """ the cat sat on the mat
 the dog sat on the log <unk>
 a cat and a dog

 the end of the story is near the end
 cat dog cat
"""
PTB_TEST = """ the zebra sat
 dog dog dog dog dog dog dog dog
"""


def write_ptb(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "ptb.train.txt").write_text(PTB_TRAIN)
    (root / "ptb.valid.txt").write_text(" the valid line\n")
    (root / "ptb.test.txt").write_text(PTB_TEST)
    return root


# ---------------------------------------------------------------------------------------------
# Damaged files


def cut_in_half(path: Path) -> int:
    """Truncate a file to half its length; returns the original length."""
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return len(data)


def png_bytes() -> bytes:
    """A small valid PNG: a foreign file under another format's name."""
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), (10, 20, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def random_bytes(count: int = 4096, seed: int = 0) -> bytes:
    """``count`` random bytes (no format's magic number, with overwhelming probability)."""
    return np.random.default_rng(seed).bytes(count)


def list_status(root: Path, name: str, capsys: pytest.CaptureFixture) -> str:
    """The status ``tkam data list --root root`` shows for data set ``name`` (after its root)."""
    assert main(["data", "list", "--root", str(root)]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.split()[0] == name]
    assert len(lines) == 1, lines
    return lines[0].split(f"  {root}  ", 1)[1]


# ---------------------------------------------------------------------------------------------
# Loading and training


def load_error(config: DataConfig) -> str:
    """The message of the :class:`DataError` that ``load_dataset(config)`` must raise."""
    with pytest.raises(DataError) as info:
        load_dataset(config)
    return str(info.value)


def smoke_fit(tmp_path: Path, **data) -> None:
    """Two training steps on a data set; the run folder must hold a model and a finite loss.

    The generator is narrowed (7 -> 4 -> C*H*W) and its grid kept fixed: the least-squares grid
    fits of a KAN layer with thousands of outputs would otherwise dominate the test's time.
    """
    config = tiny_config(
        data=data,
        generator={"widths": [7, 4], "update_grid": False},
        train={"max_steps": 2, "log_every": 2, "num_plot_samples": 4},
    )
    fit(config, tmp_path / "run", progress=False)
    assert (tmp_path / "run" / "model.safetensors").is_file()
    rows = (tmp_path / "run" / "loss.csv").read_text().splitlines()
    assert len(rows) == 3 and all(np.isfinite(float(row.split(",")[2])) for row in rows[1:])
