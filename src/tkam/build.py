"""The model a config asks for (``model.kind``), initialised from the config's seed."""

from __future__ import annotations

from collections.abc import Callable

import torch

from tkam.baselines import VAE, LatentEBM
from tkam.config import ExperimentConfig
from tkam.model import TKAM, LatentModel

__all__ = ["MODELS", "build_model"]

#: ``model.kind`` -> ``(config, image_shape, rng) -> model``.
MODELS: dict[str, Callable[..., LatentModel]] = {
    "tkam": TKAM.from_config,
    "vae": VAE.from_config,
    "lebm": LatentEBM.from_config,
}


def build_model(config: ExperimentConfig, image_shape: tuple[int, ...]) -> LatentModel:
    """T-KAM or the baseline that ``config.model.kind`` names, its parameters drawn from a
    stream seeded by ``train.seed``."""
    rng = torch.Generator().manual_seed(config.train.seed)
    return MODELS[config.model.kind](config, image_shape, rng)
