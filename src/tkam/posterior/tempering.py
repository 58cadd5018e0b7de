"""Power posteriors: temperature schedules, tempered targets, replica exchange and the
thermodynamic integral (spec section 4.3, ambiguities A4, A6, A7).

A population of power posteriors ``pi_t(z | x) ~ p(z) p(x | z)^t`` at temperatures
``0 = t_0 < t_1 < ... < t_N = 1`` turns the log-evidence into a one-dimensional integral,
``log p(x) = int_0^1 E_{pi_t}[log p(x | z)] dt``. Tempering is composition: the target of every
chain is ``log_prior + t * log_lik`` with ``t`` a per-chain tensor, so all temperatures move in
one batched sampler call (no loop over temperatures). Chains are laid out population-major
(ambiguity A4, recommended): population ``k`` holds one chain per data point, all at ``t_k``,
i.e. ``z`` viewed as ``(num_temps, batch, *event)`` and flattened to ``(num_temps * batch, ...)``
with per-chain temperatures ``t[1:].repeat_interleave(batch)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor

__all__ = [
    "INTEGRATION_RULES",
    "ReplicaExchangeResult",
    "power_schedule",
    "replica_exchange",
    "temperatures",
    "tempered_log_density",
    "thermodynamic_integral",
]

INTEGRATION_RULES = ("reference", "trapezoid")


def power_schedule(
    step: int, total_steps: int, p_start: float, p_end: float, num_cycles: int = 0
) -> float:
    """The temperature power ``p_i`` at parameter update ``i`` (spec 4.3, cyclic cosine).

    ``x_i = 2 pi (c + 1/2) (i - 1) / T`` and ``p_i = p_start + (p_end - p_start)(1 - cos x_i)/2``:
    ``c = 0`` is a half cosine from ``p_start`` (at ``i = 1``) towards ``p_end`` (reached at
    ``i = T + 1``); each further cycle adds a full return to ``p_start`` and back.

    Args:
        step: 1-based update index ``i``.
        total_steps: total number of parameter updates ``T >= 1``.
        p_start: power at the first update.
        p_end: power the schedule ends at.
        num_cycles: number of extra cosine cycles ``c >= 0``.

    Returns:
        the power ``p_i``.
    """
    if total_steps < 1:
        raise ValueError(f"total_steps must be >= 1, got {total_steps}")
    if num_cycles < 0:
        raise ValueError(f"num_cycles must be >= 0, got {num_cycles}")
    x = 2.0 * math.pi * (num_cycles + 0.5) * (step - 1) / total_steps
    return p_start + (p_end - p_start) * (1.0 - math.cos(x)) / 2.0


def temperatures(
    num_temps: int,
    power: float,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> Tensor:
    """Temperatures ``t_k = (k / N_t)^p`` for ``k = 0..N_t`` (spec 4.3).

    ``t_0 = 0`` (the prior) and ``t_{N_t} = 1`` (the posterior) exactly; a power ``p > 1``
    packs the temperatures near 0, where ``E_{pi_t}[log p(x | z)]`` changes fastest.

    Args:
        num_temps: ``N_t >= 1``, the number of power posteriors (``t_1..t_{N_t}``).
        power: ``p > 0``.
        device: device of the result.
        dtype: dtype of the result (default: torch's default dtype).

    Returns:
        ``(num_temps + 1,)`` increasing temperatures.
    """
    if num_temps < 1:
        raise ValueError(f"num_temps must be >= 1, got {num_temps}")
    if not power > 0:
        raise ValueError(f"power must be > 0, got {power}")
    k = torch.arange(num_temps + 1, dtype=torch.float64, device=device)
    t = (k / num_temps) ** power
    return t.to(dtype or torch.get_default_dtype())


def tempered_log_density(
    log_prior_fn: Callable[[Tensor], Tensor],
    log_likelihood_fn: Callable[[Tensor], Tensor],
    t: Tensor | float,
) -> Callable[[Tensor], Tensor]:
    """The power-posterior target ``z -> log_prior(z) + t * log_lik(z)`` per chain.

    Args:
        log_prior_fn: ``z (chains, *event) -> (chains,)`` log-prior.
        log_likelihood_fn: ``z -> (chains,)`` log-likelihood of each chain's own data point.
        t: ``(chains,)`` temperature of every chain (or a float for all).

    Returns:
        a callable ``z -> (chains,)`` to hand to a sampler.
    """

    def log_density(z: Tensor) -> Tensor:
        return log_prior_fn(z) + t * log_likelihood_fn(z)

    return log_density


class ReplicaExchangeResult(NamedTuple):
    """Outcome of :func:`replica_exchange`.

    Attributes:
        z: ``(num_temps, batch, *event)`` populations after the swap.
        accepted: ``(batch,)`` bool, which data points swapped (all or none when not per chain).
        pair: 0-d long tensor ``k``: populations ``k`` and ``k + 1`` (0-based) were proposed.
    """

    z: Tensor
    accepted: Tensor
    pair: Tensor


def replica_exchange(
    z: Tensor,
    log_likelihood: Tensor,
    temperatures: Tensor,
    generator: torch.Generator,
    per_chain: bool = True,
) -> ReplicaExchangeResult:
    """Propose swapping one random adjacent pair of populations (spec 4.3, A7).

    A pair ``(k, k + 1)`` is drawn uniformly; the swap of data point ``b`` is accepted iff
    ``log u < (t_{k+1} - t_k)(l_b(z^{(k)}) - l_b(z^{(k+1)}))``, the Metropolis ratio of exchanging
    the states of two tempered chains. With ``per_chain`` (recommended) each data point decides
    independently; otherwise one decision is made for the whole batch from the summed
    log-likelihoods (the reference code). No host synchronisation: the pair stays a tensor.

    Chains that swapped now sit at another temperature: a sampler state that caches the tempered
    log-density and score must be refreshed (``tkam.posterior.langevin.refresh_state``).

    Args:
        z: ``(num_temps, batch, *event)`` populations, population ``k`` at ``temperatures[k]``.
        log_likelihood: ``(num_temps, batch)`` log-likelihoods of the current states (constants).
        temperatures: ``(num_temps,)`` temperatures of the populations in ``z`` (``t_1..t_N``,
            i.e. ``temperatures(N, p)[1:]``).
        generator: source of the pair and the uniforms.
        per_chain: decide per data point (True) or once for the batch (False, A7 code).

    Returns:
        :class:`ReplicaExchangeResult` with the new populations, the ``(batch,)`` swap mask and
        the pair index.
    """
    if log_likelihood.dim() != 2:
        raise ValueError(
            f"log_likelihood must have shape (num_temps, batch), got {tuple(log_likelihood.shape)}"
        )
    num_temps, batch = log_likelihood.shape
    if tuple(z.shape[:2]) != (num_temps, batch):
        raise ValueError(
            f"z must have shape (num_temps, batch, *event) = ({num_temps}, {batch}, ...), "
            f"got {tuple(z.shape)}"
        )
    if temperatures.shape != (num_temps,):
        raise ValueError(
            f"temperatures must hold one value per population ({num_temps},), got "
            f"{tuple(temperatures.shape)}; pass temperatures(N, p)[1:] for populations t_1..t_N"
        )
    if num_temps < 2:
        raise ValueError("replica exchange needs at least two populations")

    ll = log_likelihood.detach()
    pair = torch.randint(num_temps - 1, (1,), generator=generator, device=z.device)  # (1,)
    pair_next = pair + 1
    t = temperatures.detach().to(dtype=ll.dtype, device=ll.device)
    gap = (t.index_select(0, pair_next) - t.index_select(0, pair))[0]  # t_{k+1} - t_k
    l_low = ll.index_select(0, pair)[0]  # (batch,)
    l_high = ll.index_select(0, pair_next)[0]  # (batch,)

    if per_chain:
        log_ratio = gap * (l_low - l_high)  # (batch,)
    else:
        log_ratio = (gap * (l_low.sum() - l_high.sum())).expand(1)
    u = torch.rand(log_ratio.shape, generator=generator, dtype=ll.dtype, device=ll.device)
    accepted = (torch.log1p(-u) < log_ratio).expand(batch)  # NaN ratios reject

    z_low = z.index_select(0, pair)[0]  # (batch, *event)
    z_high = z.index_select(0, pair_next)[0]
    mask = accepted.view(batch, *([1] * (z.dim() - 2)))
    z_new = z.clone()
    z_new.index_copy_(0, pair, torch.where(mask, z_high, z_low).unsqueeze(0))
    z_new.index_copy_(0, pair_next, torch.where(mask, z_low, z_high).unsqueeze(0))
    return ReplicaExchangeResult(z_new, accepted.clone(), pair[0])


def thermodynamic_integral(
    expectations: Tensor, temperatures: Tensor, rule: str = "reference"
) -> Tensor:
    """Discretised ``log p(x) = int_0^1 E_{pi_t}[log p(x | z)] dt`` (spec 4.3, A6).

    With ``Delta t_k = t_k - t_{k-1}``:

    * ``reference``: ``Delta t_1 E_0 + sum_{k=1}^{N} Delta t_k E_k``, the reference code's sum
      (the first interval counted twice; total weight ``1 + Delta t_1``); the default, since it
      produced the published results;
    * ``trapezoid``: ``sum_k Delta t_k (E_{k-1} + E_k) / 2``, the consistent rule.

    Differentiable in ``expectations`` (the loss differentiates through them).

    Args:
        expectations: ``(num_temps + 1, ...)`` ``E_k = E_{pi_{t_k}}[log p(x | z)]``, ``E_0`` under
            the prior; trailing dims (e.g. a batch) are integrated independently.
        temperatures: ``(num_temps + 1,)`` ``t_0 = 0, ..., t_N = 1``.
        rule: ``reference`` or ``trapezoid``.

    Returns:
        the integral, shaped like ``expectations[0]``.
    """
    if rule not in INTEGRATION_RULES:
        raise ValueError(f"unknown rule {rule!r}; choose one of: {', '.join(INTEGRATION_RULES)}")
    if temperatures.dim() != 1 or expectations.shape[:1] != temperatures.shape:
        raise ValueError(
            f"expectations (num_temps + 1, ...) and temperatures (num_temps + 1,) must agree, "
            f"got {tuple(expectations.shape)} and {tuple(temperatures.shape)}"
        )
    if temperatures.shape[0] < 2:
        raise ValueError("the integral needs at least two temperatures")
    t = temperatures.to(dtype=expectations.dtype, device=expectations.device)
    gaps = (t[1:] - t[:-1]).view(-1, *([1] * (expectations.dim() - 1)))  # (N, 1, ...)
    if rule == "reference":
        return gaps[0] * expectations[0] + (gaps * expectations[1:]).sum(dim=0)
    return (gaps * (expectations[:-1] + expectations[1:]) / 2.0).sum(dim=0)
