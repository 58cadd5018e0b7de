"""The shared types (:mod:`tkam.data.types`): what a declared download counts as present, the
standard message for missing files, ``ImageData``'s item shape, and the malformed-file error and
helpers every format's cheap check uses."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tkam.data.types import (
    DataError,
    ImageData,
    MalformedFileError,
    RemoteFile,
    file_problems,
    missing_files_error,
    read_ends,
    show_bytes,
)


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


# ---------------------------------------------------------------------------------------------
# MalformedFileError and the cheap checks' helpers


def test_malformed_file_error_reads_file_first_and_status_kind_first(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "data.bin"
    error = MalformedFileError("truncated", path, "has 3 bytes, the header declares 9")
    assert isinstance(error, DataError)
    assert str(error) == f"{path}: truncated (has 3 bytes, the header declares 9)"
    assert error.status(tmp_path) == "truncated: sub/data.bin (has 3 bytes, the header declares 9)"
    assert error.status() == f"truncated: {path} (has 3 bytes, the header declares 9)"
    # A file outside the root, or the root itself, is named in full; no detail, no parentheses.
    assert (
        error.status(tmp_path / "other")
        == f"truncated: {path} (has 3 bytes, the header declares 9)"
    )
    assert MalformedFileError("empty", path).status(path) == f"empty: {path}"
    assert str(MalformedFileError("empty", path)) == f"{path}: empty"


def test_file_problems_skips_missing_files_and_names_the_rejected(tmp_path: Path) -> None:
    good, bad, locked = (tmp_path / name for name in ("good", "bad", "locked"))
    for path in (good, bad, locked):
        path.write_bytes(b"x")

    def inspect(path: Path) -> None:
        if path == bad:
            raise MalformedFileError("not a thing", path, "magic 0x78")
        if path == locked:
            raise PermissionError(13, "Permission denied", str(path))

    paths = [good, bad, tmp_path / "absent", locked]
    assert file_problems(tmp_path, paths, inspect) == [
        "not a thing: bad (magic 0x78)",
        "unreadable: locked (Permission denied)",
    ]
    assert file_problems(tmp_path, [good, tmp_path / "absent"], inspect) == []


def test_read_ends_returns_both_ends_and_refuses_an_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(bytes(range(10)))
    assert read_ends(path, 3, tail=2) == (b"\x00\x01\x02", b"\x08\x09", 10)
    assert read_ends(path, 20, tail=20) == (bytes(range(10)), bytes(range(10)), 10)  # overlap
    assert read_ends(path, 4) == (bytes(range(4)), b"", 10)
    path.write_bytes(b"")
    with pytest.raises(MalformedFileError, match="empty") as info:
        read_ends(path, 4)
    assert info.value.kind == "empty" and info.value.status(tmp_path) == "empty: f (0 bytes)"
    with pytest.raises(FileNotFoundError):
        read_ends(tmp_path / "absent", 4)


def test_show_bytes_quotes_the_first_bytes_in_hex() -> None:
    assert show_bytes(b"\x89PNG") == "0x89504E47"
    assert show_bytes(bytes(range(10)), 4) == "0x00010203..."
    assert show_bytes(b"") == "nothing"


def test_a_data_root_that_is_a_file_is_named_so(tmp_path: Path) -> None:
    root = tmp_path / "file"
    root.write_text("")
    message = str(missing_files_error("Thing", "thing", root, ["f1"]))
    assert "is a file, not a folder" in message and "does not exist" not in message
    assert "tkam evaluate RUN --data-root PATH" in message
