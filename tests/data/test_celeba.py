"""CelebA (:mod:`tkam.data.celeba`): the JPEG folder, the resize, the partition file, the cheap
check ``tkam data list`` runs and the declared downloads, on small fixture images (maths
6)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.data.helpers import (
    cut_in_half,
    load_error,
    png_bytes,
    random_bytes,
    smoke_fit,
    write_celeba,
)
from tkam.config import DataConfig
from tkam.data import DataError, load_dataset
from tkam.data.celeba import CELEBA, SOURCES, check_celeba, inspect_jpeg


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
    with pytest.raises(DataError, match="not a JPEG file") as info:
        load_dataset(DataConfig(name="celeba", root=str(tmp_path), num_train=0, num_test=1))
    assert str(bad) in str(info.value)


def test_celeba_truncated_jpeg_raises(tmp_path: Path) -> None:
    folder = tmp_path / "img_align_celeba"
    write_celeba(folder, 2, size=(60, 70))
    path = folder / "000002.jpg"
    path.write_bytes(path.read_bytes()[:200])
    message = load_error(DataConfig(name="celeba", root=str(folder), num_train=1, num_test=1))
    assert message.startswith(f"{path}: truncated (has 200 bytes and no end-of-image marker")


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


# ---------------------------------------------------------------------------------------------
# The cheap check: inspect_jpeg, check_celeba

FOLDER = "img_align_celeba"
PARTITION = "list_eval_partition.txt"


def _write_partition(root: Path, parts: list[str]) -> Path:
    lines = [f"{i + 1:06d}.jpg {part}" for i, part in enumerate(parts)]
    path = root / PARTITION
    path.write_text("\n".join(lines) + "\n")
    return path


def test_check_celeba_accepts_the_fixture_without_decoding(tmp_path: Path) -> None:
    write_celeba(tmp_path / FOLDER, 6)
    assert inspect_jpeg(tmp_path / FOLDER / "000001.jpg") > 0
    assert check_celeba(tmp_path) == [] and check_celeba(tmp_path, "official") == []
    _write_partition(tmp_path, ["0", "1", "2", "0", "2", "1"])
    assert check_celeba(tmp_path, "official") == []
    assert check_celeba(tmp_path / FOLDER) == []  # the root may be the image folder itself
    assert CELEBA.check is check_celeba


def test_check_celeba_reports_a_jpeg_cut_in_half(tmp_path: Path) -> None:
    write_celeba(tmp_path / FOLDER, 4, size=(60, 70))
    path = tmp_path / FOLDER / "000001.jpg"
    length = cut_in_half(path)
    (problem,) = check_celeba(tmp_path)
    assert problem.startswith(f"truncated: {FOLDER}/000001.jpg (has {length // 2} bytes and no")
    assert "end-of-image marker 0xFFD9" in problem
    message = load_error(DataConfig(name="celeba", root=str(tmp_path), num_train=1, num_test=1))
    assert message.startswith(f"{path}: truncated (has {length // 2} bytes")


@pytest.mark.parametrize("content", [png_bytes(), random_bytes()], ids=["png", "random"])
def test_check_celeba_reports_a_foreign_file_named_jpg(tmp_path: Path, content: bytes) -> None:
    write_celeba(tmp_path / FOLDER, 4)
    (tmp_path / FOLDER / "000002.jpg").write_bytes(content)
    (problem,) = check_celeba(tmp_path)
    magic = content[:3].hex().upper()
    assert (
        problem
        == f"not a JPEG file: {FOLDER}/000002.jpg (starts with 0x{magic}, a JPEG with 0xFFD8FF)"
    )


def test_check_celeba_reports_an_empty_folder_or_a_file_in_its_place(tmp_path: Path) -> None:
    (tmp_path / FOLDER).mkdir()
    (tmp_path / FOLDER / "notes.txt").write_text("no images here")
    assert check_celeba(tmp_path) == [f"empty: {FOLDER} (no *.jpg images)"]
    (tmp_path / FOLDER / "notes.txt").unlink()
    (tmp_path / FOLDER).rmdir()
    (tmp_path / FOLDER).write_bytes(b"PK\x03\x04")  # the archive, not unpacked
    (problem,) = check_celeba(tmp_path)
    assert problem.startswith(f"not a folder: {FOLDER} (")


def test_check_celeba_official_checks_the_partition_file(tmp_path: Path) -> None:
    write_celeba(tmp_path / FOLDER, 6)
    path = _write_partition(tmp_path, ["0", "1", "2", "0", "2", "1"])
    text = path.read_text()
    path.write_text(text[: 3 * 13 + 6])  # cut inside line 4 (each line has 13 characters)
    assert check_celeba(tmp_path) == []  # the spec split does not read it
    assert check_celeba(tmp_path, "official") == [
        f"truncated: {PARTITION} (its last line 4: expected '<file name> <0|1|2>', found '000004')"
    ]
    path.write_text(text[: 3 * 13])  # cut after line 3: complete lines, images unlisted
    assert check_celeba(tmp_path, "official") == [
        f"incomplete: {PARTITION} (no partition for 3 of the 6 images in {FOLDER}, e.g. "
        "000004.jpg; it lists 3)"
    ]
    config = DataConfig(name="celeba", root=str(tmp_path), split="official", num_test=1)
    assert load_error(config).startswith(f"{path}: incomplete (no partition for 3 of the 6")
    path.write_bytes(png_bytes())
    (problem,) = check_celeba(tmp_path, "official")
    assert problem.startswith(f"not a text file: {PARTITION} (NUL byte at byte ")
    path.write_bytes(b"\xff\xfe" + random_bytes(100).replace(b"\x00", b"1"))
    (problem,) = check_celeba(tmp_path, "official")
    assert problem.startswith(f"not a text file: {PARTITION} (not UTF-8: byte 0")
    path.write_text("000001.jpg train\n")
    assert check_celeba(tmp_path, "official") == [
        f"not a partition file: {PARTITION} (line 1: expected '<file name> <0|1|2>', found "
        "'000001.jpg train')"
    ]
    path.write_text("\n \n")
    assert check_celeba(tmp_path, "official") == [f"empty: {PARTITION} (3 bytes, no lines)"]


def test_check_celeba_official_samples_the_test_images(tmp_path: Path) -> None:
    write_celeba(tmp_path / FOLDER, 8)
    _write_partition(tmp_path, ["0"] * 6 + ["2", "2"])
    cut_in_half(tmp_path / FOLDER / "000007.jpg")  # the first test image, not among the first
    assert check_celeba(tmp_path) == []
    (problem,) = check_celeba(tmp_path, "official")
    assert problem.startswith(f"truncated: {FOLDER}/000007.jpg (")


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
