"""Training losses and the registry that picks one per config.

Every loss composes the samplers and estimators of :mod:`tkam.posterior` with a model's parts
and returns a :class:`LossOutput`. :data:`LOSSES` maps each value of ``train.loss`` to a
function of one :class:`LossCall` (model, batch, config, random stream, step, total steps and the
shard's sampler memory): T-KAM's ``importance``, ``langevin``
and ``thermodynamic``, the VAE's ``elbo``; the latent EBM trains with ``langevin`` on the
posterior sampler of its ``model`` section (:func:`posterior_settings`). A built config never
holds ``auto``: it is resolved to one of these.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple, cast

import torch
from torch import Tensor

from tkam.baselines.lebm import ula_step_size
from tkam.baselines.vae import VAE
from tkam.config import ExperimentConfig, PosteriorConfig
from tkam.losses.chains import posterior_sampler
from tkam.losses.elbo import elbo_loss
from tkam.losses.importance import importance_loss
from tkam.losses.langevin import langevin_loss, posterior_samples
from tkam.losses.output import LossOutput
from tkam.losses.thermodynamic import thermodynamic_loss
from tkam.model import LatentModel
from tkam.posterior.memory import StepSizeMemory

__all__ = [
    "LOSSES",
    "LossCall",
    "LossFunction",
    "LossOutput",
    "compute_loss",
    "elbo_loss",
    "importance_loss",
    "langevin_loss",
    "posterior_sampler",
    "posterior_samples",
    "posterior_settings",
    "thermodynamic_loss",
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


class LossCall(NamedTuple):
    """One evaluation of the configured loss: what every entry of :data:`LOSSES` receives."""

    model: LatentModel
    x: Tensor
    config: ExperimentConfig
    rng: torch.Generator
    step: int
    total: int
    memory: StepSizeMemory | None


LossFunction = Callable[[LossCall], LossOutput]


def _importance(call: LossCall) -> LossOutput:
    train = call.config.train
    return importance_loss(
        call.model,
        call.x,
        train.importance_samples,
        call.rng,
        resampler=train.resampler,
        threshold=train.resampling_threshold,
        contrastive=train.contrastive,
        negatives=train.negatives,
        compat=train.compat_weights,
        compat_residual=train.compat_residual,
    )


def _langevin(call: LossCall) -> LossOutput:
    settings = posterior_settings(call.config)
    contrastive = call.config.train.contrastive
    return langevin_loss(call.model, call.x, settings, call.rng, contrastive, call.memory)


def _thermodynamic(call: LossCall) -> LossOutput:
    config = call.config
    return thermodynamic_loss(
        call.model,
        call.x,
        config.posterior,
        config.thermodynamic,
        call.step,
        call.total,
        call.rng,
        contrastive=config.train.contrastive,
        memory=call.memory,
    )


def _elbo(call: LossCall) -> LossOutput:
    model = cast(VAE, call.model)  # the config gives the elbo loss to the VAE alone
    return elbo_loss(model, call.x, call.rng, model.kl_weight)


LOSSES: dict[str, LossFunction] = {
    "importance": _importance,
    "langevin": _langevin,
    "thermodynamic": _thermodynamic,
    "elbo": _elbo,
}


def compute_loss(
    model: LatentModel,
    x: Tensor,
    config: ExperimentConfig,
    rng: torch.Generator,
    step: int = 1,
    total_steps: int = 1,
    memory: StepSizeMemory | None = None,
) -> LossOutput:
    """The config's loss on batch ``x`` at update ``step`` of ``total_steps``; ``memory`` keeps
    a posterior sampler's adapted step sizes from one call to the next (one per shard)."""
    call = LossCall(model, x, config, rng, step, total_steps, memory)
    return LOSSES[config.train.loss](call)
