"""Argument types of ``tkam``'s subcommands: counts, seeds, numbers, devices and paths checked as
argparse parses them.

Each raises :class:`argparse.ArgumentTypeError`, which argparse prints as one usage line naming the
option (``argument --num: must be an integer in 1..10000000, got 0``) with exit status 2, before
any command loads a run or starts work.
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch

__all__ = [
    "MAX_COUNT",
    "bounded_int",
    "count",
    "device",
    "existing_path",
    "folder",
    "memory_problem",
    "nonnegative_int",
    "odd_positive_int",
    "output_file",
    "output_folder",
    "positive_float",
    "positive_int",
    "seed",
]

# The most items (samples, fields, steps, subsets) a count argument accepts: far beyond any use,
# and small enough that a typo (an extra digit or ten) fails at once instead of running for days.
MAX_COUNT = 10_000_000


def _cut(text: str, limit: int = 60) -> str:
    """``text`` cut to about ``limit`` characters for a message."""
    return text if len(text) <= limit else text[:limit] + "..."


def _shown(text: str) -> str:
    """``text`` quoted (and cut) for a message."""
    return repr(_cut(text))


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {_shown(text)}") from None


def bounded_int(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse type: an integer in ``[low, high]`` (no upper bound when ``high`` is None)."""

    def parse(text: str) -> int:
        value = _integer(text)
        if value < low or (high is not None and value > high):
            allowed = f">= {low}" if high is None else f"in {low}..{high}"
            raise argparse.ArgumentTypeError(
                f"must be an integer {allowed}, got {_cut(str(value))}"
            )
        return value

    return parse


positive_int = bounded_int(1)
nonnegative_int = bounded_int(0)
# A number of items: 1..MAX_COUNT.
count = bounded_int(1, MAX_COUNT)
# torch.Generator.manual_seed takes any 64-bit pattern; beyond it raises an overflow error.
seed = bounded_int(0, 2**64 - 1)


def odd_positive_int(text: str) -> int:
    """An argparse type: an odd integer >= 1."""
    value = _integer(text)
    if value < 1 or value % 2 == 0:
        raise argparse.ArgumentTypeError(f"must be an odd integer >= 1, got {_cut(str(value))}")
    return value


