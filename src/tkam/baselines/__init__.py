"""Baselines trained like T-KAM on the same generators and data (``model.kind``).

``vae``: Gaussian prior, amortised Gaussian encoder, reparameterised ELBO (and the IWAE bound).
``lebm``: latent energy-based prior of Pang et al. (2020) with short-run Langevin.
A leaf package: only ``tkam.train`` and the CLI import it.
"""

from __future__ import annotations

import torch

from tkam.baselines.base import BaselineModel, GaussianPrior
from tkam.baselines.lebm import EnergyPrior, LatentEBM, lebm_loss
from tkam.baselines.vae import VAE, Encoder, vae_loss
from tkam.config import ExperimentConfig
from tkam.losses import LossOutput

__all__ = [
    "VAE",
    "BaselineModel",
    "Encoder",
    "EnergyPrior",
    "GaussianPrior",
    "LatentEBM",
    "baseline_loss",
    "build_baseline",
    "lebm_loss",
    "vae_loss",
]

_MODELS = {"vae": VAE, "lebm": LatentEBM}


def build_baseline(
    config: ExperimentConfig,
    image_shape: tuple[int, ...],
    generator: torch.Generator | None = None,
) -> BaselineModel:
    """The baseline named by ``config.model.kind`` (``vae`` or ``lebm``)."""
    try:
        cls = _MODELS[config.model.kind]
    except KeyError:
        raise ValueError(f"model.kind {config.model.kind!r} is not a baseline") from None
    return cls(config, image_shape, generator=generator)


def baseline_loss(
    model: BaselineModel, x: torch.Tensor, config: ExperimentConfig, generator: torch.Generator
) -> LossOutput:
    """The training loss of the baseline named by ``config.model.kind``."""
    if config.model.kind == "vae":
        return vae_loss(model, x, generator)
    if config.model.kind == "lebm":
        return lebm_loss(model, x, generator)
    raise ValueError(f"model.kind {config.model.kind!r} is not a baseline")
