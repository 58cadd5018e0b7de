"""Power posteriors: temperature schedules, tempered targets, replica exchange and the
thermodynamic integral (maths 4.3, departures A4, A6, A7).

A population of power posteriors ``pi_t(z | x) ~ p(z) p(x | z)^t`` at temperatures
``0 = t_0 < t_1 < ... < t_N = 1`` turns the log-evidence into a one-dimensional integral,
``log p(x) = int_0^1 E_{pi_t}[log p(x | z)] dt``. Tempering is composition: the target of every
chain is ``log_prior + t * log_lik`` with ``t`` a per-chain tensor, so all temperatures move in
one batched sampler call (no loop over temperatures). Chains are laid out population-major
(departures A4, recommended): population ``k`` holds one chain per data point, all at ``t_k``,
i.e. ``z`` viewed as ``(num_temps, batch, *event)`` and flattened to ``(num_temps * batch, ...)``
with per-chain temperatures ``t[1:].repeat_interleave(batch)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple, Protocol

import torch
from torch import Tensor

from tkam.posterior.automala import (
    AutoMALARun,
    AutoMALAState,
    automala_adapt,
    automala_iteration,
    automala_start,
    check_automala_settings,
)
from tkam.posterior.langevin import langevin_proposal, ula_step
from tkam.posterior.state import (
    LangevinState,
    LogDensity,
    Support,
    check_finite,
    check_score,
    init_state,
    per_chain,
    refresh_state,
)

__all__ = [
    "INTEGRATION_RULES",
    "AutoMALA",
    "ReplicaExchangeResult",
    "Sampler",
    "ULA",
    "power_schedule",
    "replica_exchange",
    "temperatures",
    "TemperedChains",
    "TemperedLogDensity",
    "TemperedRun",
    "TemperedState",
    "TemperedTarget",
    "swap_index",
    "tempered_init",
    "tempered_langevin",
    "tempered_ula_step",
    "thermodynamic_integral",
]

INTEGRATION_RULES = ("reference", "trapezoid")


def power_schedule(
    step: int, total_steps: int, p_start: float, p_end: float, num_cycles: int = 0
) -> float:
    """The temperature power ``p_i`` at parameter update ``i`` (maths 4.3, cyclic cosine).

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
    """Temperatures ``t_k = (k / N_t)^p`` for ``k = 0..N_t`` (maths 4.3).

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


class TemperedTarget(NamedTuple):
    """The power posteriors ``pi_t(z) ~ p(z) p(x | z)^t`` of one model and data, in parts.

    Every sampler here runs on this one target. The parts stay apart so that a chain moved to
    another temperature needs no new evaluation (its score is ``grad_prior + t grad_lik``), and
    so that replica exchange can decide on a likelihood evaluated another way (with output
    noise) from what the likelihood pass already computed.

    Attributes:
        log_prior: ``z (chains, *event) -> (chains,)``, differentiable in ``z``.
        log_likelihood: ``z -> (log_lik (chains,), output)``: each chain's log-likelihood of its
            own data point, differentiable in ``z``, and what the pass computed on the way (for
            a generative model, the generator output) for ``exchange_log_likelihood``.
        exchange_log_likelihood: ``(output, rng) -> (chains,)``, the log-likelihood that replica
            exchange compares (constants); may draw from ``rng``.
        support: the prior's support, a box the samplers reflect their chains into (every power
            posterior has the prior's support); None for an unbounded prior, or to let chains
            leave it (the reference's samplers).
        on_rows: ``rows (k,) -> TemperedTarget``, the same target for chains ``rows`` alone
            (their data points), so that a sampler can evaluate a few chains
            (:data:`~tkam.posterior.state.LogDensity`); None when the chains must be evaluated
            together.
    """

    log_prior: LogDensity
    log_likelihood: Callable[[Tensor], tuple[Tensor, Tensor]]
    exchange_log_likelihood: Callable[[Tensor, torch.Generator | None], Tensor]
    support: Support | None = None
    on_rows: Callable[[Tensor], TemperedTarget] | None = None

    def log_density(self, t: Tensor | float) -> LogDensity:
        """``z -> log_prior(z) + t * log_lik(z)``, with ``t`` a float or ``(chains,)`` tensor;
        with :attr:`on_rows`, a log-density with an ``on_rows`` method."""
        return TemperedLogDensity(self, t)


@dataclass(frozen=True)
class TemperedLogDensity:
    """``z -> log_prior(z) + t * log_lik(z)`` of a :class:`TemperedTarget` at temperatures ``t``
    (a float or ``(chains,)``), with the restriction to some chains when the target has one."""

    target: TemperedTarget
    t: Tensor | float

    def __call__(self, z: Tensor) -> Tensor:
        log_lik = self.target.log_likelihood(z)[0]  # first: the training losses' order of terms
        return self.target.log_prior(z) + self.t * log_lik

    @property
    def on_rows(self) -> Callable[[Tensor], TemperedLogDensity] | None:
        """``rows -> log-density`` of chains ``rows`` alone; None if the target has no
        restriction."""
        restrict = self.target.on_rows
        if restrict is None:
            return None

        def rows_density(rows: Tensor) -> TemperedLogDensity:
            t = self.t[rows] if isinstance(self.t, Tensor) and self.t.dim() == 1 else self.t
            return TemperedLogDensity(restrict(rows), t)

        return rows_density


class TemperedState(NamedTuple):
    """Chains with the prior and likelihood parts of their log-density and score kept apart.

    A chain moved to another temperature by replica exchange needs ``grad_prior + t grad_lik``
    at its new ``t``: with the parts cached, a swap is a permutation, not a new evaluation.
    """

    z: Tensor  # (chains, *event)
    log_prior: Tensor  # (chains,)
    log_lik: Tensor  # (chains,)
    grad_prior: Tensor  # (chains, *event)
    grad_lik: Tensor  # (chains, *event)
    output: Tensor  # what the likelihood pass computed (for the exchange's likelihood)

    def permute(self, index: Tensor) -> TemperedState:
        """The chains reordered by ``index (chains,)``."""
        return TemperedState(*(field[index] for field in self))


def tempered_init(z: Tensor, target: TemperedTarget) -> TemperedState:
    """Both parts and both scores at ``z``: one likelihood pass forward and backward, as one ULA
    step costs (gradient tracking is switched on locally; the result is detached)."""
    with torch.enable_grad():
        z = z.detach().requires_grad_(True)
        log_lik, output = target.log_likelihood(z)
        log_prior = target.log_prior(z)
        grad_prior = _score(log_prior, z, retain_graph=True)
        grad_lik = _score(log_lik, z)
    return TemperedState(
        z.detach(), log_prior.detach(), log_lik.detach(), grad_prior, grad_lik, output.detach()
    )


def _score(value: Tensor, z: Tensor, retain_graph: bool = False) -> Tensor:
    if not value.requires_grad:  # a part that does not depend on z (or on anything)
        return torch.zeros_like(z)
    (grad,) = torch.autograd.grad(value.sum(), [z], retain_graph=retain_graph, allow_unused=True)
    return torch.zeros_like(z) if grad is None else grad


def tempered_ula_step(
    state: TemperedState,
    target: TemperedTarget,
    chain_temperatures: Tensor,
    step_size: float | Tensor,
    rng: torch.Generator | None,
) -> TemperedState:
    """One ULA step of every chain on ``log_prior + t_c log_lik`` (``t_c`` per chain), reflected
    into ``target.support`` when it has one."""
    t = per_chain(chain_temperatures, state.z)
    move = LangevinState(state.z, state.log_prior, state.grad_prior + t * state.grad_lik)
    proposal = langevin_proposal(move, step_size, rng, support=target.support)
    return tempered_init(proposal, target)


def swap_index(
    log_likelihood: Tensor,
    temperatures: Tensor,
    rng: torch.Generator | None,
    per_chain: bool = True,
) -> tuple[Tensor, Tensor]:
    """One replica-exchange attempt as a permutation of population-major chains.

    Args:
        log_likelihood: ``(num_temps * batch,)`` the exchange log-likelihood of every chain.
        temperatures: ``(num_temps,)`` the populations' temperatures.
        rng: source of the pair and the uniforms.
        per_chain: decide per data point (True) or once for the batch (the reference's rule,
            departures A7).

    Returns:
        ``index (num_temps * batch,)``: chain ``c`` of the new state is chain ``index[c]`` of
        the old one; and the ``(batch,)`` swap mask.
    """
    num_temps = temperatures.shape[0]
    table = log_likelihood.view(num_temps, -1)
    chains = torch.arange(table.numel(), device=log_likelihood.device).view_as(table)
    result = replica_exchange(chains.unsqueeze(-1), table, temperatures, rng, per_chain=per_chain)
    return result.z.reshape(-1), result.accepted


class TemperedChains(NamedTuple):
    """What a :class:`Sampler` of :func:`tempered_langevin` runs on.

    Attributes:
        target: the tempered target.
        temperatures: ``(chains,)`` every chain's temperature.
        log_density: ``target.log_density(temperatures)``, the tempered log-density.
        step_size: ULA's step, or autoMALA's starting step (float or ``(chains,)``).
        exchanges: whether chains change temperature (replica exchange between several
            populations).
    """

    target: TemperedTarget
    temperatures: Tensor
    log_density: LogDensity
    step_size: float | Tensor
    exchanges: bool


class Sampler(Protocol):
    """A sampler of power posteriors for :func:`tempered_langevin`: an init and a step function
    over one chain-state tuple (as the samplers of :mod:`tkam.posterior.langevin` and
    :mod:`tkam.posterior.automala` are), and what replica exchange needs from that state.

    Attributes:
        exchange_from: the first iteration (0-based) after which an exchange may be attempted.
    """

    @property
    def exchange_from(self) -> int: ...

    def init(self, z: Tensor, chains: TemperedChains) -> Any:
        """The state of chains at ``z`` (constants), with what :meth:`step` needs cached.

        Raises:
            RuntimeError: if the score is zero for every chain.
        """
        ...

    def step(
        self, state: Any, chains: TemperedChains, rng: torch.Generator | None, iteration: int
    ) -> Any:
        """Iteration ``iteration`` (0-based) of every chain."""
        ...

    def output(self, state: Any, chains: TemperedChains) -> Tensor:
        """What the likelihood pass computes at the chains' positions (the generator output),
        for ``target.exchange_log_likelihood``."""
        ...

    def refresh(self, state: Any, index: Tensor, swap_rate: Tensor, chains: TemperedChains) -> Any:
        """The state after a replica exchange: chain ``c`` is chain ``index[c]`` of ``state``,
        with what depends on its temperature recomputed (``swap_rate``: the fraction of data
        points that swapped, a 0-d tensor)."""
        ...

    def finish(self, state: Any) -> tuple[LangevinState | AutoMALAState, Tensor | None]:
        """The final chains (with their tempered score) and the adapted ``(chains,)`` step
        sizes (None for a sampler that adapts none)."""
        ...


@dataclass(frozen=True)
class ULA:
    """ULA (:func:`~tkam.posterior.langevin.ula_step`) for :func:`tempered_langevin`.

    With one population the state is a :class:`~tkam.posterior.state.LangevinState` of the
    tempered log-density (one backward pass per step); when chains change temperature it is a
    :class:`TemperedState` with the prior and likelihood parts apart (:func:`tempered_init`,
    :func:`tempered_ula_step`), so that a swap is a permutation of the cached parts, not a new
    evaluation.
    """

    exchange_from: ClassVar[int] = 0

    def init(self, z: Tensor, chains: TemperedChains) -> Any:
        if not chains.exchanges:
            state = init_state(z, chains.log_density)
            check_score(state)
            return state
        tempered = tempered_init(z, chains.target)
        check_score(_combined(tempered))
        return tempered

    def step(
        self, state: Any, chains: TemperedChains, rng: torch.Generator | None, iteration: int
    ) -> Any:
        if not chains.exchanges:
            support = chains.target.support
            return ula_step(state, chains.log_density, chains.step_size, rng, support=support)[0]
        t = chains.temperatures
        return tempered_ula_step(state, chains.target, t, chains.step_size, rng)

    def output(self, state: TemperedState, chains: TemperedChains) -> Tensor:
        return state.output

    def refresh(
        self, state: TemperedState, index: Tensor, swap_rate: Tensor, chains: TemperedChains
    ) -> TemperedState:
        return state.permute(index)  # the cached parts do not depend on the temperature

    def finish(self, state: Any) -> tuple[LangevinState, None]:
        return (_combined(state) if isinstance(state, TemperedState) else state), None


@dataclass(frozen=True)
class AutoMALA:
    """autoMALA (:mod:`tkam.posterior.automala`) for :func:`tempered_langevin`, on the tempered
    log-density: its state is an :class:`~tkam.posterior.automala.AutoMALARun`, chains are
    exchanged after the unadjusted phase only (maths 4.3), and an exchange that swapped any
    chain re-evaluates the log-density and score of every chain at its new temperature.

    Attributes:
        step_size_bounds, change_rate, num_unadjusted, eps: autoMALA's settings (see
            :func:`~tkam.posterior.automala.automala`).
    """

    step_size_bounds: tuple[float, float] = (1e-4, 10.0)
    change_rate: float = 2.0
    num_unadjusted: int = 2
    eps: float = 1e-4

    def __post_init__(self) -> None:
        check_automala_settings(self.step_size_bounds, self.change_rate)

    @property
    def exchange_from(self) -> int:
        return self.num_unadjusted

    def init(self, z: Tensor, chains: TemperedChains) -> AutoMALARun:
        return automala_start(z, chains.log_density, chains.step_size, self.step_size_bounds)

    def step(
        self,
        state: AutoMALARun,
        chains: TemperedChains,
        rng: torch.Generator | None,
        iteration: int,
    ) -> AutoMALARun:
        return automala_iteration(
            state,
            chains.log_density,
            rng,
            iteration,
            step_size_bounds=self.step_size_bounds,
            change_rate=self.change_rate,
            num_unadjusted=self.num_unadjusted,
            eps=self.eps,
            support=chains.target.support,
        )

    def output(self, state: AutoMALARun, chains: TemperedChains) -> Tensor:
        return chains.target.log_likelihood(state.state.z)[1]

    def refresh(
        self, state: AutoMALARun, index: Tensor, swap_rate: Tensor, chains: TemperedChains
    ) -> AutoMALARun:
        if not bool(swap_rate > 0):
            return state
        moved = refresh_state(state.state, state.state.z[index], chains.log_density)
        return state._replace(state=moved)

    def finish(self, state: AutoMALARun) -> tuple[AutoMALAState, Tensor]:
        final = automala_adapt(state, self.step_size_bounds, self.change_rate)
        return final, final.step_size


def _combined(state: TemperedState) -> LangevinState:
    """The chains of ``state`` with the score of the untempered posterior (``t = 1``), for the
    checks of a zero or non-finite score."""
    return LangevinState(state.z, state.log_prior, state.grad_prior + state.grad_lik)


class TemperedRun(NamedTuple):
    """Outcome of :func:`tempered_langevin`.

    Attributes:
        z: ``(num_temps * batch, *event)`` final positions, population-major, detached.
        swap_rate: mean fraction of data points whose exchange attempt was accepted (0 with one
            population or no attempt).
        step_size: autoMALA's adapted ``(chains,)`` step sizes (``None`` for ULA).
    """

    z: Tensor
    swap_rate: float
    step_size: Tensor | None


def tempered_langevin(
    z0: Tensor,
    target: TemperedTarget,
    temperatures: Tensor,
    rng: torch.Generator | None,
    *,
    sampler: Sampler,
    steps: int,
    step_size: float | Tensor,
    exchange_every: int = 1,
    swap_per_chain: bool = True,
) -> TemperedRun:
    """Langevin chains on ``num_temps`` power posteriors with replica exchange (maths 4.2, 4.3).

    The chains are population-major: ``z0`` is ``(num_temps * batch, *event)`` and population
    ``k`` (chains ``k * batch ... (k + 1) * batch - 1``) targets ``pi_{t_k}``, one chain per data
    point. All chains move in one batched sampler step per iteration; from the sampler's
    ``exchange_from`` on, every ``exchange_every`` iterations one random adjacent pair of
    populations proposes to swap (:func:`replica_exchange`), deciding on
    ``target.exchange_log_likelihood``, and the sampler refreshes the state of the swapped
    chains. One temperature (e.g. ``t = 1``, the posterior) is plain Langevin sampling without
    exchange.

    Args:
        z0: start positions (constants).
        target: the tempered target.
        temperatures: ``(num_temps,)`` temperatures of the populations.
        rng: source of randomness.
        sampler: the :class:`Sampler`, e.g. :class:`ULA` or :class:`AutoMALA`.
        steps: Langevin iterations.
        step_size: ULA step, or autoMALA's starting step (float or ``(chains,)``).
        exchange_every: iterations between exchange attempts.
        swap_per_chain: decide swaps per data point (True) or once per batch (departures A7).

    Returns:
        :class:`TemperedRun`.

    Raises:
        RuntimeError: if the initial score is zero for every chain.
        FloatingPointError: if the chains end with non-finite values.
    """
    num_temps = temperatures.shape[0]
    if z0.shape[0] % num_temps:
        raise ValueError(
            f"{z0.shape[0]} chains cannot be split into {num_temps} populations of equal size"
        )
    chain_temperatures = temperatures.repeat_interleave(z0.shape[0] // num_temps)
    log_density = target.log_density(chain_temperatures)
    chains = TemperedChains(target, chain_temperatures, log_density, step_size, num_temps > 1)
    state = sampler.init(z0, chains)
    swap_rates: list[Tensor] = []
    for iteration in range(steps):
        state = sampler.step(state, chains, rng, iteration)
        due = iteration >= sampler.exchange_from and (iteration + 1) % exchange_every == 0
        if not (chains.exchanges and due):
            continue
        with torch.no_grad():
            log_lik = target.exchange_log_likelihood(sampler.output(state, chains), rng)
            index, swapped = swap_index(log_lik, temperatures, rng, swap_per_chain)
        swap_rates.append(swapped.float().mean())
        state = sampler.refresh(state, index, swap_rates[-1], chains)
    final, adapted = sampler.finish(state)
    check_finite(final)
    rate = float(torch.stack(swap_rates).mean()) if swap_rates else 0.0
    return TemperedRun(final.z.detach(), rate, adapted)


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
    rng: torch.Generator | None,
    per_chain: bool = True,
) -> ReplicaExchangeResult:
    """Propose swapping one random adjacent pair of populations (maths 4.3, departures A7).

    A pair ``(k, k + 1)`` is drawn uniformly; the swap of data point ``b`` is accepted iff
    ``log u < (t_{k+1} - t_k)(l_b(z^{(k)}) - l_b(z^{(k+1)}))``, the Metropolis ratio of exchanging
    the states of two tempered chains. With ``per_chain`` (recommended) each data point decides
    independently; otherwise one decision is made for the whole batch from the summed
    log-likelihoods (the reference code). No host synchronisation: the pair stays a tensor.

    Chains that swapped now sit at another temperature: a sampler state that caches the tempered
    log-density and score must be refreshed (``tkam.posterior.state.refresh_state``).

    Args:
        z: ``(num_temps, batch, *event)`` populations, population ``k`` at ``temperatures[k]``.
        log_likelihood: ``(num_temps, batch)`` log-likelihoods of the current states (constants).
        temperatures: ``(num_temps,)`` temperatures of the populations in ``z`` (``t_1..t_N``,
            i.e. ``temperatures(N, p)[1:]``).
        rng: source of the pair and the uniforms.
        per_chain: decide per data point (True) or once for the batch (False, the reference's
            rule, departures A7).

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
    pair = torch.randint(num_temps - 1, (1,), generator=rng, device=z.device)  # (1,)
    pair_next = pair + 1
    t = temperatures.detach().to(dtype=ll.dtype, device=ll.device)
    gap = (t.index_select(0, pair_next) - t.index_select(0, pair))[0]  # t_{k+1} - t_k
    l_low = ll.index_select(0, pair)[0]  # (batch,)
    l_high = ll.index_select(0, pair_next)[0]  # (batch,)

    if per_chain:
        log_ratio = gap * (l_low - l_high)  # (batch,)
    else:
        log_ratio = (gap * (l_low.sum() - l_high.sum())).expand(1)
    u = torch.rand(log_ratio.shape, generator=rng, dtype=ll.dtype, device=ll.device)
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
    """Discretised ``log p(x) = int_0^1 E_{pi_t}[log p(x | z)] dt`` (maths 4.3, departures A6).

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
