"""Fixtures shared by the data tests: a small Darcy file written by ``tkam data darcy``."""

from __future__ import annotations

from pathlib import Path

import pytest

from tkam.cli import main


@pytest.fixture(scope="session")
def darcy_file(tmp_path_factory) -> Path:
    """A small Darcy file written by the CLI: 30 fields at 16x16."""
    path = tmp_path_factory.mktemp("darcy") / "darcy_32.h5"
    arguments = ["--num", "30", "--resolution", "16", "--seed", "7", "--refinement", "1"]
    assert main(["data", "darcy", *arguments, "--out", str(path), "--quiet"]) == 0
    return path
