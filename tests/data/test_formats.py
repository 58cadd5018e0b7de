"""SVHN (.mat), CIFAR-10 (pickle batches), CelebA (JPEG folder) and Penn Treebank (text) loaders on
small fixture files in each real format, through the public ``load_dataset`` (spec section 6)."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch

from tests.data.test_images import FMNIST_ROOT, TRAIN_IMAGES, fixture_images, write_idx
from tests.helpers import tiny_config
from tkam.config import ConfigError, DataConfig
from tkam.data import DataError, load_dataset, missing_files
from tkam.data.text import build_vocabulary, encode_sentences, one_hot, read_sentences
from tkam.train import fit


def rgb_images(count: int, size: int = 32, seed: int = 0) -> np.ndarray:
    """``(count, 3, size, size)`` uint8 with the extremes 0 and 255 present."""
    images = np.random.default_rng(seed).integers(0, 256, (count, 3, size, size), dtype=np.uint8)
    images[0, 0, 0, 0], images[0, 0, 0, 1] = 0, 255
    return images


def as_unit(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images.astype(np.float32) / 255.0)


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


# ---------------------------------------------------------------------------------------------
# SVHN


def write_svhn(path: Path, images: np.ndarray) -> Path:
    """An SVHN-style .mat: X is (32, 32, 3, N) uint8, y the (unused) labels."""
    labels = np.arange(1, len(images) + 1, dtype=np.uint8)[:, None] % 10 + 1
    scipy.io.savemat(path, {"X": images.transpose(2, 3, 1, 0), "y": labels})
    return path


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
    with pytest.raises(DataError) as info:
        load_dataset(DataConfig(name="svhn", root=str(tmp_path), num_train=1, num_test=1))
    assert str(path) in str(info.value)


def test_svhn_missing_files_say_what_to_place_where(tmp_path: Path) -> None:
    with pytest.raises(DataError) as info:
        load_dataset(DataConfig(name="svhn", root=str(tmp_path), split="official"))
    message = str(info.value)
    assert "train_32x32.mat" in message and "test_32x32.mat" in message
    assert str(tmp_path) in message and "tkam data download svhn" in message


def test_svhn_split_larger_than_file_raises(tmp_path: Path) -> None:
    path = write_svhn(tmp_path / "train_32x32.mat", rgb_images(5))
    with pytest.raises(DataError, match="5 images") as info:
        load_dataset(DataConfig(name="svhn", root=str(tmp_path), num_train=4, num_test=2))
    assert str(path) in str(info.value)


# ---------------------------------------------------------------------------------------------
# CIFAR-10


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
    with pytest.raises(DataError) as info:  # num_train = 0: every training batch is needed
        load_dataset(DataConfig(name="cifar10", root=str(tmp_path), num_train=0, num_test=2))
    message = str(info.value)
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


# ---------------------------------------------------------------------------------------------
# CelebA

# Solid colours survive JPEG compression almost exactly, so the decoded values can be checked.
COLOURS = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255), (0, 0, 0), (128, 64, 32)]


def write_celeba(folder: Path, count: int, size: tuple[int, int] = (30, 37)) -> list[tuple]:
    """``count`` solid-colour JPEGs (width x height ``size``), written in reverse name order."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    colours = [COLOURS[i % len(COLOURS)] for i in range(count)]
    for index in reversed(range(count)):
        Image.new("RGB", size, colours[index]).save(folder / f"{index + 1:06d}.jpg", quality=95)
    return colours


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
    with pytest.raises(DataError) as info:
        load_dataset(DataConfig(name="celeba", root=str(folder), num_train=1, num_test=1))
    assert str(path) in str(info.value)


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
    with pytest.raises(DataError) as info:
        load_dataset(DataConfig(name="celeba", root=str(tmp_path)))
    message = str(info.value)
    assert "img_align_celeba" in message and str(tmp_path) in message


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


