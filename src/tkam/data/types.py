"""The types every data format shares: what a loader returns (:class:`ImageData`), what it raises
(:class:`DataError`, with the standard message for missing files; :class:`MalformedFileError` for a
file that is not what its format expects), and what a format module declares about itself
(:class:`DatasetInfo`, its downloads as :class:`RemoteFile`, its cheap file check).

Each format module (:mod:`~tkam.data.idx`, :mod:`~tkam.data.svhn`, ...) builds its own
:class:`DatasetInfo`; :mod:`~tkam.data.registry` only collects them, and
:mod:`~tkam.data.download` fetches the :class:`RemoteFile` entries a format declares.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
from torch import Tensor

from tkam.config import DataConfig

__all__ = [
    "DataError",
    "DatasetInfo",
    "ImageData",
    "MalformedFileError",
    "RemoteFile",
    "file_problems",
    "missing_files_error",
    "read_ends",
    "show_bytes",
]


class DataError(ValueError):
    """A data set that is missing, malformed or too small; the message names the file."""


class MalformedFileError(DataError):
    """A file that is not what its format expects (truncated, foreign, empty, wrongly shaped).

    One error serves the loaders and ``tkam data list``: a loader's message reads
    ``<file>: <kind> (<detail>)``; the listing shows :meth:`status`, ``<kind>: <file> (<detail>)``.

    Attributes:
        kind: what is wrong, e.g. ``truncated``, ``not an IDX file``, ``not gzip-compressed``,
            ``empty``.
        path: the file (or the source a loader names).
        detail: the evidence, e.g. ``has 3142 bytes, the header declares 3152``.
    """

    def __init__(self, kind: str, path: str | Path, detail: str = "") -> None:
        self.kind = kind
        self.path = path
        self.detail = detail
        super().__init__(f"{path}: {kind}{self._detail}")

    @property
    def _detail(self) -> str:
        return f" ({self.detail})" if self.detail else ""

    def status(self, root: Path | None = None) -> str:
        """``<kind>: <file> (<detail>)``, the file named relative to ``root`` when inside it."""
        shown = Path(self.path)
        if root is not None and shown != root and shown.is_relative_to(root):
            shown = shown.relative_to(root)
        return f"{self.kind}: {shown}{self._detail}"


def file_problems(
    root: Path, paths: Iterable[Path], inspect: Callable[[Path], object]
) -> list[str]:
    """The statuses of the files ``inspect`` rejects (empty: every file looks right).

    Args:
        root: the data root (files are named relative to it).
        paths: the files to inspect; those that do not exist are skipped (a missing file is
            reported by :func:`~tkam.data.registry.missing_files`).
        inspect: a format's cheap check of one file, raising :class:`MalformedFileError`.

    Returns:
        one :meth:`MalformedFileError.status` per rejected file, ``unreadable: <file> (...)``
        for a file the system cannot read.
    """
    problems = []
    for path in paths:
        if not path.exists():
            continue
        try:
            inspect(path)
        except MalformedFileError as error:
            problems.append(error.status(root))
        except OSError as error:
            problem = MalformedFileError("unreadable", path, error.strerror or str(error))
            problems.append(problem.status(root))
    return problems


def read_ends(path: Path, head: int, tail: int = 0) -> tuple[bytes, bytes, int]:
    """The first ``head`` and the last ``tail`` bytes of a file, and its size (for the cheap
    checks: magic numbers at the start, end markers at the end; the two overlap in a short file).

    Raises:
        MalformedFileError: ``empty`` for a file of 0 bytes.
        OSError: when the file cannot be read.
    """
    with path.open("rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        if size == 0:
            raise MalformedFileError("empty", path, "0 bytes")
        start = handle.read(head)
        end = b""
        if tail:
            handle.seek(max(size - tail, 0))
            end = handle.read(tail)
    return start, end, size


def show_bytes(data: bytes, count: int = 8) -> str:
    """``0x...`` of the first ``count`` bytes of ``data`` (``...`` when more follow), the evidence
    an error's detail quotes."""
    more = "..." if len(data) > count else ""
    return f"0x{data[:count].hex().upper()}{more}" if data else "nothing"


class ImageData(NamedTuple):
    """A data set split into training and test items.

    Attributes:
        train: ``(N, C, H, W)`` float32 images in ``[0, 1]``; for text (``ptb``) ``(N, n_v, L)``
            one-hot columns (``n_v`` = vocabulary size + 2, ``L`` tokens).
        test: ``(M, ...)`` like ``train`` (``M`` may be 0).
        name: the data set's name (``digits``, ``mnist``, ``fmnist``, ``svhn``, ``cifar10``,
            ``celeba``, ``darcy``, ``ptb``).
    """

    train: Tensor
    test: Tensor
    name: str

    @property
    def image_shape(self) -> tuple[int, ...]:
        """Shape of one item: ``(C, H, W)`` for images, ``(n_v, L)`` for text."""
        return tuple(int(size) for size in self.train.shape[1:])


