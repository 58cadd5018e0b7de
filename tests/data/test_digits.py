"""scikit-learn's digits (:mod:`tkam.data.digits`): bundled, offline, with labels and no official
split (maths 6)."""

from __future__ import annotations

import pytest
import torch

from tkam.config import DataConfig
from tkam.data import DataError, load_dataset
from tkam.data.digits import DIGITS, digits_labels


def test_digits_loads_offline() -> None:
    from sklearn.datasets import load_digits

    data = load_dataset(DataConfig(name="digits", num_train=1000, num_test=50))
    assert data.name == "digits" and data.image_shape == (1, 8, 8)
    assert data.train.shape == (1000, 1, 8, 8) and data.test.shape == (50, 1, 8, 8)
    assert data.train.dtype == torch.float32
    assert float(data.train.min()) == 0.0 and float(data.train.max()) == 1.0
    raw = torch.from_numpy(load_digits().images).float()
    torch.testing.assert_close(data.test[:, 0], raw[1000:1050] / 16.0)

    everything = load_dataset(DataConfig(name="digits"))  # num_train=0, num_test=100
    assert (len(everything.train), len(everything.test)) == (1797 - 100, 100)


def test_digits_has_no_official_split() -> None:
    with pytest.raises(DataError, match="no official test split"):
        load_dataset(DataConfig(name="digits", split="official"))


def test_digits_labels_and_declaration(tmp_path) -> None:
    from sklearn.datasets import load_digits

    assert digits_labels(tmp_path, 5).tolist() == load_digits().target.tolist()
    assert DIGITS.kind == "builtin" and DIGITS.labels is digits_labels
    assert not DIGITS.sources and not DIGITS.files
    assert "bundled" in DIGITS.no_download(None)
