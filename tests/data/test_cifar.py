"""CIFAR-10 (:mod:`tkam.data.cifar`): the pickle batches and their errors, the cheap check ``tkam
data list`` runs, the splits, the labels and the declared download, on small fixture batches in the
real format (maths 6)."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.data.helpers import (
    as_unit,
    cut_in_half,
    load_error,
    png_bytes,
    random_bytes,
    rgb_images,
    smoke_fit,
    write_cifar_batch,
)
from tkam.config import DataConfig
from tkam.data import DataError, load_dataset
from tkam.data.cifar import (
    CIFAR10,
    CIFAR_TEST_BATCH,
    CIFAR_TRAIN_BATCHES,
    SOURCES,
    check_cifar,
    inspect_cifar_batch,
    read_cifar_batch,
    read_cifar_labels,
)


def test_cifar_reads_batches_in_order_and_only_those_needed(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-10-batches-py"
    first, second = rgb_images(6, seed=3), rgb_images(6, seed=4)
    # One image with a pure red plane: the channel order of the 3072 values must survive.
    first[1] = 0
    first[1, 0] = 255
    write_cifar_batch(folder / "data_batch_1", first)
    write_cifar_batch(folder / "data_batch_2", second)  # batches 3..5 absent: not needed
    data = load_dataset(DataConfig(name="cifar10", root=str(tmp_path), num_train=8, num_test=3))
    assert data.name == "cifar10" and data.image_shape == (3, 32, 32)
    assert data.train.shape == (8, 3, 32, 32) and data.test.shape == (3, 3, 32, 32)
    both = np.concatenate([first, second])
    torch.testing.assert_close(data.train, as_unit(both[:8]), rtol=0, atol=0)
    torch.testing.assert_close(data.test, as_unit(both[8:11]), rtol=0, atol=0)
    assert float(data.train[1, 0].min()) == 1.0 and float(data.train[1, 1:].max()) == 0.0


def test_cifar_missing_batch_lists_the_files(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar_batch(folder / "data_batch_1", rgb_images(4))
    # num_train = 0: every training batch is needed.
    message = load_error(DataConfig(name="cifar10", root=str(tmp_path), num_train=0, num_test=2))
    assert "data_batch_2" in message and "data_batch_5" in message and str(folder) in message
    assert "data_batch_1," not in message


def test_cifar_official_split_uses_test_batch(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-10-batches-py"
    train, test = rgb_images(5, seed=5), rgb_images(4, seed=6)
    write_cifar_batch(folder / "data_batch_1", train)
    write_cifar_batch(folder / "test_batch", test)
    config = DataConfig(
        name="cifar10", root=str(tmp_path), num_train=5, num_test=2, split="official"
    )
    data = load_dataset(config)
    torch.testing.assert_close(data.train, as_unit(train), rtol=0, atol=0)
    torch.testing.assert_close(data.test, as_unit(test[:2]), rtol=0, atol=0)


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({b"data": np.zeros((4, 3071), dtype=np.uint8)}, r"\(N, 3072\).*\(4, 3071\)"),
        ({b"data": np.zeros((4, 3072), dtype=np.float32)}, "uint8"),
        ({b"data": np.zeros(3072, dtype=np.uint8)}, r"\(3072,\)"),
    ],
)
def test_cifar_wrong_data_raises(tmp_path: Path, overrides, match) -> None:
    path = write_cifar_batch(tmp_path / "data_batch_1", rgb_images(4), overrides)
    with pytest.raises(DataError, match=match) as info:  # the root itself holds the batches
        load_dataset(DataConfig(name="cifar10", root=str(tmp_path), num_train=2, num_test=1))
    assert str(path) in str(info.value)


def test_cifar_truncated_or_foreign_pickle_raises(tmp_path: Path) -> None:
    path = write_cifar_batch(tmp_path / "data_batch_1", rgb_images(4))
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(DataError, match="truncated .*not the pickle STOP opcode") as info:
        load_dataset(DataConfig(name="cifar10", root=str(tmp_path), num_train=2, num_test=1))
    assert str(path) in str(info.value)
    with path.open("wb") as handle:
        pickle.dump([1, 2, 3], handle)
    with pytest.raises(DataError, match="expected a pickled dict"):
        load_dataset(DataConfig(name="cifar10", root=str(tmp_path), num_train=2, num_test=1))
    with path.open("wb") as handle:
        pickle.dump({b"labels": [1]}, handle)
    with pytest.raises(DataError, match="'data' entry"):
        load_dataset(DataConfig(name="cifar10", root=str(tmp_path), num_train=2, num_test=1))


# ---------------------------------------------------------------------------------------------
# The cheap check: inspect_cifar_batch, check_cifar

FOLDER = "cifar-10-batches-py"


def _write_batches(root: Path, count: int = 5) -> list[Path]:
    """The five training batches (``count`` images each) in the nested folder."""
    return [
        write_cifar_batch(root / FOLDER / name, rgb_images(count, seed=i))
        for i, name in enumerate(CIFAR_TRAIN_BATCHES)
    ]


@pytest.mark.parametrize("protocol", [0, 1, 2, 4, 5])
def test_check_cifar_accepts_batches_of_any_pickle_protocol(tmp_path: Path, protocol) -> None:
    paths = _write_batches(tmp_path)
    assert check_cifar(tmp_path) == [] and check_cifar(tmp_path, "official") == []
    with paths[0].open("wb") as handle:
        pickle.dump({b"data": rgb_images(2).reshape(2, 3072), b"labels": [1, 2]}, handle, protocol)
    assert inspect_cifar_batch(paths[0]) == paths[0].stat().st_size
    assert check_cifar(tmp_path) == []
    assert len(read_cifar_batch(paths[0])) == 2  # what the check accepts, the loader reads
    assert CIFAR10.check is check_cifar


def test_check_cifar_reports_a_batch_cut_in_half(tmp_path: Path) -> None:
    path = _write_batches(tmp_path)[2]
    length = cut_in_half(path)
    (problem,) = check_cifar(tmp_path)
    assert problem.startswith(f"truncated: {FOLDER}/data_batch_3 (has {length // 2} bytes and ends")
    assert (
        "not the pickle STOP opcode 0x2E; the official data_batch_3 has 31035999 bytes" in problem
    )


def test_cifar_loader_names_the_truncated_batch(tmp_path: Path) -> None:
    path = _write_batches(tmp_path)[0]
    cut_in_half(path)
    message = load_error(DataConfig(name="cifar10", root=str(tmp_path), num_train=1, num_test=1))
    assert message.startswith(f"{path}: truncated (has ")


@pytest.mark.parametrize("content", [png_bytes(), random_bytes()], ids=["png", "random"])
def test_check_cifar_reports_a_foreign_file(tmp_path: Path, content: bytes) -> None:
    path = _write_batches(tmp_path)[0]
    path.write_bytes(content)
    (problem,) = check_cifar(tmp_path)
    start = f"not a pickle file: {FOLDER}/data_batch_1 (starts with 0x{content[:2].hex().upper()};"
    assert problem.startswith(start)
    message = load_error(DataConfig(name="cifar10", root=str(tmp_path), num_train=1, num_test=1))
    assert message.startswith(f"{path}: not a pickle file (starts with 0x")


def test_check_cifar_reports_pickles_of_other_things(tmp_path: Path) -> None:
    path = _write_batches(tmp_path)[0]
    with path.open("wb") as handle:
        pickle.dump(list(range(5000)), handle, protocol=2)
    (problem,) = check_cifar(tmp_path)
    assert problem.startswith(f"not a pickled dict: {FOLDER}/data_batch_1 (ends with 0x652E,")
    with path.open("wb") as handle:
        pickle.dump({b"labels": [1]}, handle, protocol=2)  # a dict, but not one image's bytes
    (problem,) = check_cifar(tmp_path)
    assert problem.startswith(f"too small: {FOLDER}/data_batch_1 (has {path.stat().st_size} bytes")
    path.write_bytes(b"")
    assert check_cifar(tmp_path) == [f"empty: {FOLDER}/data_batch_1 (0 bytes)"]


def test_check_cifar_follows_the_folder_the_loader_reads(tmp_path: Path) -> None:
    # The batches directly in the root: named without the folder.
    for i, name in enumerate(CIFAR_TRAIN_BATCHES):
        write_cifar_batch(tmp_path / name, rgb_images(2, seed=i))
    (tmp_path / CIFAR_TEST_BATCH).write_bytes(b"\x80\x02}q\x00(U\x04data")  # cut short
    assert check_cifar(tmp_path) == []
    (problem,) = check_cifar(tmp_path, "official")
    assert problem.startswith("truncated: test_batch (has 12 bytes and ends with 0x7461,")
    assert "the official test_batch has 31035526 bytes" in problem


def test_cifar_labels_follow_the_batches_the_loader_reads(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar_batch(folder / "data_batch_1", rgb_images(3), {b"labels": [7, 8, 9]})
    assert read_cifar_labels(tmp_path, 3).tolist() == [7, 8, 9]
    assert read_cifar_labels(tmp_path, 4) is None  # data_batch_2 is missing
    write_cifar_batch(folder / "data_batch_2", rgb_images(2), {b"labels": [1, 2]})
    assert read_cifar_labels(tmp_path, 4).tolist() == [7, 8, 9, 1, 2]
    (folder / "data_batch_2").write_bytes(b"truncated pickle")
    assert read_cifar_labels(tmp_path, 4) is None
    assert CIFAR10.labels is read_cifar_labels


def test_cifar_declares_the_archive_and_what_it_unpacks_to() -> None:
    (archive,) = SOURCES
    assert archive.name == "cifar-10-python.tar.gz" and archive.unpack and len(archive.md5) == 32
    batches = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    assert archive.provides == tuple(f"cifar-10-batches-py/{name}" for name in batches)
    assert CIFAR10.sources == SOURCES


def test_training_runs_on_cifar10(tmp_path: Path) -> None:
    write_cifar_batch(tmp_path / "cifar-10-batches-py" / "data_batch_1", rgb_images(12))
    smoke_fit(tmp_path, name="cifar10", root=str(tmp_path), num_train=10, num_test=2)
