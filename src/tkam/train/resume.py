"""What ``--resume`` may change: the settings a continued run can take on, and those it cannot.

A checkpoint stores the resolved config it was written with. Resuming compares it with the config
of the command line, key by key: the settings of :data:`RESUMABLE` (learning rate, length of the
run, log and checkpoint cadence, device, ...) take effect and are recorded in ``config.toml`` and
every later checkpoint; any other difference (shapes, bases, losses, data, seed) would make the
saved state mean something else, so it is refused with the differing keys named.
"""

from __future__ import annotations

import tomllib
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from tkam.config import ConfigError, ExperimentConfig, config_from_dict, config_to_dict
from tkam.model import LatentModel
from tkam.posterior.memory import StepSizeMemory
from tkam.train.checkpoint import CheckpointError, load_checkpoint, read_metadata
from tkam.train.step import TrainingError

__all__ = [
    "RESUMABLE",
    "apply_learning_rate",
    "config_changes",
    "refused_changes",
    "restore_checkpoint",
    "saved_config",
]

#: Keys a resumed run may change.
RESUMABLE = frozenset(
    {
        "train.learning_rate",
        "train.epochs",
        "train.max_steps",
        "train.log_every",
        "train.checkpoint_every",
        "train.num_plot_samples",
        "train.device",
        "train.compile",
        "train.precision",
        "train.skip_nonfinite",
        "train.threads",
        "data.root",
    }
)


def _flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def config_changes(
    saved: ExperimentConfig, current: ExperimentConfig
) -> dict[str, tuple[Any, Any]]:
    """``key -> (saved value, current value)`` for every setting that differs."""
    old, new = _flatten(config_to_dict(saved)), _flatten(config_to_dict(current))
    return {
        key: (old.get(key), new.get(key))
        for key in sorted(old.keys() | new.keys())
        if old.get(key) != new.get(key)
    }


def saved_config(text: str, source: str) -> ExperimentConfig:
    """The config a checkpoint recorded (its ``config`` metadata, TOML).

    Raises:
        ConfigError: if the text is not a valid config (a checkpoint of another version).
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: the recorded config is not valid TOML ({exc})") from None
    with warnings.catch_warnings():
        # A deprecated key of an older checkpoint is dropped without a word: the run's own
        # config.toml, which the user can edit, already warns about it.
        warnings.simplefilter("ignore", FutureWarning)
        return config_from_dict(data, source)


def refused_changes(saved: ExperimentConfig, current: ExperimentConfig) -> list[str]:
    """The differences a resumed run cannot take on, as ``key: saved -> current`` lines."""
    return [
        f"{key}: {old!r} -> {new!r}"
        for key, (old, new) in config_changes(saved, current).items()
        if key not in RESUMABLE
    ]


def apply_learning_rate(
    optimizer: torch.optim.Optimizer, model: LatentModel, learning_rate: float
) -> None:
    """Set the optimiser's groups to the rates the model gives for ``learning_rate`` (a restored
    optimiser keeps the rates it was saved with)."""
    groups = model.parameter_groups(learning_rate)
    if len(groups) != len(optimizer.param_groups):
        raise ValueError(
            f"the model has {len(groups)} parameter groups, the optimiser "
            f"{len(optimizer.param_groups)}"
        )
    for group, wanted in zip(optimizer.param_groups, groups):
        group["lr"] = wanted.get("lr", learning_rate)


def restore_checkpoint(
    checkpoints: list[Path],
    model: LatentModel,
    optimizer: torch.optim.Optimizer,
    rngs: dict[str, torch.Generator],
    config: ExperimentConfig,
    memories: dict[str, StepSizeMemory],
) -> dict[str, Any]:
    """Load the newest readable checkpoint (newest first in ``checkpoints``) into the model,
    optimiser, random streams and sampler memories, after comparing its recorded config with
    ``config``; its run state. Unreadable checkpoints are skipped with a warning.

    Raises:
        TrainingError: if the config differs from the checkpoint's in a setting a resume cannot
            change (named, with both values), or no checkpoint is readable.
    """
    for path in checkpoints:
        try:
            recorded = read_metadata(path).get("config")
            if recorded is not None:
                refused = refused_changes(saved_config(recorded, str(path)), config)
                if refused:
                    raise TrainingError(
                        f"--resume cannot change these settings of the run in "
                        f"{path.parent.parent} (checkpoint {path.name}): {'; '.join(refused)}. "
                        f"A resume may change only {', '.join(sorted(RESUMABLE))}; to train with "
                        "the new settings, start a new run (another --out, or --overwrite)"
                    )
            return load_checkpoint(path, model, optimizer, rngs, memories)
        except (CheckpointError, ConfigError) as exc:
            warnings.warn(f"skipping unreadable checkpoint: {exc}", stacklevel=3)
    raise TrainingError(f"no readable checkpoint in {checkpoints[0].parent}")
