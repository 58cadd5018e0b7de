"""The run folder around a training: its lock, clearing it for a fresh run, and removing a
folder that a failed start created.

Rank 0 holds the folder's lock (:class:`~tkam.train.lock.RunLock`) for the life of the process.
A fresh run refuses files at the names a run writes that tkam did not write (the manifest,
:mod:`tkam.manifest`, says which it did); ``--overwrite`` deletes only the files the manifest
lists. The names themselves are :class:`tkam.paths.RunPaths`.
"""

from __future__ import annotations

import warnings

import torch

from tkam.manifest import listed_files, read_manifest
from tkam.paths import RunPaths
from tkam.train.distributed import Context
from tkam.train.lock import RunFolderBusy, RunLock
from tkam.train.step import TrainingError

__all__ = ["prepare_folder", "remove_empty_folder", "take_lock"]


def take_lock(lock: RunLock, context: Context) -> None:
    """Rank 0 takes the run folder's lock; every rank stops if it could not.

    Raises:
        TrainingError: naming the process that holds the lock, or why the folder is unusable.
    """
    problem = None
    if context.is_main:
        try:
            lock.acquire()
        except RunFolderBusy as exc:
            problem = str(exc)
        except FileExistsError:
            problem = f"{lock.root} exists and is not a folder: --out must name a run folder"
        except OSError as exc:
            problem = f"{lock.root}: cannot be used as a run folder ({exc.strerror or exc})"
        previous = lock.previous or {}
        if lock.held and previous.get("pid") and not previous.get("released"):
            warnings.warn(
                f"the previous writer of {lock.root} (pid {previous['pid']}, started "
                f"{previous.get('started')}) did not exit cleanly; its lock was released when it "
                "died, and this process holds it now",
                stacklevel=3,
            )
    failed = context.sum_(torch.tensor([float(problem is not None)]))
    if problem is not None:
        raise TrainingError(problem)
    if float(failed[0]) > 0:
        raise TrainingError(f"{lock.root}: the run folder is not usable (see the first process)")


def prepare_folder(paths: RunPaths, overwrite: bool) -> None:
    """Before a fresh run: with ``overwrite`` delete the files the folder's manifest lists (and
    nothing else); then refuse files at names the run would write that tkam did not write.

    Raises:
        TrainingError: naming those files (a folder of another tool, a run of a tkam from before
            manifests).
    """
    if overwrite:
        _delete_listed_files(paths)
    elif paths.checkpoint_files():
        return  # build_run refuses a folder that holds a run, naming --resume and --overwrite
    root = paths.root
    listed = read_manifest(root) or set()
    foreign = [p for p in paths.run_files() if p.relative_to(root).as_posix() not in listed]
    if not foreign:
        return
    names = ", ".join(str(p.relative_to(root)) for p in foreign[:6])
    more = f" and {len(foreign) - 6} more" if len(foreign) > 6 else ""
    if overwrite:
        raise TrainingError(
            f"--overwrite deletes only the files tkam lists in {paths.manifest}, and {root} "
            f"holds run files it does not list (another tool's, or a run of a tkam from before "
            f"manifests): --overwrite would have to delete {names}{more}; delete or move them "
            "yourself, or choose another --out"
        )
    raise TrainingError(
        f"{root} holds files that this run would overwrite and that tkam did not write: "
        f"{names}{more}; move them away, or choose another --out"
    )


def _delete_listed_files(paths: RunPaths) -> None:
    """Delete the files of the manifest, then the run's folders that this left empty, then the
    manifest."""
    for path in listed_files(paths.root):
        path.unlink(missing_ok=True)
    for folder in paths.folders():
        try:
            folder.rmdir()  # only when empty: another tool's files stay
        except OSError:
            pass
    paths.manifest.unlink(missing_ok=True)


def remove_empty_folder(paths: RunPaths) -> None:
    """Remove a run folder this process created when the run failed before writing anything
    but its lock file."""
    try:
        if set(paths.root.iterdir()) <= {paths.lock}:
            paths.lock.unlink(missing_ok=True)
            paths.root.rmdir()
    except OSError:
        pass
