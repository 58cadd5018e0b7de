"""One writer per run folder: an exclusive lock held for the life of the training process.

The lock is ``flock`` on ``<run>/.lock``: the kernel releases it when the process exits in any way
(normal end, exception, SIGKILL), so a lock left by a killed process is never in force: the next
run takes it over and says so. The file holds the holder's process id, host and start time, for
the message a second writer gets. The file itself stays (deleting a lock file races with a process
that has just opened it).
"""

from __future__ import annotations

import datetime
import fcntl
import json
import os
import socket
from pathlib import Path
from typing import IO

from tkam.files import cache_root
from tkam.paths import LOCK_NAME

__all__ = ["LOCK_NAME", "RunFolderBusy", "RunLock", "TrainingRegistry", "lock_holder"]


class RunFolderBusy(RuntimeError):
    """Another process holds the run folder's lock."""


class RunLock:
    """The exclusive lock of one run folder.

    Args:
        root: the run folder (created if missing).

    Attributes:
        previous: what the lock file said about its last holder when this process took the lock
            (``None`` for a new folder); that holder has exited (the kernel released its lock),
            and without ``"released": true`` it died without releasing it.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.path = self.root / LOCK_NAME
        self.previous: dict | None = None
        self._handle: IO[str] | None = None

    @property
    def held(self) -> bool:
        return self._handle is not None

    def acquire(self) -> RunLock:
        """Take the lock without waiting.

        Raises:
            RunFolderBusy: naming the process that holds it.
            NotADirectoryError, PermissionError, OSError: when the folder cannot be made or the
                lock file cannot be written.
        """
        if self.held:
            return self
        self.root.mkdir(parents=True, exist_ok=True)
        handle = self.path.open("a+")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _describe(_read(handle))
            handle.close()
            raise RunFolderBusy(
                f"{self.root} is in use by another training process ({holder}): one run folder "
                "has one writer; wait for it to finish, or choose another --out"
            ) from None
        self.previous = _read(handle)
        handle.seek(0)
        handle.truncate()
        started = datetime.datetime.now().isoformat(timespec="seconds")
        record = {"pid": os.getpid(), "host": socket.gethostname(), "started": started}
        handle.write(json.dumps(record) + "\n")
        handle.flush()
        self._handle = handle
        return self

    def release(self) -> None:
        """Give the lock up (also done by the kernel when the process exits)."""
        if self._handle is None:
            return
        # Say that the holder let go: a record without it is the lock of a process that died.
        record = _read(self._handle) or {}
        self._handle.seek(0)
        self._handle.truncate()
        self._handle.write(json.dumps({**record, "released": True}) + "\n")
        self._handle.flush()
        fcntl.flock(self._handle.fileno(), fcntl.LOCK_UN)
        self._handle.close()
        self._handle = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def lock_holder(root: str | Path) -> str | None:
    """Who holds the lock of the run folder ``root`` (``pid N on HOST, started ...``), or None
    when no process does. Reads only: the lock file is left as it is."""
    path = Path(root) / LOCK_NAME
    try:
        handle = path.open("r")
    except OSError:
        return None
    with handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _describe(_read(handle))
        except OSError:
            return None
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    return None


def _read(handle: IO[str]) -> dict | None:
    handle.seek(0)
    try:
        return json.loads(handle.read() or "null")
    except json.JSONDecodeError:
        return None


def _describe(record: dict | None) -> str:
    if not record:
        return "process unknown"
    return f"pid {record.get('pid')} on {record.get('host')}, started {record.get('started')}"


class TrainingRegistry:
    """The training processes running on this machine, for the advice on threads.

    Each training process holds an ``flock`` on ``<cache>/running/<host>/<pid>`` for its life;
    another process counts the files whose lock it cannot take (their holders are alive) and
    removes the others (left by killed processes).

    Args:
        root: the registry folder (default ``<tkam cache>/running/<host>``).
    """

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root) if root else cache_root() / "running" / socket.gethostname()
        self._handle: IO[str] | None = None

    def enter(self) -> list[int]:
        """Register this process; the process ids of the other trainings running (best effort:
        a folder that cannot be written gives an empty list)."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            others = [pid for pid in map(self._alive, self.root.iterdir()) if pid is not None]
            handle = (self.root / str(os.getpid())).open("w")
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return []
        self._handle = handle
        return others

    def _alive(self, path: Path) -> int | None:
        """The pid of the training that holds ``path``, or None (a stale file is removed)."""
        if not path.name.isdigit() or int(path.name) == os.getpid():
            return None
        with path.open("a") as handle:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return int(path.name)
            path.unlink(missing_ok=True)
        return None

    def leave(self) -> None:
        if self._handle is None:
            return
        Path(self._handle.name).unlink(missing_ok=True)
        self._handle.close()
        self._handle = None
