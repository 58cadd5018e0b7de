"""Langevin maximum-likelihood loss (maths 4.2)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from tkam.config import PosteriorConfig
from tkam.losses.output import LossOutput
from tkam.model import TKAM
from tkam.posterior.memory import StepSizeMemory
from tkam.posterior.tempering import tempered_langevin

__all__ = ["chain_options", "langevin_loss", "posterior_samples"]


def chain_options(config: PosteriorConfig) -> dict[str, Any]:
    """The keyword arguments of :func:`~tkam.posterior.tempering.tempered_langevin` that a
    posterior section sets (``sampler = "importance"`` runs ULA: a deep prior's Langevin loss)."""
    return {
        "sampler": "automala" if config.sampler == "automala" else "ula",
        "steps": config.steps,
        "step_size": config.step_size,
        "step_size_bounds": config.step_size_bounds,
        "change_rate": config.change_rate,
        "num_unadjusted": config.num_unadjusted,
    }


def posterior_samples(
    model: TKAM,
    x: Tensor,
    config: PosteriorConfig,
    rng: torch.Generator | None,
    memory: StepSizeMemory | None = None,
) -> Tensor:
    """One Langevin chain per datum on ``log p(z) + log p(x_b | z)`` (noise-free), started where
    the prior starts chains (:meth:`~tkam.prior.protocol.PriorModule.chain_start`: a prior draw,
    or the latent EBM's Gaussian base) and moved ``config.steps`` times; the final positions,
    detached. With a
    ``memory``, autoMALA's chains start from the step sizes the last call adapted, and leave
    theirs for the next (maths 4.2)."""
    z0 = model.prior.chain_start(len(x), rng)
    one = torch.ones(1, dtype=x.dtype, device=x.device)  # a single population at t = 1
    options = chain_options(config)
    if memory is not None:
        options["step_size"] = memory.start(config.step_size, len(z0))
    run = tempered_langevin(z0, model.tempered_target(x), one, rng, **options)
    if memory is not None:
        memory.keep(run.step_size)
    return run.z


def langevin_loss(
    model: TKAM,
    x: Tensor,
    config: PosteriorConfig,
    rng: torch.Generator | None = None,
    contrastive: bool = True,
    memory: StepSizeMemory | None = None,
) -> LossOutput:
    """``L = -[mean_b log p(z_b) + mean_b l(x_b | z_b, xi_b) - mean_b log p(z^_b)]``.

    One posterior chain per datum (:func:`posterior_samples`, ULA or autoMALA); negatives ``z^``
    are B fresh prior samples. With an exact normaliser and without ``contrastive`` the
    log-prior is normalised by ``log Z`` and no negatives are drawn; a prior without one (deep
    or energy-based) always takes the contrastive gradient. ``memory`` carries autoMALA's
    adapted step sizes between calls (:func:`posterior_samples`).
    """
    prior = model.prior
    batch = len(x)
    exact = not contrastive and prior.exact_normaliser
    # The exact log Z first (one differentiable quadrature), so the samplers reuse its table.
    log_z = prior.log_normaliser() if exact else None
    z = posterior_samples(model, x, config, rng, memory)
    prediction = model.likelihood.noised(model.decode(z), rng)
    log_lik = model.likelihood.log_likelihood(x, prediction)  # (B,)
    if exact:
        positive = prior.log_prior(z, normalise=True, log_normaliser=log_z).mean()
        negative = log_lik.new_zeros(())
    else:
        negatives = prior.sample(batch, rng)
        log_prior = prior.log_prior(torch.cat([z, negatives]))
        positive, negative = log_prior[:batch].mean(), log_prior[batch:].mean()
    loss = -(positive + log_lik.mean() - negative)
    metrics = {"log_likelihood": float(log_lik.detach().mean())}
    return LossOutput(loss, metrics)