def positive_float(text: str) -> float:
    """An argparse type: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {_shown(text)}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {_cut(text.strip())}")
    return value


def device(text: str) -> str:
    """An argparse type: ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (a GPU this machine has), or
    ``mps`` where PyTorch has it."""
    if text == "auto":
        return text
    try:
        parsed = torch.device(text)
    except (RuntimeError, ValueError):
        parsed = None
    if parsed is not None and parsed.type == "cpu":  # cpu, cpu:0
        return text
    if parsed is None or parsed.type not in ("cuda", "mps"):
        raise argparse.ArgumentTypeError(f"expected auto, cpu, cuda or cuda:N, got {_shown(text)}")
    if parsed.type == "mps":
        if not torch.backends.mps.is_available():
            raise argparse.ArgumentTypeError(f"{text}: this machine has no MPS device")
        return text
    available = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if available == 0:
        raise argparse.ArgumentTypeError(
            f"{text}: this machine has no CUDA GPU (or PyTorch was built without CUDA); "
            "use cpu or auto"
        )
    if parsed.index is not None and parsed.index >= available:
        raise argparse.ArgumentTypeError(
            f"{text}: this machine has {available} CUDA GPU(s), cuda:0..cuda:{available - 1}"
        )
    return text


def _path(text: str) -> Path:
    if not text:
        raise argparse.ArgumentTypeError("expected a path, got an empty string")
    if "\0" in text:
        raise argparse.ArgumentTypeError(f"{_shown(text)}: a path cannot contain a NUL byte")
    return Path(text).expanduser()


def existing_path(text: str) -> Path:
    """An argparse type: a file or folder that exists."""
    path = _path(text)
    try:
        found = path.exists()
    except OSError as exc:  # a name too long, a loop of links: the system's reason
        raise argparse.ArgumentTypeError(f"{text}: {exc.strerror or exc}") from None
    if not found:
        raise argparse.ArgumentTypeError(f"{text} does not exist")
    return path


def folder(text: str) -> Path:
    """An argparse type: a folder to read, which need not exist but must not be a file."""
    path = _path(text)
    try:
        is_file = path.exists() and not path.is_dir()
    except OSError as exc:
        raise argparse.ArgumentTypeError(f"{text}: {exc.strerror or exc}") from None
    if is_file:
        raise argparse.ArgumentTypeError(f"{text} is a file, not a folder")
    return path


def _probe_writable(path: Path, folder: bool) -> None:
    """Fail unless ``path`` (a file, or a folder when ``folder``) could be written.

    The probe creates and removes a temporary entry in the nearest existing folder on the way:
    permission bits say nothing for root, for read-only mounts or for ``/proc``, so only an
    attempt answers. It leaves nothing behind.
    """
    existing = None
    try:
        if path.is_dir() and not folder:
            raise argparse.ArgumentTypeError(f"{path} is a folder; give a file name")
        if path.exists() and not path.is_dir() and folder:
            raise argparse.ArgumentTypeError(f"{path} is a file; give a folder")
        target = path if folder else path.parent
        existing = target
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        if not existing.is_dir():
            raise argparse.ArgumentTypeError(
                f"cannot write {path}: {existing} is a file, not a folder"
            )
        if existing == target and not folder:
            handle, name = tempfile.mkstemp(prefix=".tkam-probe-", dir=existing)
            os.close(handle)
            os.unlink(name)
        else:
            os.rmdir(tempfile.mkdtemp(prefix=".tkam-probe-", dir=existing))
    except OSError as exc:
        where = f": cannot create anything in {existing}" if existing is not None else ""
        raise argparse.ArgumentTypeError(
            f"cannot write {path}{where} ({exc.strerror or exc})"
        ) from None


def output_file(*suffixes: str) -> Callable[[str], Path]:
    """An argparse type: a file that can be written, ending in one of ``suffixes`` (any if none).

    The suffix is checked first, so a wrong one fails before anything is created.
    """

    def parse(text: str) -> Path:
        path = _path(text)
        if suffixes and path.suffix not in suffixes:
            names = " or ".join(suffixes)
            raise argparse.ArgumentTypeError(f"{text}: use a {names} file name")
        _probe_writable(path, folder=False)
        return path

    return parse


def output_folder(text: str) -> Path:
    """An argparse type: a folder that exists and is writable or can be created."""
    path = _path(text)
    _probe_writable(path, folder=True)
    return path


def _physical_memory() -> int | None:
    """This machine's memory in bytes, or None where the system does not say."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, OSError, ValueError):
        return None


def _device_memory(device: torch.device) -> int | None:
    """The memory of a CUDA ``device`` in bytes, or None where torch cannot say."""
    try:
        return int(torch.cuda.get_device_properties(device).total_memory)
    except (AssertionError, RuntimeError, ValueError):
        return None


def memory_problem(
    what: str,
    nbytes: int,
    fix: str = "ask for fewer",
    device: torch.device | str | None = None,
) -> str | None:
    """Why ``what`` (a phrase naming the options, e.g. ``--num 10: 10 samples of shape (1, 8, 8)``)
    cannot fit in this machine's memory when it takes ``nbytes``; None when it can.

    Commands call it once they know the sizes and before they start work, so that a count far
    too large fails at once rather than after hours of sampling.

    Args:
        what: the subject of the message (it "need" the memory).
        nbytes: the bytes it takes.
        fix: what to do instead, the end of the message.
        device: where the memory is taken: the machine's memory, or a CUDA GPU's.
    """
    where = torch.device(device) if device is not None else torch.device("cpu")
    if where.type == "cuda":
        total, owner = _device_memory(where), f"{where}'s"
    else:
        total, owner = _physical_memory(), "this machine's"
    if total is None or nbytes <= total:
        return None
    # Beyond about 2**80 bytes the amount says nothing more (and past 2**1024 it is no float).
    needed = f"about {nbytes / 2**30:.1f} GiB" if nbytes < 2**80 else "far more"
    return f"{what} need {needed} of memory, more than {owner} {total / 2**30:.1f} GiB; {fix}"
