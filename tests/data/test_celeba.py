"""CelebA (:mod:`tkam.data.celeba`): the JPEG folder, the resize, the partition file and the
declared downloads, on small fixture images (spec section 6)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.data.helpers import load_error, smoke_fit, write_celeba
from tkam.config import DataConfig
from tkam.data import DataError, load_dataset
from tkam.data.celeba import CELEBA, SOURCES


def test_celeba_resizes_to_64_in_file_name_order(tmp_path: Path) -> None:
    colours = write_celeba(tmp_path / "img_align_celeba", 5)
    (tmp_path / "img_align_celeba" / "README.txt").write_text("not an image, not a *.jpg")
    data = load_dataset(DataConfig(name="celeba", root=str(tmp_path), num_train=3, num_test=2))
    assert data.name == "celeba" and data.image_shape == (3, 64, 64)
    assert data.train.shape == (3, 3, 64, 64) and data.test.shape == (2, 3, 64, 64)
    assert data.train.dtype == torch.float32
    assert 0.0 <= float(data.train.min()) and float(data.train.max()) <= 1.0
    means = torch.cat([data.train, data.test]).mean(dim=(2, 3))  # (5, 3)
    expected = torch.tensor(colours, dtype=torch.float32) / 255.0
    torch.testing.assert_close(means, expected, rtol=0, atol=4 / 255)


def test_celeba_reads_only_the_files_the_split_needs(tmp_path: Path) -> None:
    folder = tmp_path / "img_align_celeba"
    write_celeba(folder, 4)
    bad = folder / "000005.jpg"
    bad.write_bytes(b"this is a text file named like a JPEG")
    data = load_dataset(DataConfig(name="celeba", root=str(tmp_path), num_train=3, num_test=1))
    assert len(data.train) == 3 and len(data.test) == 1
    with pytest.raises(DataError, match="not a readable image") as info:
        load_dataset(DataConfig(name="celeba", root=str(tmp_path), num_train=0, num_test=1))
    assert str(bad) in str(info.value)


def test_celeba_truncated_jpeg_raises(tmp_path: Path) -> None:
    folder = tmp_path / "img_align_celeba"
    write_celeba(folder, 2, size=(60, 70))
    path = folder / "000002.jpg"
    path.write_bytes(path.read_bytes()[:200])
    message = load_error(DataConfig(name="celeba", root=str(folder), num_train=1, num_test=1))
    assert str(path) in message


def test_celeba_official_split_follows_the_partition_file(tmp_path: Path) -> None:
    colours = write_celeba(tmp_path / "img_align_celeba", 6)
    partition = ["0", "1", "2", "0", "2", "1"]
    lines = [f"{i + 1:06d}.jpg {p}" for i, p in enumerate(partition)]
    (tmp_path / "list_eval_partition.txt").write_text("\n".join(lines) + "\n")
    config = DataConfig(
        name="celeba", root=str(tmp_path), num_train=0, num_test=0, split="official"
    )
    data = load_dataset(config)
    assert len(data.train) == 2 and len(data.test) == 2
    expected = torch.tensor(colours, dtype=torch.float32) / 255.0
    torch.testing.assert_close(data.train.mean(dim=(2, 3)), expected[[0, 3]], rtol=0, atol=4 / 255)
    torch.testing.assert_close(data.test.mean(dim=(2, 3)), expected[[2, 4]], rtol=0, atol=4 / 255)
    (tmp_path / "list_eval_partition.txt").write_text("000001.jpg train\n")
    with pytest.raises(DataError, match="line 1"):
        load_dataset(config)


def test_celeba_missing_folder_says_what_to_place(tmp_path: Path) -> None:
    message = load_error(DataConfig(name="celeba", root=str(tmp_path)))
    assert "img_align_celeba" in message and str(tmp_path) in message


def test_celeba_declares_the_images_and_the_partition_and_no_labels() -> None:
    images, partition = SOURCES
    assert images.name == "img_align_celeba.zip" and images.unpack
    assert images.provides == ("img_align_celeba",)
    assert partition.name == "list_eval_partition.txt" and not partition.unpack
    assert all(len(remote.md5) == 32 for remote in SOURCES)
    assert CELEBA.sources == SOURCES and CELEBA.labels is None


def test_training_runs_on_celeba(tmp_path: Path) -> None:
    write_celeba(tmp_path / "img_align_celeba", 6)
    smoke_fit(tmp_path, name="celeba", root=str(tmp_path), num_train=4, num_test=2)
