"""Checkpoints as safetensors files, written atomically and checked when read.

One file holds the model's state dict (``model/<name>``), the optimiser's moments
(``optimizer/<index>/<key>``), the random streams (``rng/<name>``), each shard's autoMALA step
sizes (``sampler/<name>``, when adapted) and JSON metadata (step, epoch, grid schedule, the
resolved config as TOML). A crash mid-write leaves the previous file intact.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file

from tkam.files import atomic_path
from tkam.posterior.memory import StepSizeMemory

__all__ = [
    "CheckpointError",
    "atomic_save",
    "save_checkpoint",
    "load_checkpoint",
    "read_metadata",
]

FORMAT = "tkam-checkpoint-1"


class CheckpointError(RuntimeError):
    """A checkpoint is missing, truncated or not one of ours; the message names the file."""


def atomic_save(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str]) -> None:
    """Write a safetensors file atomically (:func:`tkam.files.atomic_path`: never half a file),
    with its header's keys sorted: the same tensors and metadata give the same bytes.

    Raises:
        CheckpointError: when the file cannot be written (a full disk), naming it; nothing
            partial is left.
    """
    try:
        with atomic_path(path) as temporary:
            tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
            save_file(tensors, str(temporary), metadata)
            _sort_header(temporary)
    except SafetensorError as exc:
        raise CheckpointError(
            f"cannot write {path}: {exc}; nothing partial was left, the previous files are "
            "intact: free disk space (or choose another --out) and continue with --resume"
        ) from None


def _sort_header(path: Path) -> None:
    """Rewrite a safetensors file's JSON header with sorted keys (safetensors writes the
    metadata in a random order); the header keeps its length, so the tensors stay in place."""
    with open(path, "r+b") as handle:
        size = int.from_bytes(handle.read(8), "little")
        raw = handle.read(size)
        header = json.loads(raw)
        text = json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        encoded = text.encode()
        if len(encoded) > size:  # never: the same keys and values, only reordered
            return
        handle.seek(8)
        handle.write(encoded + b" " * (size - len(encoded)))


def save_checkpoint(
    path: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    rng_states: dict[str, torch.Tensor],
    state: dict[str, Any],
    extra: dict[str, str] | None = None,
    samplers: dict[str, torch.Tensor] | None = None,
) -> None:
    """Save everything an exact resume needs.

    Args:
        path: the ``.safetensors`` file (written atomically).
        model: its state is stored.
        optimizer: its state is stored.
        rng_states: random-stream states by name (``Generator.get_state()``).
        state: JSON-serialisable run state (step, schedule, ...).
        extra: further string metadata (the resolved config, the image shape).
        samplers: each shard's posterior-sampler memory (:meth:`StepSizeMemory.state`), by
            shard name; empty vectors are not stored.
    """
    tensors = {f"model/{k}": v for k, v in model.state_dict().items()}
    opt = optimizer.state_dict()
    for index, values in opt["state"].items():
        for key, value in values.items():
            tensors[f"optimizer/{index}/{key}"] = torch.as_tensor(value)
    for name, value in rng_states.items():
        tensors[f"rng/{name}"] = value
    for name, value in (samplers or {}).items():
        if value.numel():
            tensors[f"sampler/{name}"] = value
    metadata = {
        **(extra or {}),
        "format": FORMAT,
        "state": json.dumps(state),
        "param_groups": json.dumps(opt["param_groups"]),
    }
    atomic_save(tensors, path, metadata)


def read_metadata(path: Path) -> dict[str, str]:
    """The metadata of a safetensors file, raising :class:`CheckpointError` if unreadable."""
    try:
        with safe_open(str(path), framework="pt") as handle:
            return handle.metadata() or {}
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from None


def load_checkpoint(
    path: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    rngs: dict[str, torch.Generator] | None = None,
    memories: dict[str, StepSizeMemory] | None = None,
) -> dict[str, Any]:
    """Restore model, optimiser, the named random streams and posterior-sampler memories;
    return the saved run state.

    Raises:
        CheckpointError: if the file is truncated, corrupt, or not a tkam checkpoint.
    """
    path = Path(path)
    metadata = read_metadata(path)
    if metadata.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a tkam checkpoint (format {metadata.get('format')!r})")
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: corrupt checkpoint ({exc})") from None
    model_state = {k[6:]: v for k, v in tensors.items() if k.startswith("model/")}
    try:
        model.load_state_dict(model_state)
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: does not match the model ({exc})") from None
    if optimizer is not None:
        opt_state: dict[int, dict[str, torch.Tensor]] = {}
        for key, value in tensors.items():
            if key.startswith("optimizer/"):
                _, index, name = key.split("/", 2)
                opt_state.setdefault(int(index), {})[name] = value
        optimizer.load_state_dict(
            {"state": opt_state, "param_groups": json.loads(metadata["param_groups"])}
        )
    for name, rng in (rngs or {}).items():
        key = f"rng/{name}"
        if key not in tensors:
            raise CheckpointError(
                f"{path}: holds no random stream {name!r} (was it written by a run with another "
                "number of processes or train.accumulate?)"
            )
        rng.set_state(tensors[key])
    for name, memory in (memories or {}).items():
        memory.load(tensors.get(f"sampler/{name}", torch.zeros(0)), model_device(model))
    return json.loads(metadata["state"])


def model_device(model: torch.nn.Module) -> torch.device:
    """Where the model's parameters live (CPU for a model without any)."""
    parameter = next(model.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")
