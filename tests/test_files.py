"""The one atomic-write helper (tkam.files.atomic_path)."""

from __future__ import annotations

import pytest

from tkam.files import atomic_path


def test_the_destination_appears_only_when_the_block_succeeds(tmp_path) -> None:
    target = tmp_path / "folder" / "file.bin"
    with atomic_path(target, suffix=".bin") as temporary:
        assert temporary.parent == target.parent and temporary.name.endswith(".bin")
        temporary.write_bytes(b"new")
        assert not target.exists()  # nothing under the final name while writing
    assert target.read_bytes() == b"new"
    assert [p.name for p in target.parent.iterdir()] == ["file.bin"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path) -> None:
    target = tmp_path / "file.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_path(target) as temporary:
        temporary.write_bytes(b"half")
        raise RuntimeError("interrupted")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["file.bin"]
