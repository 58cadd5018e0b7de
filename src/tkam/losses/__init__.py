"""Training losses and the registry that picks one per config.

Every loss composes the samplers and estimators of :mod:`tkam.posterior` with a model's parts
and returns a :class:`LossOutput`. :data:`LOSSES` maps each value of ``train.loss`` to a
function of ``(model, x, config, rng, step, total_steps)``: T-KAM's ``importance``, ``langevin``
and ``thermodynamic``, the VAE's ``elbo``; the latent EBM trains with ``langevin`` on the
posterior sampler of its ``model`` section (:func:`posterior_settings`). A built config never
holds ``auto``: it is resolved to one of these.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from tkam.baselines.lebm import ula_step_size
from tkam.config import ExperimentConfig, PosteriorConfig
from tkam.losses.elbo import elbo_loss
from tkam.losses.importance import importance_loss
from tkam.losses.langevin import chain_options, langevin_loss, posterior_samples
from tkam.losses.output import LossOutput
from tkam.losses.thermodynamic import thermodynamic_loss
from tkam.model import TKAM
from tkam.posterior.memory import StepSizeMemory

__all__ = [
    "LOSSES",
    "LossFunction",
    "LossOutput",
    "chain_options",
    "compute_loss",
    "elbo_loss",
    "importance_loss",
    "langevin_loss",
    "posterior_samples",
    "posterior_settings",
    "thermodynamic_loss",
]

LossFunction = Callable[
    [TKAM, Tensor, ExperimentConfig, torch.Generator, int, int, StepSizeMemory | None], LossOutput
]


def posterior_settings(config: ExperimentConfig) -> PosteriorConfig:
    """The posterior sampler of a config: the ``posterior`` section, or for the latent EBM the
    ULA of its ``model`` section (Pang's step ``s`` as ``eta = s^2 / 2``)."""
    if config.model.kind == "lebm":
        return PosteriorConfig(
            sampler="ula",
            step_size=ula_step_size(config.model.posterior_step_size),
            steps=config.model.posterior_steps,
        )
    return config.posterior


def _importance(
    model: TKAM,
    x: Tensor,
    config: ExperimentConfig,
    rng: torch.Generator,
    step: int,
    total: int,
    memory: StepSizeMemory | None,
) -> LossOutput:
    train = config.train
    return importance_loss(
        model,
        x,
        train.importance_samples,
        rng,
        resampler=train.resampler,
        threshold=train.resampling_threshold,
        contrastive=train.contrastive,
        negatives=train.negatives,
        compat=train.compat_weights,
        compat_residual=train.compat_residual,
    )


def _langevin(
    model: TKAM,
    x: Tensor,
    config: ExperimentConfig,
    rng: torch.Generator,
    step: int,
    total: int,
    memory: StepSizeMemory | None,
) -> LossOutput:
    settings = posterior_settings(config)
    return langevin_loss(model, x, settings, rng, config.train.contrastive, memory)


def _thermodynamic(
    model: TKAM,
    x: Tensor,
    config: ExperimentConfig,
    rng: torch.Generator,
    step: int,
    total: int,
    memory: StepSizeMemory | None,
) -> LossOutput:
    return thermodynamic_loss(
        model,
        x,
        config.posterior,
        config.thermodynamic,
        step,
        total,
        rng,
        contrastive=config.train.contrastive,
        memory=memory,
    )


def _elbo(
    model: TKAM,
    x: Tensor,
    config: ExperimentConfig,
    rng: torch.Generator,
    step: int,
    total: int,
    memory: StepSizeMemory | None,
) -> LossOutput:
    return elbo_loss(model, x, rng)


LOSSES: dict[str, LossFunction] = {
    "importance": _importance,
    "langevin": _langevin,
    "thermodynamic": _thermodynamic,
    "elbo": _elbo,
}


def compute_loss(
    model: TKAM,
    x: Tensor,
    config: ExperimentConfig,
    rng: torch.Generator,
    step: int = 1,
    total_steps: int = 1,
    memory: StepSizeMemory | None = None,
) -> LossOutput:
    """The config's loss on batch ``x`` at update ``step`` of ``total_steps``; ``memory`` keeps
    a posterior sampler's adapted step sizes from one call to the next (one per shard)."""
    return LOSSES[config.train.loss](model, x, config, rng, step, total_steps, memory)
