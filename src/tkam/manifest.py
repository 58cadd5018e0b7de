"""The manifest of a run folder: the list of files tkam wrote there.

``tkam train`` (config, loss log, checkpoints, sample grids, model, figures), ``tkam plot`` (into
``RUN/plots``) and ``tkam evaluate`` (``RUN/metrics.json``) add every file they write to
``RUN/tkam-manifest.json``. ``tkam train --overwrite`` deletes the files listed there and nothing
else, so a file of another tool or a person in the folder is never deleted; a file at a name a run
writes that the manifest does not list (a ``config.toml`` tkam never wrote, a run of a tkam from
before manifests) makes ``--overwrite`` and a fresh run refuse, naming it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from tkam.files import atomic_path
from tkam.paths import MANIFEST_NAME

__all__ = ["MANIFEST_NAME", "forget", "listed_files", "read_manifest", "record"]

FORMAT = "tkam-run-manifest-1"


def _relative(root: Path, path: str | Path) -> str | None:
    """``path`` relative to ``root`` in POSIX form, or None for a path outside it."""
    try:
        return Path(path).resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return None


def read_manifest(root: str | Path) -> set[str] | None:
    """The files (relative POSIX paths) a run folder's manifest lists; None without a manifest
    (or with one that is not tkam's)."""
    path = Path(root) / MANIFEST_NAME
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        return None
    return {str(name) for name in data.get("files", []) if isinstance(name, str)}


def _write(root: Path, files: set[str]) -> None:
    text = json.dumps({"format": FORMAT, "files": sorted(files)}, indent=1) + "\n"
    with atomic_path(root / MANIFEST_NAME) as temporary:
        temporary.write_text(text)


def record(root: str | Path, paths: Iterable[str | Path]) -> None:
    """Add ``paths`` (files tkam has just written) to the manifest of the run folder ``root``;
    paths outside ``root`` are left out."""
    root = Path(root)
    names = {name for name in (_relative(root, path) for path in paths) if name}
    if not names:
        return
    listed = read_manifest(root) or set()
    if not names <= listed:
        _write(root, listed | names)


def forget(root: str | Path, paths: Iterable[str | Path]) -> None:
    """Take ``paths`` (files tkam has deleted) off the manifest of ``root``."""
    root = Path(root)
    listed = read_manifest(root)
    if listed is None:
        return
    names = {name for name in (_relative(root, path) for path in paths) if name}
    if names & listed:
        _write(root, listed - names)


def listed_files(root: str | Path) -> list[Path]:
    """The files of ``root``'s manifest that exist, as paths."""
    root = Path(root)
    return [root / name for name in sorted(read_manifest(root) or ()) if (root / name).is_file()]
