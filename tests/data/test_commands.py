"""``tkam data list | download | darcy`` (:mod:`tkam.data.commands`): the listing, the download
error's exit status, and the Darcy files the command writes. No test needs a network."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np

from tests.data.helpers import rgb_images, write_svhn
from tkam.cli import main
from tkam.data import DATASETS
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
    assert "missing ptb.train.txt" in lines["ptb"] and "tkam data download ptb" in lines["ptb"]
    assert "missing darcy_32.h5" in lines["darcy"] and "tkam data darcy" in lines["darcy"]
    assert "built in" in lines["digits"]


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
