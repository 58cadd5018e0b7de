"""The shared types (:mod:`tkam.data.types`): what a declared download counts as present, the
standard message for missing files, and ``ImageData``'s item shape."""

from __future__ import annotations

from pathlib import Path

import torch

from tkam.data.types import DataError, ImageData, RemoteFile, missing_files_error


def test_remote_file_presence_follows_provides_and_alternatives(tmp_path: Path) -> None:
    plain = RemoteFile("a.gz", ("http://x/a.gz",), alternatives=("a",))
    assert not plain.present(tmp_path)
    (tmp_path / "a").write_bytes(b"")  # the decompressed file serves as well
    assert plain.present(tmp_path)
    archive = RemoteFile("b.zip", ("http://x/b.zip",), provides=("b/1", "b/2"), unpack=True)
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "1").write_bytes(b"")
    assert not archive.present(tmp_path)  # every provided path is needed
    (tmp_path / "b" / "2").write_bytes(b"")
    assert archive.present(tmp_path)


def test_missing_files_error_says_what_to_place_where(tmp_path: Path) -> None:
    error = missing_files_error("Thing", "thing", tmp_path / "none", ["f1", "f2"], " Note.")
    message = str(error)
    assert isinstance(error, DataError) and "does not exist" in message
    assert "f1, f2" in message and "tkam data download thing" in message
    assert message.endswith(" Note.")
    assert "lacks f1" in str(missing_files_error("Thing", "thing", tmp_path, ["f1"]))


def test_image_shape_is_the_shape_of_one_item() -> None:
    data = ImageData(torch.zeros(5, 3, 4, 6), torch.zeros(0, 3, 4, 6), "x")
    assert data.image_shape == (3, 4, 6)
