"""Thermodynamic (power-posterior population) loss (maths 4.3)."""

from __future__ import annotations

import torch
from torch import Tensor

from tkam.config import PosteriorConfig, ThermodynamicConfig
from tkam.losses.chains import chain_target, exact_log_normaliser, prior_phases, run_chains
from tkam.losses.output import LossOutput
from tkam.model import LatentModel
from tkam.posterior.memory import StepSizeMemory
from tkam.posterior.tempering import power_schedule, temperatures, thermodynamic_integral

__all__ = ["thermodynamic_loss"]


def thermodynamic_loss(
    model: LatentModel,
    x: Tensor,
    posterior: PosteriorConfig,
    config: ThermodynamicConfig,
    step: int,
    total_steps: int,
    rng: torch.Generator | None = None,
    contrastive: bool = True,
    memory: StepSizeMemory | None = None,
) -> LossOutput:
    """Thermodynamic-integration surrogate of ``-log p(x)`` over ``N_t`` power posteriors.

    Temperatures ``t_k = (k / N_t)^p`` with ``p`` on the cyclic cosine schedule over training.
    Population ``k`` holds one chain per datum targeting ``p(z) p(x_b | z)^{t_k}``; all
    ``N_t B`` chains move in one batched Langevin run
    (:func:`~tkam.losses.chains.run_chains`), with a replica-exchange attempt
    between one random adjacent pair every ``replica_exchange_frequency`` iterations (per datum,
    or once for the batch, departures A7). The loss is

    ``-[I(t, E) + mean_b log p(z_b^{(N_t)}) - mean_b log p(z^_b)]``

    where ``E_0`` is the mean log-likelihood of B fresh prior samples ``z^``, ``E_k`` that of
    population ``k`` (fresh output noise), and ``I`` the reference's Riemann sum (departures A6)
    or the trapezoid rule; the prior's positive phase uses the ``t = 1`` population (departures
    A5). With an exact normaliser and without ``contrastive``, ``log Z`` replaces the negative
    phase. ``memory`` carries autoMALA's adapted step sizes from one call to the next
    (maths 4.2).
    """
    prior, likelihood = model.prior, model.likelihood
    num_temps, batch = config.num_temps, len(x)
    power = power_schedule(step, total_steps, config.p_start, config.p_end, config.num_cycles)
    temps = temperatures(num_temps, power, device=x.device, dtype=x.dtype)  # (N_t + 1,)
    x_chains = x.repeat(num_temps, *([1] * (x.dim() - 1)))  # (N_t B, ...)
    log_z = exact_log_normaliser(prior, contrastive)
    chains = chain_target(model, x_chains, posterior)
    # Populations start at prior draws (a deep prior's included), or at noise on the noise.
    z0 = (
        chains.start(num_temps * batch, rng)
        if chains.on_noise
        else prior.sample(num_temps * batch, rng)
    )
    run = run_chains(
        z0,
        chains.target,
        temps[1:],
        rng,
        posterior,
        memory,
        exchange_every=config.replica_exchange_frequency,
        swap_per_chain=config.swap_per_chain,
    )
    z = chains.latents(run.z)

    negatives = prior.sample(batch, rng)
    predictions = likelihood.noised(model.decode(torch.cat([negatives, z])), rng)
    x_all = torch.cat([x, x_chains])
    log_lik = likelihood.log_likelihood(x_all, predictions).view(num_temps + 1, batch)
    expectations = log_lik.mean(dim=1)  # E_0 (prior samples), E_1..E_N_t
    integral = thermodynamic_integral(expectations, temps, rule=config.integral)
    top = z.view(num_temps, batch, *z.shape[1:])[-1]
    positive, negative = prior_phases(prior, top, negatives, log_z)
    loss = -(integral + positive - negative)
    metrics = {
        "power": float(power),
        "log_likelihood": float(expectations[-1].detach()),
        "swap_rate": run.swap_rate,
    }
    return LossOutput(loss, metrics)
