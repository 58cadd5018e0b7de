"""Reading finished runs back: the resolved config and the trained model of a run folder."""

from __future__ import annotations

from pathlib import Path

from safetensors.torch import load_file

from tkam.build import build_model
from tkam.config import ConfigError, ExperimentConfig, load_config
from tkam.model import TKAM
from tkam.train.checkpoint import CheckpointError, read_metadata

__all__ = ["load_run"]


def load_run(run_dir: str | Path, device: str = "cpu") -> tuple[ExperimentConfig, TKAM]:
    """The config and trained model of a run folder written by ``tkam train``.

    The model is T-KAM or the baseline that the run's ``model.kind`` names (VAE, latent EBM);
    all share TKAM's generation interface.

    Raises:
        CheckpointError: if ``model.safetensors`` is missing or unreadable.
        ConfigError: if ``config.toml`` is missing or invalid.
    """
    root = Path(run_dir)
    config_path, model_path = root / "config.toml", root / "model.safetensors"
    if not config_path.is_file():
        raise ConfigError(f"{root} is not a run folder: {config_path} is missing")
    if not model_path.is_file():
        raise CheckpointError(
            f"{model_path} is missing: the run has not finished (resume it with tkam train --resume)"
        )
    config = load_config(config_path)
    metadata = read_metadata(model_path)
    try:
        image_shape = tuple(int(s) for s in metadata["image_shape"].split(","))
    except (KeyError, ValueError):
        raise CheckpointError(f"{model_path}: no image_shape in its metadata") from None
    model = build_model(config, image_shape)
    try:
        model.load_state_dict(load_file(str(model_path)))
    except RuntimeError as exc:
        raise CheckpointError(f"{model_path}: does not match {config_path} ({exc})") from None
    return config, model.to(device).eval()
