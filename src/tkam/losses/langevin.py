"""Langevin maximum-likelihood loss (maths 4.2)."""

from __future__ import annotations

import torch
from torch import Tensor

from tkam.config import PosteriorConfig
from tkam.losses.chains import (
    ChainTarget,
    chain_target,
    exact_log_normaliser,
    prior_phases,
    run_chains,
)
from tkam.losses.output import LossOutput
from tkam.model import LatentModel
from tkam.posterior.importance import importance_weights
from tkam.posterior.memory import StepSizeMemory

__all__ = ["importance_start", "langevin_loss", "posterior_samples"]


def posterior_samples(
    model: LatentModel,
    x: Tensor,
    config: PosteriorConfig,
    rng: torch.Generator | None,
    memory: StepSizeMemory | None = None,
) -> Tensor:
    """One Langevin chain per datum on ``log p(z) + log p(x_b | z)`` (noise-free), started where
    the prior starts chains (:meth:`~tkam.prior.protocol.PriorModule.chain_start`: a prior draw,
    or the latent EBM's Gaussian base), or with ``config.init_samples`` by
    :func:`importance_start`, and moved ``config.steps`` times; the final positions, detached.
    With ``config.space = "noise"`` the chains move on the prior's noise from standard normal
    starts (or noise picked by :func:`importance_start`) and end as the latents it maps to
    (:func:`~tkam.losses.chains.chain_target`).
    ``memory`` carries autoMALA's adapted step sizes between calls
    (:func:`~tkam.losses.chains.run_chains`; maths 4.2)."""
    chains = chain_target(model, x, config)
    if config.init_samples > 0:
        z0 = importance_start(model, x, config.init_samples, rng, chains)
    else:
        z0 = chains.start(len(x), rng)
    one = torch.ones(1, dtype=x.dtype, device=x.device)  # a single population at t = 1
    return chains.latents(run_chains(z0, chains.target, one, rng, config, memory).z)


@torch.no_grad()
def importance_start(
    model: LatentModel,
    x: Tensor,
    num_samples: int,
    rng: torch.Generator | None,
    chains: ChainTarget | None = None,
) -> Tensor:
    """Chain starts by sampling-importance-resampling: ``num_samples`` prior proposals shared by
    the batch, and for each datum one of them drawn with probability proportional to its
    noise-free likelihood ``p(x_b | z_m)``: a draw from the self-normalised importance
    approximation of the posterior, ``(B, *latent_shape)``. With ``chains`` that move on the
    prior's noise (:func:`~tkam.losses.chains.chain_target`) the proposals are standard normal
    noise, weighed by the likelihood of the latents they map to, and the picked noise is
    returned, ``(B, *noise_shape)``."""
    if chains is not None and chains.on_noise:
        positions = chains.start(num_samples, rng)
        proposals = chains.latents(positions)
    else:
        positions = proposals = model.prior.sample(num_samples, rng)
    prediction = model.likelihood.mean(model.decode(proposals))
    log_lik = model.likelihood.log_likelihood_matrix(x, prediction)  # (B, M)
    weights, _ = importance_weights(log_lik.float())
    pick = torch.multinomial(weights, 1, generator=rng).squeeze(1)
    return positions[pick]


def langevin_loss(
    model: LatentModel,
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
    log_z = exact_log_normaliser(prior, contrastive)
    z = posterior_samples(model, x, config, rng, memory)
    prediction = model.likelihood.noised(model.decode(z), rng)
    log_lik = model.likelihood.log_likelihood(x, prediction)  # (B,)
    negatives = None if log_z is not None else prior.sample(len(x), rng)
    positive, negative = prior_phases(prior, z, negatives, log_z)
    loss = -(positive + log_lik.mean() - negative)
    metrics = {"log_likelihood": float(log_lik.detach().mean())}
    return LossOutput(loss, metrics)