def test_vocabulary_is_the_most_frequent_training_words() -> None:
    sentences = [line.split() for line in PTB_TRAIN.splitlines() if line.strip()]
    vocabulary = build_vocabulary(sentences, 3)
    # the: 8, cat: 4, dog: 3 (<unk> is never a vocabulary word).
    assert vocabulary.words == ("the", "cat", "dog")
    assert len(vocabulary) == 5 and (vocabulary.pad, vocabulary.unk) == (3, 4)
    assert vocabulary.index("<unk>") == vocabulary.unk == vocabulary.index("zebra")
    codes = encode_sentences([["the", "zebra", "cat"], ["dog"] * 9], vocabulary, 4)
    np.testing.assert_array_equal(codes, [[0, 4, 1, 3], [2, 2, 2, 2]])
    big = build_vocabulary(sentences, 100)  # fewer distinct words than slots
    assert len(big) == 102 and big.pad == 100


def test_ptb_one_hot_shapes_and_values(tmp_path: Path) -> None:
    root = write_ptb(tmp_path)
    config = DataConfig(
        name="ptb", root=str(root), num_train=3, num_test=1, vocab_size=3, sequence_length=6
    )
    data = load_dataset(config)
    assert data.name == "ptb" and data.image_shape == (5, 6)
    assert data.train.shape == (3, 5, 6) and data.test.shape == (1, 5, 6)
    assert data.train.dtype == torch.float32
    assert torch.all(data.train.sum(dim=1) == 1.0) and set(data.train.unique().tolist()) == {0, 1}
    # Blank lines are skipped: the test sentence is "the end of the story ..." truncated to 6.
    tokens = data.test[0].argmax(dim=0).tolist()
    assert tokens == [0, 4, 4, 0, 4, 4]  # the, end->unk, of->unk, the, story->unk, is->unk
    # "the dog sat on the log <unk>" -> 7 tokens truncated to 6; "a cat and a dog" padded.
    assert data.train[1].argmax(dim=0).tolist() == [0, 2, 4, 4, 0, 4]
    assert data.train[2].argmax(dim=0).tolist() == [4, 1, 4, 4, 2, 3]


def test_ptb_official_split_reads_the_test_file(tmp_path: Path) -> None:
    root = write_ptb(tmp_path)
    config = DataConfig(
        name="ptb",
        root=str(root),
        num_train=0,
        num_test=0,
        vocab_size=3,
        sequence_length=4,
        split="official",
    )
    data = load_dataset(config)
    assert len(data.train) == 5 and len(data.test) == 2
    assert data.test[0].argmax(dim=0).tolist() == [0, 4, 4, 3]
    assert data.test[1].argmax(dim=0).tolist() == [2, 2, 2, 2]


def test_ptb_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="ptb.train.txt") as info:
        load_dataset(DataConfig(name="ptb", root=str(tmp_path)))
    assert "tkam data download ptb" in str(info.value)
    path = tmp_path / "ptb.train.txt"
    path.write_bytes(b"\x1f\x8b\x08\x00\xff\xfe binary")
    with pytest.raises(DataError, match="not a UTF-8 text file") as info:
        load_dataset(DataConfig(name="ptb", root=str(tmp_path)))
    assert str(path) in str(info.value)
    path.write_text("\n\n")
    with pytest.raises(DataError, match="no sentences"):
        load_dataset(DataConfig(name="ptb", root=str(tmp_path)))


def test_ptb_refuses_a_one_hot_tensor_too_large_to_build(tmp_path: Path, monkeypatch) -> None:
    import tkam.data.text as text

    root = write_ptb(tmp_path)
    monkeypatch.setattr(text, "MAX_ONE_HOT_BYTES", 1000)
    with pytest.raises(DataError, match="sequence_length"):
        load_dataset(DataConfig(name="ptb", root=str(root), num_train=3, num_test=1))


def test_text_helpers_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "ptb.test.txt"
    path.write_text(PTB_TEST)
    assert read_sentences(path)[0] == ["the", "zebra", "sat"]
    hot = one_hot(np.array([[2, 0, 1]]), 4)
    assert hot.shape == (1, 4, 3) and hot[0].argmax(dim=0).tolist() == [2, 0, 1]


# ---------------------------------------------------------------------------------------------
# Shared behaviour