@dataclass(frozen=True)
class RemoteFile:
    """One file ``tkam data download`` fetches into a data root.

    Attributes:
        name: the file's name under the data root.
        urls: where to fetch it, tried in order (official location first).
        sha256, md5: the known checksums (``None``: unknown; see :mod:`~tkam.data.download`).
        provides: paths under the root whose presence means the file is not needed (for an
            archive: what it unpacks to); empty: the file itself.
        unpack: a ``.tar.gz`` or ``.zip`` archive to unpack into the root (then deleted).
        alternatives: further paths under the root, any one of which also serves (an IDX file
            already decompressed).
        local_copy: a copy of the file a system package installs; the download copies it
            instead of fetching when its SHA-256 is ``local_sha256``.
        local_sha256: the recorded SHA-256 of ``local_copy`` (``None``: never copy it).
    """

    name: str
    urls: tuple[str, ...]
    sha256: str | None = None
    md5: str | None = None
    provides: tuple[str, ...] = ()
    unpack: bool = False
    alternatives: tuple[str, ...] = ()
    local_copy: Path | None = None
    local_sha256: str | None = None

    def present(self, root: Path) -> bool:
        """Whether the root already holds what this file provides."""
        if any((root / path).exists() for path in self.alternatives):
            return True
        return all((root / path).exists() for path in self.provides or (self.name,))


class DatasetInfo(NamedTuple):
    """What one data set is: its files, its loader, its labels and its downloads.

    Attributes:
        name: the ``data.name``.
        display: human-readable name.
        kind: ``builtin`` (no files), ``image``, ``text`` or ``generated`` (Darcy).
        files: files the spec split reads, relative to the root; each entry lists alternatives
            (any one suffices), the first being the name shown to users.
        official_files: the further files ``split = "official"`` reads.
        loader: ``(config, root) -> ImageData``.
        sources: the files ``tkam data download`` fetches (empty: nothing to download).
        labels: ``(root, count) -> (>= count,) integer labels`` of the training items in the
            loader's order, or ``None`` when the label file is missing or unreadable; ``None``
            for a data set without class labels.
        system_root: a folder a system package installs the files in, read when no root is
            configured and it exists.
        find_missing: ``(root, split) -> missing file names``, for a data set whose root may be
            the file itself (default: look up ``files`` and ``official_files`` under the root).
        download_note: added to the instructions for placing the files by hand.
        no_download: ``root -> message`` of the error ``tkam data download`` gives for a data
            set without sources.
        check: ``(root, split) -> statuses`` of the present files that split reads which do
            not look right (see :func:`file_problems`); cheap, for ``tkam data list``: header
            bytes, magic numbers, declared sizes against file sizes, never the whole data.
            ``None``: nothing to check (a built-in data set).
    """

    name: str
    display: str
    kind: str
    files: tuple[tuple[str, ...], ...]
    official_files: tuple[tuple[str, ...], ...]
    loader: Callable[[DataConfig, Path], ImageData]
    sources: tuple[RemoteFile, ...] = ()
    labels: Callable[[Path, int], np.ndarray | None] | None = None
    system_root: Path | None = None
    find_missing: Callable[[Path, str], list[str]] | None = None
    download_note: str = ""
    no_download: Callable[[Path | None], str] | None = None
    check: Callable[[Path, str], list[str]] | None = None


def missing_files_error(
    display: str, name: str, root: Path, files: Sequence[str], note: str = ""
) -> DataError:
    """The error of a loader whose files are not under its data root.

    Args:
        display: the data set's human-readable name.
        name: its ``data.name`` (for the ``tkam data download`` command shown).
        root: the data root looked in.
        files: the missing files, relative to ``root``.
        note: a further sentence (what the files are, where they come from).
    """
    listed = ", ".join(files)
    problem = (
        "does not exist"
        if not root.exists()
        else "is a file, not a folder"
        if not root.is_dir() and name != "darcy"
        else f"lacks {listed}"
    )
    return DataError(
        f"{display} not found: the data root {root} {problem}. Place {listed} in {root} (or set "
        f"data.root to the folder that holds them), or run `tkam data download {name} --root "
        f"{root}` where a network exists; to evaluate a run whose data moved, pass `tkam "
        f"evaluate RUN --data-root PATH`.{note}"
    )
