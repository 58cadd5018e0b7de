"""Penn Treebank (:mod:`tkam.data.ptb`): the vocabulary, one-hot sentences, the splits, the errors,
the cheap check ``tkam data list`` runs, the declared downloads and a training run with the
sequence generator (maths 1.3, 6)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tests.data.helpers import (
    PTB_TEST,
    PTB_TRAIN,
    cut_in_half,
    load_error,
    png_bytes,
    random_bytes,
    write_ptb,
)
from tests.helpers import tiny_config
from tkam.config import DataConfig
from tkam.data import DataError, load_dataset, ptb
from tkam.data.ptb import (
    PTB,
    SOURCES,
    build_vocabulary,
    check_ptb,
    encode_sentences,
    inspect_ptb_text,
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


# ---------------------------------------------------------------------------------------------
# The cheap check: inspect_ptb_text, check_ptb

TRAIN = "ptb.train.txt"


def test_check_ptb_accepts_the_fixture(tmp_path: Path) -> None:
    root = write_ptb(tmp_path)
    assert inspect_ptb_text(root / TRAIN) == len(PTB_TRAIN.encode())
    assert check_ptb(root) == [] and check_ptb(root, "official") == []
    assert PTB.check is check_ptb


def test_check_ptb_reports_a_file_cut_in_half_mid_line(tmp_path: Path) -> None:
    root = write_ptb(tmp_path)
    length = cut_in_half(root / TRAIN)
    assert PTB_TRAIN.encode()[: length // 2].endswith(b"\n a cat ")  # inside line 3
    assert check_ptb(root) == [
        f"truncated: {TRAIN} (has {length // 2} bytes and ends mid-line with 0x20, not a "
        "newline; every sentence ends with one)"
    ]
    # The loader reads what there is: a cut text is still sentences.
    config = DataConfig(name="ptb", root=str(root), num_train=2, num_test=1, vocab_size=3)
    assert len(load_dataset(config).train) == 2


@pytest.mark.parametrize("content", [png_bytes(), random_bytes()], ids=["png", "random"])
def test_check_ptb_reports_a_foreign_file(tmp_path: Path, content: bytes) -> None:
    root = write_ptb(tmp_path)
    (root / TRAIN).write_bytes(content)
    (problem,) = check_ptb(root)
    assert problem.startswith(f"not a UTF-8 text file: {TRAIN} (byte ")
    assert "invalid start byte" in problem
    message = load_error(DataConfig(name="ptb", root=str(root)))
    assert message.startswith(f"{root / TRAIN}: not a UTF-8 text file (byte ")


def test_check_ptb_reports_nul_bytes_and_empty_files(tmp_path: Path) -> None:
    root = write_ptb(tmp_path)
    (root / TRAIN).write_bytes(b" the cat\x00\x00 sat\n")
    assert check_ptb(root) == [
        f"not a text file: {TRAIN} (NUL byte at byte 8; expected one sentence per line)"
    ]
    assert load_error(DataConfig(name="ptb", root=str(root))).startswith(
        f"{root / TRAIN}: not a text file (holds NUL bytes"
    )
    (root / TRAIN).write_text("\n \n")
    assert check_ptb(root) == [f"empty: {TRAIN} (3 bytes, no sentences)"]
    (root / TRAIN).write_bytes(b"")
    assert check_ptb(root) == [f"empty: {TRAIN} (0 bytes)"]


def test_check_ptb_decodes_only_the_start_of_a_long_file(tmp_path: Path) -> None:
    # 64 KiB are decoded: a character cut at that boundary is no error, later bytes are unread.
    root = write_ptb(tmp_path)
    text = ("x" * (64 * 1024 - 1) + "é\n").encode() + b"\xff\xfe binary later\n"
    (root / TRAIN).write_bytes(text)
    assert check_ptb(root) == []


def test_check_ptb_checks_the_test_file_for_the_official_split(tmp_path: Path) -> None:
    root = write_ptb(tmp_path)
    (root / "ptb.test.txt").write_bytes(png_bytes())
    assert check_ptb(root) == []
    (problem,) = check_ptb(root, "official")
    assert problem.startswith("not a UTF-8 text file: ptb.test.txt (byte 0: invalid start byte")


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
