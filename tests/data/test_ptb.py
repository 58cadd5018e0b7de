"""Penn Treebank (:mod:`tkam.data.ptb`): the vocabulary, one-hot sentences, the splits, the errors,
the declared downloads and a training run with the sequence generator (spec sections 1.3, 6)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tests.data.helpers import PTB_TEST, PTB_TRAIN, write_ptb
from tests.helpers import tiny_config
from tkam.config import DataConfig
from tkam.data import DataError, load_dataset, ptb
from tkam.data.ptb import (
    PTB,
    SOURCES,
    build_vocabulary,
    encode_sentences,
    one_hot,
    read_sentences,
)
from tkam.train import fit


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
    root = write_ptb(tmp_path)
    monkeypatch.setattr(ptb, "MAX_ONE_HOT_BYTES", 1000)
    with pytest.raises(DataError, match="sequence_length"):
        load_dataset(DataConfig(name="ptb", root=str(root), num_train=3, num_test=1))


def test_text_helpers_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "ptb.test.txt"
    path.write_text(PTB_TEST)
    assert read_sentences(path)[0] == ["the", "zebra", "sat"]
    hot = one_hot(np.array([[2, 0, 1]]), 4)
    assert hot.shape == (1, 4, 3) and hot[0].argmax(dim=0).tolist() == [2, 0, 1]


def test_ptb_declares_the_three_text_files() -> None:
    assert [remote.name for remote in SOURCES] == ["ptb.train.txt", "ptb.valid.txt", "ptb.test.txt"]
    assert all(remote.sha256 is None and remote.md5 is None for remote in SOURCES)  # none published
    assert PTB.sources == SOURCES and PTB.labels is None


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