def test_split_and_text_settings_are_validated() -> None:
    with pytest.raises(ConfigError, match="split"):
        DataConfig(split="test")
    with pytest.raises(ConfigError, match="vocab_size"):
        DataConfig(vocab_size=0)
    with pytest.raises(ConfigError, match="sequence_length"):
        DataConfig(sequence_length=0)
    assert DataConfig(split=" Official ").split == "official"


def test_digits_has_no_official_split() -> None:
    with pytest.raises(DataError, match="no official test split"):
        load_dataset(DataConfig(name="digits", split="official"))


def test_idx_official_split_reads_t10k(tmp_path: Path) -> None:
    train, test = fixture_images(10, seed=1), fixture_images(6, seed=2)
    write_idx(tmp_path / f"{TRAIN_IMAGES}.gz", train)
    config = DataConfig(name="mnist", root=str(tmp_path), num_train=7, num_test=4, split="official")
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte"):
        load_dataset(config)
    write_idx(tmp_path / "t10k-images-idx3-ubyte", test)
    data = load_dataset(config)
    expected = torch.from_numpy(test[:4].astype(np.float32) / 255.0)[:, None]
    torch.testing.assert_close(data.test, expected, rtol=0, atol=0)
    assert len(data.train) == 7


def test_missing_files_reports_per_split(tmp_path: Path) -> None:
    write_svhn(tmp_path / "train_32x32.mat", rgb_images(2))
    assert missing_files("svhn", tmp_path) == []
    assert missing_files("svhn", tmp_path, "official") == ["test_32x32.mat"]
    assert missing_files("ptb", tmp_path) == ["ptb.train.txt"]
    assert missing_files("cifar10", tmp_path)[0] == "cifar-10-batches-py/data_batch_1"


# ---------------------------------------------------------------------------------------------
# Training smoke runs on the fixture data


def test_training_runs_on_svhn(tmp_path: Path) -> None:
    write_svhn(tmp_path / "train_32x32.mat", rgb_images(12))
    smoke_fit(tmp_path, name="svhn", root=str(tmp_path), num_train=10, num_test=2)


def test_training_runs_on_cifar10(tmp_path: Path) -> None:
    write_cifar_batch(tmp_path / "cifar-10-batches-py" / "data_batch_1", rgb_images(12))
    smoke_fit(tmp_path, name="cifar10", root=str(tmp_path), num_train=10, num_test=2)


def test_training_runs_on_celeba(tmp_path: Path) -> None:
    write_celeba(tmp_path / "img_align_celeba", 6)
    smoke_fit(tmp_path, name="celeba", root=str(tmp_path), num_train=4, num_test=2)


@pytest.mark.skipif(not FMNIST_ROOT.is_dir(), reason="dataset-fashion-mnist is not installed")
def test_training_runs_on_debian_fashion_mnist(tmp_path: Path) -> None:
    smoke_fit(tmp_path, name="fmnist", num_train=40, num_test=10)


def test_ptb_trains_with_the_sequence_generator(tmp_path: Path) -> None:
    # Text end to end: the one-hot loader, the sequence generator and the categorical likelihood,
    # with a Langevin posterior (the reference trains text with autoMALA).
    root = write_ptb(tmp_path)
    config = tiny_config(
        prior={"widths": [3, 7], "basis": "rbf", "grid_size": 4},
        generator={"kind": "sequence", "widths": [7], "d_model": 8},
        posterior={"sampler": "automala", "steps": 3},
        data={
            "name": "ptb",
            "root": str(root),
            "num_train": 3,
            "num_test": 1,
            "vocab_size": 3,
            "sequence_length": 6,
        },
        train={"batch_size": 3, "max_steps": 3, "log_every": 3},
    )
    fit(config, tmp_path / "run", progress=False)
    rows = (tmp_path / "run" / "loss.csv").read_text().splitlines()[1:]
    assert [row.split(",")[5] for row in rows] == ["1", "3"]
    assert all(float(row.split(",")[2]) == float(row.split(",")[2]) for row in rows)
    tokens = (tmp_path / "run" / "samples" / "step_000003.txt").read_text().split()
    assert tokens and all(0 <= int(t) < 5 for t in tokens)
