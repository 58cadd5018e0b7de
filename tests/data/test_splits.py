"""The split rules (:mod:`tkam.data.splits`): zero as "all remaining", the official split, and the
split settings of ``DataConfig`` (maths 6)."""

from __future__ import annotations

import numpy as np
import pytest

from tkam.config import ConfigError, DataConfig
from tkam.data import DataError, official_counts, split_counts
from tkam.data.splits import no_official_split, take_official, take_split


def test_split_counts_resolves_zero_as_all_remaining() -> None:
    assert split_counts(100, 0, 10, "x") == (90, 10)
    assert split_counts(100, 60, 0, "x") == (60, 40)
    assert split_counts(100, 0, 0, "x") == (100, 0)
    assert split_counts(100, 60, 40, "x") == (60, 40)
    with pytest.raises(DataError, match="101"):
        split_counts(100, 61, 40, "x")


def test_official_counts_name_the_file_that_is_short() -> None:
    assert official_counts(10, 4, 0, 0, "train", "test") == (10, 4)
    assert official_counts(10, 4, 3, 2, "train", "test") == (3, 2)
    with pytest.raises(DataError, match="test: num_test = 5 exceeds the 4 items"):
        official_counts(10, 4, 3, 5, "train", "test")


def test_take_split_and_take_official_slice_arrays_and_lists() -> None:
    config = DataConfig(num_train=3, num_test=2)
    train, test = take_split(np.arange(10), config, "x")
    assert train.tolist() == [0, 1, 2] and test.tolist() == [3, 4]
    train, test = take_split(list("abcdef"), config, "x")
    assert (train, test) == (["a", "b", "c"], ["d", "e"])
    train, test = take_official(list("abcd"), list("xyz"), config, "a", "b")
    assert (train, test) == (["a", "b", "c"], ["x", "y"])
    assert "no official test split" in str(no_official_split("digits"))


def test_split_and_text_settings_are_validated() -> None:
    with pytest.raises(ConfigError, match="split"):
        DataConfig(split="test")
    with pytest.raises(ConfigError, match="vocab_size"):
        DataConfig(vocab_size=0)
    with pytest.raises(ConfigError, match="sequence_length"):
        DataConfig(sequence_length=0)
    assert DataConfig(split=" Official ").split == "official"
