"""SVHN (:mod:`tkam.data.svhn`): the ``.mat`` reader and its errors, the cheap check ``tkam data
list`` runs, the splits, the labels and the declared downloads, on small fixture files in the real
format (maths 6)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch

from tests.data.helpers import (
    as_unit,
    cut_in_half,
    load_error,
    png_bytes,
    random_bytes,
    rgb_images,
    smoke_fit,
    write_svhn,
)
from tkam.config import DataConfig
from tkam.data import DataError, load_dataset
from tkam.data.svhn import SOURCES, SVHN, check_svhn, inspect_svhn_mat, read_svhn_labels
from tkam.data.types import MalformedFileError

TRAIN = "train_32x32.mat"


def test_svhn_spec_split_shapes_and_values(tmp_path: Path) -> None:
    images = rgb_images(12)
    write_svhn(tmp_path / "train_32x32.mat", images)
    data = load_dataset(DataConfig(name="svhn", root=str(tmp_path), num_train=8, num_test=3))
    assert data.name == "svhn" and data.image_shape == (3, 32, 32)
    assert data.train.shape == (8, 3, 32, 32) and data.test.shape == (3, 3, 32, 32)
    assert data.train.dtype == torch.float32
    assert float(data.train.min()) == 0.0 and float(data.train.max()) == 1.0
    torch.testing.assert_close(data.train, as_unit(images[:8]), rtol=0, atol=0)
    torch.testing.assert_close(data.test, as_unit(images[8:11]), rtol=0, atol=0)


def test_svhn_official_split_reads_the_test_file(tmp_path: Path) -> None:
    train, test = rgb_images(6, seed=1), rgb_images(5, seed=2)
    write_svhn(tmp_path / "train_32x32.mat", train)
    write_svhn(tmp_path / "test_32x32.mat", test)
    config = DataConfig(name="svhn", root=str(tmp_path), num_train=4, num_test=0, split="official")
    data = load_dataset(config)
    torch.testing.assert_close(data.train, as_unit(train[:4]), rtol=0, atol=0)
    torch.testing.assert_close(data.test, as_unit(test), rtol=0, atol=0)  # 0 = the whole file


@pytest.mark.parametrize(
    ("contents", "match"),
    [
        ({"Y": np.zeros((32, 32, 3, 2), dtype=np.uint8)}, "'X'"),
        ({"X": np.zeros((28, 28, 1, 2), dtype=np.uint8)}, r"\(28, 28, 1, 2\)"),
        ({"X": np.zeros((32, 32, 3, 2), dtype=np.float64)}, "uint8"),
    ],
)
def test_svhn_wrong_contents_raise_naming_the_file(tmp_path: Path, contents, match) -> None:
    path = tmp_path / "train_32x32.mat"
    scipy.io.savemat(path, contents)
    with pytest.raises(DataError, match=match) as info:
        load_dataset(DataConfig(name="svhn", root=str(tmp_path), num_train=1, num_test=1))
    assert str(path) in str(info.value)


@pytest.mark.parametrize("cut", [None, 300])
def test_svhn_corrupt_or_truncated_file_raises(tmp_path: Path, cut: int | None) -> None:
    path = tmp_path / "train_32x32.mat"
    if cut is None:
        path.write_bytes(b"this is not a MATLAB file" * 10)
    else:
        write_svhn(path, rgb_images(4))
        path.write_bytes(path.read_bytes()[:cut])
    message = load_error(DataConfig(name="svhn", root=str(tmp_path), num_train=1, num_test=1))
    assert message.startswith(f"{path}: " + ("not a MATLAB file" if cut is None else "truncated"))


# ---------------------------------------------------------------------------------------------
# The cheap check: inspect_svhn_mat, check_svhn


def _mat_header(version: int = 0x0100, text: bytes = b"MATLAB 5.0 MAT-file, test") -> bytes:
    """A 128-byte MATLAB header: text, subsystem offset, version, little-endian indicator."""
    return text.ljust(116, b" ") + bytes(8) + version.to_bytes(2, "little") + b"IM"


@pytest.mark.parametrize("compress", [False, True])
def test_check_svhn_accepts_the_fixture_reading_headers_only(tmp_path: Path, compress) -> None:
    images = rgb_images(5).transpose(2, 3, 1, 0)
    labels = np.arange(1, 6, dtype=np.uint8)[:, None]
    path = tmp_path / TRAIN
    scipy.io.savemat(path, {"X": images, "y": labels}, do_compression=compress)
    assert inspect_svhn_mat(path) == 5
    assert check_svhn(tmp_path) == [] and check_svhn(tmp_path, "official") == []
    assert SVHN.check is check_svhn


@pytest.mark.parametrize("compress", [False, True])
def test_check_svhn_reports_a_file_cut_in_half_with_sizes(tmp_path: Path, compress) -> None:
    path = tmp_path / TRAIN
    images = rgb_images(6).transpose(2, 3, 1, 0)
    scipy.io.savemat(path, {"X": images, "y": np.ones((6, 1), np.uint8)}, do_compression=compress)
    length = cut_in_half(path)
    (problem,) = check_svhn(tmp_path)
    # X, the first data element after the 128-byte header, declares more than the file holds.
    assert problem.startswith(f"truncated: {TRAIN} (has {length // 2} bytes, data element 1 ")
    assert "(at byte 128) declares" in problem
    message = load_error(DataConfig(name="svhn", root=str(tmp_path), num_train=1, num_test=1))
    assert message.startswith(f"{path}: truncated (has {length // 2} bytes")


def test_check_svhn_reports_a_header_or_tag_cut_short(tmp_path: Path) -> None:
    (tmp_path / TRAIN).write_bytes(_mat_header()[:60])
    assert check_svhn(tmp_path) == [
        f"truncated: {TRAIN} (has 60 bytes, the MATLAB header alone needs 128)"
    ]
    (tmp_path / TRAIN).write_bytes(_mat_header() + b"\x0e\x00")  # a tag cut short
    (problem,) = check_svhn(tmp_path)
    assert problem.startswith(f"truncated: {TRAIN} (has 130 bytes, which end inside the tag")


@pytest.mark.parametrize("content", [png_bytes(), random_bytes()], ids=["png", "random"])
def test_check_svhn_reports_a_foreign_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / TRAIN
    path.write_bytes(content)
    (problem,) = check_svhn(tmp_path)
    magic = content[:8].hex().upper()
    assert problem.startswith(f"not a MATLAB file: {TRAIN} (starts with 0x{magic}..., expected")
    message = load_error(DataConfig(name="svhn", root=str(tmp_path), num_train=1, num_test=1))
    assert message.startswith(f"{path}: not a MATLAB file (starts with 0x{magic}")


def test_check_svhn_reports_matlab_7_3_which_scipy_cannot_read(tmp_path: Path) -> None:
    text = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, HDF5 schema 1.00 ."
    header = _mat_header(0x0200, text) + bytes(384) + b"\x89HDF\r\n\x1a\n"
    (tmp_path / TRAIN).write_bytes(header)
    (problem,) = check_svhn(tmp_path)
    assert problem.startswith(f"unsupported MATLAB version: {TRAIN} (a MATLAB 7.3 (HDF5) file")


def test_check_svhn_reports_an_empty_file(tmp_path: Path) -> None:
    (tmp_path / TRAIN).write_bytes(b"")
    assert check_svhn(tmp_path) == [f"empty: {TRAIN} (0 bytes)"]


@pytest.mark.parametrize(
    ("contents", "expected"),
    [
        ({"Y": np.zeros((32, 32, 3, 2), np.uint8)}, "missing variable: {} (no variable 'X'"),
        ({"X": np.zeros((28, 28, 1, 2), np.uint8)}, "wrong shape: {} (expected 'X' of shape"),
        (
            {"X": np.zeros((32, 32, 3, 2))},
            "wrong type: {} (expected 'X' of type uint8, found double",
        ),
    ],
)
def test_check_svhn_reads_the_variables_headers(tmp_path: Path, contents, expected) -> None:
    scipy.io.savemat(tmp_path / TRAIN, contents)
    (problem,) = check_svhn(tmp_path)
    assert problem.startswith(expected.format(TRAIN))


def test_check_svhn_checks_the_test_file_for_the_official_split(tmp_path: Path) -> None:
    write_svhn(tmp_path / TRAIN, rgb_images(2))
    (tmp_path / "test_32x32.mat").write_bytes(png_bytes())
    assert check_svhn(tmp_path) == []
    (problem,) = check_svhn(tmp_path, "official")
    assert problem.startswith("not a MATLAB file: test_32x32.mat (")


def test_inspect_svhn_mat_raises_the_error_the_loader_shows(tmp_path: Path) -> None:
    path = tmp_path / TRAIN
    path.write_bytes(b"MATLAB 5.0 MAT-file")
    with pytest.raises(MalformedFileError) as info:
        inspect_svhn_mat(path)
    assert info.value.kind == "truncated" and info.value.path == path


def test_svhn_missing_files_say_what_to_place_where(tmp_path: Path) -> None:
    message = load_error(DataConfig(name="svhn", root=str(tmp_path), split="official"))
    assert "train_32x32.mat" in message and "test_32x32.mat" in message
    assert str(tmp_path) in message and "tkam data download svhn" in message


def test_svhn_split_larger_than_file_raises(tmp_path: Path) -> None:
    path = write_svhn(tmp_path / "train_32x32.mat", rgb_images(5))
    with pytest.raises(DataError, match="5 images") as info:
        load_dataset(DataConfig(name="svhn", root=str(tmp_path), num_train=4, num_test=2))
    assert str(path) in str(info.value)


def test_svhn_labels_map_10_to_0(tmp_path: Path) -> None:
    assert read_svhn_labels(tmp_path, 2) is None  # no file
    write_svhn(tmp_path / "train_32x32.mat", rgb_images(12))
    labels = read_svhn_labels(tmp_path, 12)
    assert labels.tolist() == [2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2, 3]  # y = 2..10, 1..3
    scipy.io.savemat(tmp_path / "train_32x32.mat", {"X": np.zeros((32, 32, 3, 1), np.uint8)})
    assert read_svhn_labels(tmp_path, 1) is None  # no y
    (tmp_path / "train_32x32.mat").write_bytes(b"not a MATLAB file")
    assert read_svhn_labels(tmp_path, 1) is None
    assert SVHN.labels is read_svhn_labels


def test_svhn_declares_both_mat_files_with_their_md5() -> None:
    assert [remote.name for remote in SOURCES] == ["train_32x32.mat", "test_32x32.mat"]
    assert all(len(remote.md5) == 32 and remote.urls[0].endswith(remote.name) for remote in SOURCES)
    assert SVHN.sources == SOURCES


def test_training_runs_on_svhn(tmp_path: Path) -> None:
    write_svhn(tmp_path / "train_32x32.mat", rgb_images(12))
    smoke_fit(tmp_path, name="svhn", root=str(tmp_path), num_train=10, num_test=2)
