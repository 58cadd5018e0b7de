"""CIFAR-10 (:mod:`tkam.data.cifar`): the pickle batches and their errors, the splits, the labels
and the declared download, on small fixture batches in the real format (spec section 6)."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.data.helpers import as_unit, load_error, rgb_images, smoke_fit, write_cifar_batch
from tkam.config import DataConfig
from tkam.data import DataError, load_dataset
from tkam.data.cifar import CIFAR10, SOURCES, read_cifar_labels


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
    with pytest.raises(DataError, match="not a readable CIFAR-10") as info:
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
