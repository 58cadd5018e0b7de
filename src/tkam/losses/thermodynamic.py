"""Thermodynamic (power-posterior population) loss (spec section 4.3)."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from tkam.config import PosteriorConfig, ThermodynamicConfig
from tkam.losses.importance import LossOutput
from tkam.losses.langevin import run_chains
from tkam.model import TKAM

__all__ = ["thermodynamic_loss", "tempered_ula", "TemperedState"]


class TemperedState(NamedTuple):
    """Chains with the prior and likelihood parts of their log-density and score kept apart.

    A chain moved to another temperature by replica exchange needs ``grad_prior + t grad_lik``
    at its new ``t``: with the parts cached, a swap is a permutation, not a new evaluation.
    """

    z: Tensor  # (chains, *event)
    log_prior: Tensor  # (chains,)
    log_lik: Tensor  # (chains,) noise-free
    grad_prior: Tensor
    grad_lik: Tensor
    pre_activation: Tensor  # generator output at z (for the exchange's noised likelihood)

    def permute(self, index: Tensor) -> TemperedState:
        return TemperedState(*(field[index] for field in self))


def _evaluate(model: TKAM, x: Tensor, z: Tensor) -> TemperedState:
    """Both parts and both scores at ``z``: one generator forward and backward, as one ULA step."""
    with torch.enable_grad():
        z = z.detach().requires_grad_(True)
        pre_activation = model.decode(z)
        log_lik = model.likelihood.log_likelihood(x, model.likelihood.mean(pre_activation))
        log_prior = model.prior.log_prior(z)
        grad_prior = torch.autograd.grad(log_prior.sum(), z, retain_graph=True)[0]
        grad_lik = torch.autograd.grad(log_lik.sum(), z)[0]
    return TemperedState(
        z.detach(),
        log_prior.detach(),
        log_lik.detach(),
        grad_prior,
        grad_lik,
        pre_activation.detach(),
    )


def tempered_ula(
    model: TKAM,
    x_chains: Tensor,
    z0: Tensor,
    temps: Tensor,
    batch: int,
    posterior: PosteriorConfig,
    config: ThermodynamicConfig,
    generator: torch.Generator | None,
) -> tuple[Tensor, float]:
    """ULA on all ``N_t B`` chains at once with replica exchange between adjacent temperatures."""
    from tkam.posterior.langevin import LangevinState, langevin_proposal
    from tkam.posterior.tempering import replica_exchange

    num_temps = len(temps)
    chain_temps = temps.repeat_interleave(batch)  # population-major
    event = (1,) * (z0.dim() - 1)
    state = _evaluate(model, x_chains, z0)
    rates = []
    for iteration in range(posterior.steps):
        grad = state.grad_prior + chain_temps.view(-1, *event) * state.grad_lik
        move = LangevinState(state.z, state.log_prior, grad)
        state = _evaluate(model, x_chains, langevin_proposal(move, posterior.step_size, generator))
        if (iteration + 1) % config.replica_exchange_frequency:
            continue
        with torch.no_grad():
            prediction = model.likelihood.noised(state.pre_activation, generator)
            log_lik = model.likelihood.log_likelihood(x_chains, prediction).view(num_temps, -1)
            index = torch.arange(num_temps * batch, device=z0.device).view(num_temps, batch)
            result = replica_exchange(
                index.unsqueeze(-1), log_lik, temps, generator, per_chain=config.swap_per_chain
            )
        state = state.permute(result.z.reshape(-1))
        rates.append(result.accepted.float().mean())
    rate = float(torch.stack(rates).mean()) if rates else 0.0
    return state.z, rate


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
    x_chains = x.repeat(num_temps, *([1] * (x.dim() - 1)))  # (N_t B, ...)
    # The exact log Z first (one differentiable quadrature), so the samplers reuse its table.
    exact = not contrastive and hasattr(prior, "quadrature")
    log_z = prior.log_normaliser() if exact else None
    z0 = prior.sample(num_temps * batch, generator)

    if posterior.sampler == "automala":
        chain_temps = temps[1:].repeat_interleave(batch)

        def log_density(z: Tensor) -> Tensor:
            prediction = likelihood.mean(model.decode(z))
            return prior.log_prior(z) + chain_temps * likelihood.log_likelihood(
                x_chains, prediction
            )

        rates = []

        def exchange(iteration: int, state):  # noqa: ANN001, ANN202 - an AutoMALAState
            if (iteration + 1) % config.replica_exchange_frequency:
                return state
            with torch.no_grad():
                prediction = likelihood.noised(model.decode(state.z), generator)
                log_lik = likelihood.log_likelihood(x_chains, prediction).view(num_temps, batch)
            populations = state.z.view(num_temps, batch, *state.z.shape[1:])
            swapped, accepted, _ = replica_exchange(
                populations, log_lik, temps[1:], generator, per_chain=config.swap_per_chain
            )
            rates.append(float(accepted.float().mean()))
            # autoMALA caches the tempered score: refresh the chains that changed temperature.
            if not bool(accepted.any()):
                return state
            return refresh_state(state, swapped.reshape(state.z.shape), log_density)

        z = run_chains(z0, log_density, posterior, generator, callback=exchange)
        swap_rate = sum(rates) / max(len(rates), 1)
    else:
        z, swap_rate = tempered_ula(
            model, x_chains, z0, temps[1:], batch, posterior, config, generator
        )

    negatives = prior.sample(batch, generator)
    predictions = likelihood.noised(model.decode(torch.cat([negatives, z])), generator)
    x_all = torch.cat([x, x_chains])
    log_lik = likelihood.log_likelihood(x_all, predictions).view(num_temps + 1, batch)
    expectations = log_lik.mean(dim=1)  # E_0 (prior samples), E_1..E_N_t
    integral = thermodynamic_integral(expectations, temps, rule=config.integral)
    top = z.view(num_temps, batch, *z.shape[1:])[-1]
    if log_z is None:
        log_prior = prior.log_prior(torch.cat([top, negatives]))
        positive, negative = log_prior[:batch].mean(), log_prior[batch:].mean()
    else:
        positive = prior.log_prior(top, normalise=True, log_normaliser=log_z).mean()
        negative = integral.new_zeros(())
    loss = -(integral + positive - negative)
    metrics = {
        "power": float(power),
        "log_likelihood": float(expectations[-1].detach()),
        "swap_rate": swap_rate,
    }
    return LossOutput(loss, metrics)
