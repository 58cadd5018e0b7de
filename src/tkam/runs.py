"""Reading finished runs back: the resolved config and the trained model of a run folder, and
which model that is (:class:`ModelInfo`: its step and the hash of ``model.safetensors``), which
every file derived from it records."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from tkam.build import build_model
from tkam.config import ConfigError, ExperimentConfig, dumps_toml, load_config
from tkam.files import atomic_path, file_sha256
from tkam.manifest import record
from tkam.model import LatentModel
from tkam.paths import RunPaths, step_of
from tkam.train.checkpoint import CheckpointError, atomic_save, read_metadata
from tkam.train.lock import lock_holder

__all__ = ["ModelInfo", "load_run", "model_info", "save_run"]


@dataclass(frozen=True)
class ModelInfo:
    """Which model of a run a command used.

    Attributes:
        path: the run's ``model.safetensors``.
        step: the training step it holds (None when its metadata does not say).
        sha256: the SHA-256 of the file.
        newest_checkpoint: the step of the run's newest checkpoint (None without one).
    """

    path: Path
    step: int | None
    sha256: str
    newest_checkpoint: int | None

    @property
    def stale(self) -> bool:
        """Whether the run has a checkpoint newer than the model (a resume that has not
        finished)."""
        return (
            self.step is not None
            and self.newest_checkpoint is not None
            and self.newest_checkpoint > self.step
        )

    def describe(self) -> str:
        """``PATH (step N, sha256 0123456789ab)``, for a command's output."""
        return f"{self.path} (step {self.step}, sha256 {self.sha256[:12]})"

    def as_dict(self) -> dict[str, Any]:
        """The record of ``metrics.json``: path, step and hash."""
        return {"path": str(self.path), "step": self.step, "sha256": self.sha256}

    def png_metadata(self) -> dict[str, str]:
        """PNG text entries naming the model a figure shows."""
        return {
            "tkam model": str(self.path),
            "tkam model step": str(self.step),
            "tkam model sha256": self.sha256,
        }


def _step(metadata: dict[str, str]) -> int | None:
    text = metadata.get("step", "")
    return int(text) if text.isdigit() else None


def _newest_checkpoint(paths: RunPaths) -> int | None:
    steps = (step_of(path) for path in paths.checkpoint_files())
    return next((step for step in steps if step is not None), None)


def model_info(run_dir: str | Path) -> ModelInfo:
    """The step, hash and newest checkpoint of a run's ``model.safetensors``.

    Raises:
        CheckpointError: if the file is missing or unreadable.
    """
    paths = RunPaths(Path(run_dir))
    metadata = read_metadata(paths.model)
    step = _step(metadata)
    return ModelInfo(paths.model, step, file_sha256(paths.model), _newest_checkpoint(paths))


def load_run(run_dir: str | Path, device: str = "cpu") -> tuple[ExperimentConfig, LatentModel]:
    """The config and trained model of a run folder written by ``tkam train``.

    The model is T-KAM or the baseline that the run's ``model.kind`` names (VAE, latent EBM),
    each a :class:`~tkam.model.LatentModel`. A model older than the run's newest checkpoint (a
    resume that was stopped, or is still running) is used with a warning that says so.

    Raises:
        CheckpointError: if ``model.safetensors`` is missing, unreadable or holds non-finite
            weights.
        ConfigError: if ``config.toml`` is missing or invalid.
    """
    paths = RunPaths(Path(run_dir))
    root, config_path, model_path = paths.root, paths.config, paths.model
    if not config_path.is_file():
        raise ConfigError(f"{root} is not a run folder: {config_path} is missing")
    if not model_path.is_file():
        holder = lock_holder(root)
        if holder:
            raise CheckpointError(
                f"{model_path} is missing: the run is still training ({holder}); wait for it "
                "to finish"
            )
        raise CheckpointError(
            f"{model_path} is missing: the run has not finished (resume it with tkam train --resume)"
        )
    config = load_config(config_path)
    metadata = read_metadata(model_path)
    try:
        image_shape = tuple(int(s) for s in metadata["image_shape"].split(","))
    except (KeyError, ValueError):
        raise CheckpointError(f"{model_path}: no image_shape in its metadata") from None
    step, newest = _step(metadata), _newest_checkpoint(paths)
    if step is not None and newest is not None and newest > step:
        running = lock_holder(root)
        why = f"the run is training ({running})" if running else "a resume did not finish"
        warnings.warn(
            f"{model_path} holds step {step}, but the run has a newer checkpoint (step {newest}): "
            f"{why}; this command uses the model of step {step} (finish the run with tkam train "
            "--resume for the newer one)",
            stacklevel=2,
        )
    model = build_model(config, image_shape)
    try:
        state = load_file(str(model_path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{model_path}: corrupt model file ({exc})") from None
    bad = [
        name
        for name, value in state.items()
        if value.is_floating_point() and not bool(torch.isfinite(value).all())
    ]
    if bad:
        raise CheckpointError(
            f"{model_path}: {len(bad)} weight tensor(s) hold non-finite values ({', '.join(bad[:3])}"
            f"{', ...' if len(bad) > 3 else ''}): the file is corrupt; train the run again, or delete it and "
            f"write it again from the newest checkpoint: tkam train {config_path} --out {root} "
            "--resume"
        )
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise CheckpointError(f"{model_path}: does not match {config_path} ({exc})") from None
    return config, model.to(device).eval()


def save_run(
    model: LatentModel, config: ExperimentConfig, run_dir: str | Path, step: int = 0
) -> Path:
    """Write a model trained outside ``tkam train`` as a run folder: ``config.toml`` and
    ``model.safetensors`` (with the metadata that :func:`load_run` and the commands read), both
    listed in the folder's manifest.

    Args:
        model: a model of ``config`` (as :func:`tkam.build.build_model` makes it).
        config: its config.
        run_dir: the folder (created); it must not hold a run yet.
        step: the training step to record.

    Returns:
        the path of ``model.safetensors``.

    Raises:
        ConfigError: if the folder already holds a ``config.toml`` or ``model.safetensors``.
    """
    paths = RunPaths(Path(run_dir))
    root, config_path, model_path = paths.root, paths.config, paths.model
    taken = [str(path) for path in (config_path, model_path) if path.exists()]
    if taken:
        raise ConfigError(f"{root} already holds {', '.join(taken)}: choose another folder")
    root.mkdir(parents=True, exist_ok=True)
    with atomic_path(config_path) as temporary:
        temporary.write_text(dumps_toml(config))
    metadata = {
        "image_shape": ",".join(str(size) for size in model.image_shape),
        "dataset": config.data.name,
        "config": dumps_toml(config),
        "step": str(step),
    }
    atomic_save(dict(model.state_dict()), model_path, metadata)
    record(root, [config_path, model_path])
    return model_path
