"""Writing files so that a reader never sees half of one: one helper for every writer.

:func:`atomic_path` hands out a temporary path beside the destination; the caller writes it (with
any library: safetensors, h5py, PIL, a download); on success the file is flushed to disk, renamed
onto the destination in one step and the folder entry flushed too, so a crash at any moment leaves
either the old file or the new one. On failure the temporary file is removed. The file gets the
permissions of any newly created file (``0666`` less the umask), not the temporary file's ``0600``.
"""

from __future__ import annotations

import hashlib
import math
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["atomic_path", "cache_root", "file_sha256", "json_ready"]


@contextmanager
def atomic_path(destination: str | Path, suffix: str = "") -> Iterator[Path]:
    """A temporary path in the destination's folder, renamed onto it when the block succeeds.

    Args:
        destination: the file to (re)write; its folder is created.
        suffix: ending of the temporary name, for writers that choose a format by it (``.gif``).

    Yields:
        the temporary path to write.
    """
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(
        prefix=f".{destination.name}.", suffix=f".tmp{suffix}", dir=destination.parent
    )
    os.close(fd)
    temporary = Path(name)
    try:
        yield temporary
        os.chmod(temporary, 0o666 & ~_umask())
        with open(temporary, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(temporary, destination)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    folder = os.open(destination.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def cache_root() -> Path:
    """tkam's cache folder: ``$TKAM_CACHE``, else ``~/.cache/tkam`` (not created here)."""
    root = os.environ.get("TKAM_CACHE")
    return Path(root).expanduser() if root else Path.home() / ".cache" / "tkam"


def json_ready(value: Any) -> Any:
    """``value`` with every non-finite float replaced by ``None`` (JSON has no NaN or infinity),
    through dictionaries, lists and tuples."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: json_ready(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(item) for item in value]
    return value


def _umask() -> int:
    """The process's umask (read by setting it and putting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def file_sha256(path: str | Path) -> str:
    """The SHA-256 of a file's bytes, as hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
