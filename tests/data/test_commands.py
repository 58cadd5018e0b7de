"""``tkam data list | download | darcy`` (:mod:`tkam.data.commands`): the listing (and what it says
of valid, truncated and foreign files of every data set), the download error's exit status, and
the Darcy files the command writes. No test needs a network."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np
import pytest

from tests.data.helpers import (
    cut_in_half,
    fixture_images,
    list_status,
    load_error,
    png_bytes,
    random_bytes,
    rgb_images,
    write_celeba,
    write_cifar_batch,
    write_idx,
    write_ptb,
    write_svhn,
)
from tkam.cli import main
from tkam.config import DataConfig
from tkam.data import DATASETS, load_dataset
from tkam.data.darcy import generate_darcy
from tkam.data.registry import FORMATS

CLOSED = "http://127.0.0.1:9/"  # the discard port: nothing listens, the connection is refused


# ---------------------------------------------------------------------------------------------
# tkam data download


def test_cli_download_error_exits_2(tmp_path, monkeypatch, capsys) -> None:
    closed = tuple(replace(r, urls=(CLOSED + "x.mat",)) for r in FORMATS["svhn"].sources)
    monkeypatch.setitem(FORMATS, "svhn", FORMATS["svhn"]._replace(sources=closed))
    assert main(["data", "download", "svhn", "--root", str(tmp_path), "--timeout", "2"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tkam: error: cannot download SVHN") and str(tmp_path) in err


# ---------------------------------------------------------------------------------------------
# tkam data list


def test_list_shows_roots_and_presence(tmp_path, capsys) -> None:
    write_svhn(tmp_path / "train_32x32.mat", rgb_images(2))
    assert main(["data", "list", "--root", str(tmp_path)]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert set(lines) == set(DATASETS)
    assert str(tmp_path) in lines["svhn"] and "present" in lines["svhn"]
    assert "test_32x32.mat" in lines["svhn"]  # the official split's file is missing
    assert "missing: ptb.train.txt" in lines["ptb"] and "tkam data download ptb" in lines["ptb"]
    assert "missing: darcy_32.h5" in lines["darcy"] and "tkam data darcy" in lines["darcy"]
    assert "built in" in lines["digits"]


# ---------------------------------------------------------------------------------------------
# tkam data list: what it says of valid, truncated and foreign files


def _write_valid(name: str, root: Path, request: pytest.FixtureRequest) -> Path:
    """A valid fixture of data set ``name`` under ``root``; returns the file the damage tests
    cut or replace (one the loader reads for a split of 1 + 1 items)."""
    if name in ("mnist", "fmnist"):
        return write_idx(root / "train-images-idx3-ubyte.gz", fixture_images(5))
    if name == "svhn":
        return write_svhn(root / "train_32x32.mat", rgb_images(4))
    if name == "cifar10":
        for i in range(5, 0, -1):
            path = write_cifar_batch(root / f"cifar-10-batches-py/data_batch_{i}", rgb_images(4))
        return path  # data_batch_1
    if name == "celeba":
        write_celeba(root / "img_align_celeba", 4)
        return root / "img_align_celeba" / "000001.jpg"
    if name == "ptb":
        return write_ptb(root) / "ptb.train.txt"
    assert name == "darcy"
    path = root / "darcy_32.h5"
    path.write_bytes(request.getfixturevalue("darcy_file").read_bytes())
    return path


#: The data sets with files, and what their check calls a foreign file in place of theirs.
FOREIGN = {
    "mnist": "not gzip-compressed",
    "fmnist": "not gzip-compressed",
    "svhn": "not a MATLAB file",
    "cifar10": "not a pickle file",
    "celeba": "not a JPEG file",
    "ptb": "not a UTF-8 text file",
    "darcy": "not an HDF5 file",
}


def test_every_data_set_with_files_has_a_check() -> None:
    with_files = [name for name in DATASETS if FORMATS[name].kind != "builtin"]
    assert sorted(with_files) == sorted(FOREIGN)
    assert all(FORMATS[name].check is not None for name in with_files)


@pytest.mark.parametrize("name", list(FOREIGN))
def test_list_says_present_for_a_valid_fixture(name: str, tmp_path, capsys, request) -> None:
    _write_valid(name, tmp_path, request)
    status = list_status(tmp_path, name, capsys)
    assert status == "present" or status.startswith("present (official split: missing: ")


@pytest.mark.parametrize("name", list(FOREIGN))
def test_list_reports_a_file_cut_in_half(name: str, tmp_path, capsys, request) -> None:
    path = _write_valid(name, tmp_path, request)
    cut_in_half(path)
    status = list_status(tmp_path, name, capsys)
    assert status.startswith(f"truncated: {path.relative_to(tmp_path)} (")
    assert "present" not in status
    config = DataConfig(name=name, root=str(tmp_path), num_train=1, num_test=1)
    if name == "ptb":  # a text cut short is still sentences: the loader reads them
        assert len(load_dataset(config).train) == 1
    else:
        assert load_error(config).startswith(f"{path}: truncated (")


@pytest.mark.parametrize("content", [png_bytes(), random_bytes()], ids=["png", "random"])
@pytest.mark.parametrize("name", list(FOREIGN))
def test_list_reports_a_foreign_file(name: str, content, tmp_path, capsys, request) -> None:
    path = _write_valid(name, tmp_path, request)
    path.write_bytes(content)
    status = list_status(tmp_path, name, capsys)
    assert status.startswith(f"{FOREIGN[name]}: {path.relative_to(tmp_path)} (")
    assert "present" not in status
    config = DataConfig(name=name, root=str(tmp_path), num_train=1, num_test=1)
    if name == "celeba" and content.startswith(b"\x89PNG"):  # PIL decodes a PNG named .jpg
        assert len(load_dataset(config).train) == 1
    else:
        assert load_error(config).startswith(f"{path}: {FOREIGN[name]} (")


def test_list_reports_the_official_test_file_after_present(tmp_path, capsys) -> None:
    write_svhn(tmp_path / "train_32x32.mat", rgb_images(2))
    write_svhn(tmp_path / "test_32x32.mat", rgb_images(4))
    assert list_status(tmp_path, "svhn", capsys) == "present"
    length = cut_in_half(tmp_path / "test_32x32.mat")
    assert list_status(tmp_path, "svhn", capsys).startswith(
        f"present (official split: truncated: test_32x32.mat (has {length // 2} bytes, "
    )


# ---------------------------------------------------------------------------------------------
# tkam data darcy


def test_cli_writes_datasets_and_settings(darcy_file: Path) -> None:
    with h5py.File(darcy_file, "r") as handle:
        assert handle["coefficient"].shape == handle["solution"].shape == (30, 1, 16, 16)
        assert handle["solution"].dtype == np.float32
        attributes = dict(handle.attrs)
        solution = handle["solution"][:]
    assert attributes["seed"] == 7 and attributes["resolution"] == 16
    assert attributes["refinement"] == 1 and attributes["num_fields"] == 30
    assert attributes["coefficient_high"] == 12.0 and attributes["coefficient_low"] == 3.0
    assert attributes["grf_tau"] == 3.0 and attributes["grf_alpha"] == 2.0
    expected = generate_darcy(30, resolution=16, seed=7, refinement=1).solution
    np.testing.assert_array_equal(solution, expected)


def test_cli_refuses_to_overwrite(darcy_file: Path, capsys) -> None:
    assert main(["data", "darcy", "--num", "1", "--out", str(darcy_file)]) == 2
    assert "--force" in capsys.readouterr().err
