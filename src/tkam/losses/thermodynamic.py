"""Thermodynamic (power-posterior population) loss (spec section 4.3)."""

from __future__ import annotations

import torch
from torch import Tensor

from tkam.config import PosteriorConfig, ThermodynamicConfig
from tkam.losses.importance import LossOutput
from tkam.losses.langevin import run_chains
from tkam.model import TKAM

__all__ = ["thermodynamic_loss"]


def thermodynamic_loss(
    model: TKAM,
    x: Tensor,
    posterior: PosteriorConfig,
    config: ThermodynamicConfig,
    step: int,
    total_steps: int,
    generator: torch.Generator | None = None,
    contrastive: bool = True,
) -> LossOutput:
    """Thermodynamic-integration surrogate of ``-log p(x)`` over ``N_t`` power posteriors.

    Temperatures ``t_k = (k / N_t)^p`` with ``p`` on the cyclic cosine schedule over training.
    Population ``k`` holds one chain per datum targeting ``p(z) p(x_b | z)^{t_k}``; all
    ``N_t B`` chains move in one batched Langevin run, with a replica-exchange attempt between one
    random adjacent pair every ``replica_exchange_frequency`` iterations (per datum, or once for
    the batch, A7). The loss is

    ``-[I(t, E) + mean_b log p(z_b^{(N_t)}) - mean_b log p(z^_b)]``

    where ``E_0`` is the mean log-likelihood of B fresh prior samples ``z^``, ``E_k`` that of
    population ``k`` (fresh output noise), and ``I`` the reference's Riemann sum (A6) or the
    trapezoid rule; the prior's positive phase uses the ``t = 1`` population (A5).
    """
    from tkam.posterior.langevin import refresh_state
    from tkam.posterior.tempering import (
        power_schedule,
        replica_exchange,
        temperatures,
        thermodynamic_integral,
    )

    prior, likelihood = model.prior, model.likelihood
    num_temps, batch = config.num_temps, len(x)
    power = power_schedule(step, total_steps, config.p_start, config.p_end, config.num_cycles)
    temps = temperatures(num_temps, power, device=x.device, dtype=x.dtype)  # (N_t + 1,)
    chain_temps = temps[1:].repeat_interleave(batch)  # population-major: (N_t B,)
    x_chains = x.repeat(num_temps, *([1] * (x.dim() - 1)))  # (N_t B, ...)

    last: dict[str, Tensor] = {}

    def log_density(z: Tensor) -> Tensor:
        pre_activation = model.decode(z)
        last["z"], last["pre_activation"] = z.detach(), pre_activation.detach()
        prediction = likelihood.mean(pre_activation)
        return prior.log_prior(z) + chain_temps * likelihood.log_likelihood(x_chains, prediction)

    swaps = {"attempts": 0, "accepted": 0.0}

    def exchange(iteration: int, state):  # noqa: ANN001, ANN202 - a LangevinState
        if (iteration + 1) % config.replica_exchange_frequency != 0:
            return state
        with torch.no_grad():
            # The sampler's last evaluation was at the current states: reuse its decoding.
            cached = last.get("z")
            same = (
                cached is not None
                and cached.shape == state.z.shape
                and torch.equal(cached, state.z)
            )
            pre_activation = last["pre_activation"] if same else model.decode(state.z)
            prediction = likelihood.noised(pre_activation, generator)
            log_lik = likelihood.log_likelihood(x_chains, prediction).view(num_temps, batch)
        populations = state.z.view(num_temps, batch, *state.z.shape[1:])
        swapped, accepted, _ = replica_exchange(
            populations, log_lik, temps[1:], generator, per_chain=config.swap_per_chain
        )
        swaps["attempts"] += 1
        swaps["accepted"] += float(accepted.float().mean())
        if not bool(accepted.any()):
            return state
        # The swapped chains now target other temperatures: refresh the cached score.
        return refresh_state(state, swapped.reshape(state.z.shape), log_density)

    z0 = prior.sample(num_temps * batch, generator)
    z = run_chains(z0, log_density, posterior, generator, callback=exchange)
    negatives = prior.sample(batch, generator)
    predictions = likelihood.noised(model.decode(torch.cat([negatives, z])), generator)
    x_all = torch.cat([x, x_chains])
    log_lik = likelihood.log_likelihood(x_all, predictions).view(num_temps + 1, batch)
    expectations = log_lik.mean(dim=1)  # E_0 (prior samples), E_1..E_N_t
    integral = thermodynamic_integral(expectations, temps, rule=config.integral)
    top = z.view(num_temps, batch, *z.shape[1:])[-1]
    if contrastive or not hasattr(prior, "quadrature"):
        log_prior = prior.log_prior(torch.cat([top, negatives]))
        positive, negative = log_prior[:batch].mean(), log_prior[batch:].mean()
    else:
        positive, negative = prior.log_prior(top, normalise=True).mean(), integral.new_zeros(())
    loss = -(integral + positive - negative)
    metrics = {
        "power": float(power),
        "log_likelihood": float(expectations[-1].detach()),
        "swap_rate": swaps["accepted"] / max(swaps["attempts"], 1),
    }
    return LossOutput(loss, metrics)
