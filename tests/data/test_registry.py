"""The registry (:mod:`tkam.data.registry`): names to formats, data roots, the files a loader would
miss, the labels dispatch, and that every format's declared downloads supply the files its loader
reads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.data.helpers import FMNIST_ROOT, load_error, rgb_images, write_cifar_batch, write_svhn
from tkam.config import DataConfig
from tkam.data import (
    DATASETS,
    dataset_info,
    default_root,
    missing_files,
    training_labels,
)
from tkam.data.registry import FORMATS


def test_unknown_name_lists_the_choices() -> None:
    message = load_error(DataConfig(name="svhn-typo"))
    assert "svhn-typo" in message
    assert all(choice in message for choice in ("digits", "mnist", "fmnist"))


def test_every_name_maps_to_the_format_that_declares_it() -> None:
    assert DATASETS == ("mnist", "fmnist", "digits", "svhn", "cifar10", "celeba", "darcy", "ptb")
    for name in DATASETS:
        assert dataset_info(name) is FORMATS[name] and FORMATS[name].name == name
    assert dataset_info(" SVHN ").name == "svhn"


def test_default_roots() -> None:
    assert default_root("digits") is None
    assert default_root("svhn") == Path("~/.cache/tkam/svhn").expanduser()
    expected = FMNIST_ROOT if FMNIST_ROOT.is_dir() else Path("~/.cache/tkam/fmnist").expanduser()
    assert default_root("fmnist") == expected


def test_missing_files_reports_per_split(tmp_path: Path) -> None:
    write_svhn(tmp_path / "train_32x32.mat", rgb_images(2))
    assert missing_files("svhn", tmp_path) == []
    assert missing_files("svhn", tmp_path, "official") == ["test_32x32.mat"]
    assert missing_files("ptb", tmp_path) == ["ptb.train.txt"]
    assert missing_files("cifar10", tmp_path)[0] == "cifar-10-batches-py/data_batch_1"
    # Darcy's root may be the file itself.
    assert missing_files("darcy", tmp_path) == ["darcy_32.h5"]
    assert missing_files("darcy", tmp_path / "fields.h5") == ["fields.h5"]


@pytest.mark.parametrize("name", [name for name in DATASETS if FORMATS[name].sources])
def test_declared_downloads_supply_every_file_the_loader_reads(name: str) -> None:
    info = FORMATS[name]
    supplied = set()
    for remote in info.sources:
        supplied.update((remote.name, *remote.provides, *remote.alternatives))
    for alternatives in info.files + info.official_files:
        assert any(path.rstrip("/") in supplied for path in alternatives), alternatives


def test_training_labels_dispatch_to_the_format(tmp_path: Path) -> None:
    assert training_labels(DataConfig(name="darcy", root=str(tmp_path)), 1) is None  # unlabelled
    assert training_labels(DataConfig(name="svhn", root=str(tmp_path / "no")), 1) is None
    write_svhn(tmp_path / "train_32x32.mat", rgb_images(4))
    labels = training_labels(DataConfig(name="svhn", root=str(tmp_path)), 3)
    assert labels.dtype == np.int64 and labels.tolist() == [2, 3, 4]
    assert training_labels(DataConfig(name="svhn", root=str(tmp_path)), 5) is None  # too few
    write_cifar_batch(tmp_path / "cifar-10-batches-py" / "data_batch_1", rgb_images(3))
    assert training_labels(DataConfig(name="cifar10", root=str(tmp_path)), 2).tolist() == [0, 1]
    # digits are built in: a data.root plays no part.
    digits = training_labels(DataConfig(name="digits", root=str(tmp_path / "no")), 4)
    assert digits is not None and len(digits) == 4
