"""autoMALA: MALA with a per-step, per-chain step-size search (Biron-Lattes et al. 2024; maths 4.2,
departures A12), over the chain states of :mod:`tkam.posterior.state`."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor

from tkam.posterior.state import (
    LangevinState,
    LogDensity,
    Support,
    check_finite,
    check_score,
    init_state,
    log_uniform,
    normal,
    on_rows,
    per_chain,
    reflect,
    select,
    sum_event,
    to_state,
    where_chains,
)

__all__ = [
    "AutoMALAInfo",
    "AutoMALARun",
    "AutoMALAState",
    "TARGET_ACCEPTANCE",
    "automala",
    "automala_adapt",
    "automala_init",
    "automala_iteration",
    "automala_start",
    "automala_step",
    "check_automala_settings",
    "mixed_preconditioner",
]

# The end-of-call adaptation aims at the optimal MALA acceptance rate (Roberts & Rosenthal).
TARGET_ACCEPTANCE = 0.574


class AutoMALAState(NamedTuple):
    """:class:`LangevinState` plus the per-chain step size that autoMALA persists between calls.

    Attributes:
        z: ``(chains, *event)`` positions.
        log_density: ``(chains,)`` log-density at ``z``.
        grad: ``(chains, *event)`` gradient of the log-density at ``z``.
        step_size: ``(chains,)`` the step size each chain's step-size search starts from.
    """

    z: Tensor
    log_density: Tensor
    grad: Tensor
    step_size: Tensor


class AutoMALAInfo(NamedTuple):
    """What one autoMALA step did, per chain.

    Attributes:
        acceptance_probability: ``(chains,)`` ``min(1, r)`` for reversible proposals, else 0
            (1 in the unadjusted phase, unless the move gave a non-finite density).
        accepted: ``(chains,)`` bool, whether the chain moved.
        step_size: ``(chains,)`` the step size the forward search selected.
        reversible: ``(chains,)`` bool, outcome of the reversibility check.
    """

    acceptance_probability: Tensor
    accepted: Tensor
    step_size: Tensor
    reversible: Tensor


# ---------------------------------------------------------------------------------------------
# autoMALA (Biron-Lattes et al. 2024; maths 4.2, departures A12)


def mixed_preconditioner(z: Tensor, rng: torch.Generator | None) -> Tensor:
    """Draw autoMALA's diagonal ``M^{1/2}``, shared by all chains (maths 4.2).

    With ``sigma`` the per-coordinate standard deviation across chains (0, or a single chain,
    maps to 1): with probability 1/3 ``1 / sigma``, with probability 1/3 ones, otherwise
    ``m + (1 - m) / sigma`` with ``m ~ U(0, 1)``. The random mixture keeps the sampler robust
    when the spread across chains misstates the local scale (e.g. chains in several modes).

    Args:
        z: ``(chains, *event)`` current positions.
        rng: source of the two uniforms.

    Returns:
        ``event``-shaped positive tensor ``M^{1/2}``.
    """
    sigma = z.detach().std(dim=0, correction=0)  # (*event)
    sigma = torch.where(torch.isfinite(sigma) & (sigma > 0), sigma, torch.ones_like(sigma))
    inverse = 1.0 / sigma
    u = torch.rand((2,), generator=rng, dtype=z.dtype, device=z.device)
    choice, m = u[0], u[1]
    mixed = m + (1.0 - m) * inverse
    return torch.where(
        choice < 1.0 / 3.0, inverse, torch.where(choice < 2.0 / 3.0, torch.ones_like(sigma), mixed)
    )


class _Leapfrog(NamedTuple):
    state: LangevinState  # position, log-density and score after the step
    momentum: Tensor  # (chains, *event) final momentum
    log_ratio: Tensor  # (chains,) log r; non-finite values mapped to -inf


def _leapfrog(
    start: LangevinState,
    momentum: Tensor,
    step_size: Tensor,
    scale: Tensor,
    log_density_fn: LogDensity,
    support: Support | None = None,
) -> _Leapfrog:
    """One leapfrog step of the preconditioned Hamiltonian (one gradient evaluation).

    ``scale`` is ``M^{-1/2}``: gradient and momentum are multiplied by it, so the position moves
    by ``eta scale rho + eta^2/2 scale^2 grad``: a Langevin proposal with per-coordinate step
    ``eta^2 scale^2 / 2``, proportional to ``sigma^2`` when ``M^{1/2} = 1 / sigma``. The momentum is
    standard normal and the kinetic energy ``||rho||^2 / 2`` (the map is volume preserving and
    reversible under momentum flip for any fixed ``scale``). With a ``support`` the position is
    reflected at its walls and the momentum of each coordinate mirrored an odd number of times
    is reversed: the dynamics of a hard wall, still volume preserving and reversible, so the
    acceptance ratio keeps its form.
    """
    step = per_chain(step_size, start.z)
    half = momentum + 0.5 * step * scale * start.grad
    position = start.z + step * scale * half
    if support is not None:
        position, mirrored = reflect(position, support)
        half = torch.where(mirrored, -half, half)
    end = init_state(position, log_density_fn)
    momentum_end = half + 0.5 * step * scale * end.grad
    log_ratio = (
        end.log_density
        - start.log_density
        - 0.5 * (sum_event(momentum_end.square()) - sum_event(momentum.square()))
    )
    # Published autoMALA treats a non-finite ratio as a step that is too large (keep shrinking).
    log_ratio = torch.where(torch.isfinite(log_ratio), log_ratio, -math.inf)
    return _Leapfrog(end, momentum_end, log_ratio)


def _active_leapfrog(
    active: Tensor,
    current: _Leapfrog,
    start: LangevinState,
    momentum: Tensor,
    step_size: Tensor,
    scale: Tensor,
    log_density_fn: LogDensity,
    support: Support | None,
) -> _Leapfrog:
    """:func:`_leapfrog` of the ``active`` chains, the others' entries taken from ``current``
    (the search does not read them): only the active chains are evaluated when the log-density
    restricts to some chains, else all of them."""
    rows = active.nonzero().squeeze(1)
    restricted = on_rows(log_density_fn, rows) if len(rows) < len(active) else None
    if restricted is None:
        return _leapfrog(start, momentum, step_size, scale, log_density_fn, support)
    part = _leapfrog(
        LangevinState(*(field[rows] for field in start)),
        momentum[rows],
        step_size[rows],
        scale,
        restricted,
        support,
    )
    state = LangevinState(
        *(whole.index_copy(0, rows, piece) for whole, piece in zip(current.state, part.state))
    )
    return _Leapfrog(
        state,
        current.momentum.index_copy(0, rows, part.momentum),
        current.log_ratio.index_copy(0, rows, part.log_ratio),
    )


def _step_size_search(
    start: LangevinState,
    momentum: Tensor,
    initial_step_size: Tensor,
    log_a: Tensor,
    log_b: Tensor,
    scale: Tensor,
    log_density_fn: LogDensity,
    bounds: tuple[float, float],
    change_rate: float,
    support: Support | None = None,
) -> tuple[Tensor, _Leapfrog]:
    """autoMALA's step-size selector, vectorised over chains (maths 4.2).

    Every trial starts from the same ``(z, rho)``. ``delta = +1`` if ``log r >= log b``,
    ``-1`` if ``log r <= log a``, else the initial step is kept. Growing chains multiply by
    ``change_rate`` until ``log r < log b`` and return the last step that still had
    ``log r >= log b`` (``eta / Delta``); shrinking chains divide until ``log r > log a`` and
    return that step; a non-finite ``log r`` counts as ``-inf`` (too large a step). A search
    whose next trial would leave ``bounds`` stops at its last (in-bounds) trial. Each loop
    iteration is one batched gradient evaluation, of the searching chains alone when the
    log-density restricts to some chains (:func:`~tkam.posterior.state.on_rows`); the number of
    iterations is at most ``log(max / min) / log(change_rate) + 1``.

    Returns:
        the selected ``(chains,)`` step sizes and the leapfrog result at them.
    """
    lower, upper = bounds
    step = initial_step_size
    current = _leapfrog(start, momentum, step, scale, log_density_fn, support)
    direction = (current.log_ratio >= log_b).to(step.dtype) - (current.log_ratio <= log_a).to(
        step.dtype
    )  # (chains,) in {-1, 0, 1}
    active = direction != 0
    growing = direction > 0
    while bool(active.any()):
        trial_step = step * change_rate**direction
        active = active & (trial_step >= lower) & (trial_step <= upper)
        if not bool(active.any()):
            break
        trial_step = torch.where(active, trial_step, step)
        trial = _active_leapfrog(
            active, current, start, momentum, trial_step, scale, log_density_fn, support
        )
        keep_going = active & torch.where(
            growing, trial.log_ratio >= log_b, trial.log_ratio <= log_a
        )
        # A growing chain that stops keeps its previous trial (eta / Delta); a shrinking one
        # takes the trial that crossed log a.
        take = keep_going | (active & ~growing)
        step = torch.where(take, trial_step, step)
        current = _Leapfrog(
            select(take, trial.state, current.state),
            where_chains(take, trial.momentum, current.momentum),
            torch.where(take, trial.log_ratio, current.log_ratio),
        )
        active = keep_going
    return step, current


def automala_init(
    z: Tensor, log_density_fn: LogDensity, step_size: float | Tensor
) -> AutoMALAState:
    """:func:`init_state` plus per-chain step sizes (a float is broadcast to every chain).

    Args:
        z: ``(chains, *event)`` positions.
        log_density_fn: ``z -> (chains,)`` log-density.
        step_size: initial step size, a float or a ``(chains,)`` tensor.

    Returns:
        :class:`AutoMALAState`.
    """
    state = init_state(z, log_density_fn)
    steps = torch.as_tensor(step_size, dtype=state.z.dtype, device=state.z.device)
    return AutoMALAState(*state, steps.expand(state.z.shape[0]).clone())


def automala_step(
    state: AutoMALAState,
    log_density_fn: LogDensity,
    rng: torch.Generator | None,
    *,
    step_size_bounds: tuple[float, float] = (1e-4, 10.0),
    change_rate: float = 2.0,
    eps: float = 1e-4,
    adjusted: bool = True,
    support: Support | None = None,
) -> tuple[AutoMALAState, AutoMALAInfo]:
    """One autoMALA iteration (Biron-Lattes et al. 2024; maths 4.2, departures A12).

    Draws the mixed preconditioner, a momentum ``rho ~ N(0, I)`` and an acceptance band
    ``(a, b)`` (two sorted uniforms per chain); selects a step size by the search of
    :func:`_step_size_search` from ``state.step_size``; re-runs the search from ``(z', -rho')``
    and calls the move reversible iff it returns the same step (relative tolerance ``eps``) and
    the reverse leapfrog lands back on ``z`` within ``eps * max(max|z|, 1)``; accepts iff
    reversible and ``log u < log r``. Without ``adjusted`` (autoMALA's first iterations) the
    move at the step the forward search selected is accepted unconditionally, with no reverse
    search (as published: far from the mode the reversibility check rejects most moves, and an
    unconditional move at an unsearched step can diverge when the starting step is too large).

    ``state.step_size`` is not changed here; :func:`automala` adapts it at the end of a call.

    Args:
        state: current state with per-chain starting step sizes.
        log_density_fn: ``z -> (chains,)`` log-density.
        rng: source of randomness.
        step_size_bounds: ``(min, max)`` the search stays within.
        change_rate: the search's factor ``Delta > 1``.
        eps: reversibility tolerance (``TRAINING.eps``).
        adjusted: False for the unconditional (unadjusted) iterations.
        support: a box the leapfrog reflects the chains into (a hard wall; see
            :func:`~tkam.posterior.state.reflect`).

    Returns:
        the new state and an :class:`AutoMALAInfo`.
    """
    z = state.z
    chains = z.shape[0]
    lower, upper = step_size_bounds
    mass_sqrt = mixed_preconditioner(z, rng)  # (*event)
    scale = 1.0 / mass_sqrt
    momentum = normal(z, rng)  # (chains, *event)
    start = LangevinState(z, state.log_density, state.grad)
    step0 = state.step_size.to(z.dtype).clamp(lower, upper)  # (chains,)

    band = torch.rand((chains, 2), generator=rng, dtype=z.dtype, device=z.device)
    log_a, log_b = torch.log(band.amin(dim=1)), torch.log(band.amax(dim=1))  # (chains,)
    search = (log_a, log_b, scale, log_density_fn, (lower, upper), change_rate, support)
    step, forward = _step_size_search(start, momentum, step0, *search)
    moved = AutoMALAState(*forward.state, state.step_size)

    if not adjusted:
        # Unconditional, except for a move that left the density's domain (log r = -inf).
        finite = torch.isfinite(forward.log_ratio)
        new = select(finite, moved, state)
        return new, AutoMALAInfo(finite.to(z.dtype), finite, step, torch.ones_like(finite))

    log_u = log_uniform((chains,), rng, z)
    reverse_step, reverse = _step_size_search(forward.state, -forward.momentum, step0, *search)
    same_step = (reverse_step - step).abs() <= eps * step
    distance = (reverse.state.z - z).abs().flatten(1).amax(dim=1)  # (chains,)
    # Relative tolerance, floored at an absolute one: a chain at the origin must still pass.
    returns = distance <= eps * z.abs().flatten(1).amax(dim=1).clamp(min=1.0)
    reversible = same_step & returns
    accepted = reversible & (log_u < forward.log_ratio)
    probability = torch.where(
        reversible, torch.exp(forward.log_ratio.clamp(max=0.0)), torch.zeros_like(log_u)
    )
    new = select(accepted, moved, state)
    return new, AutoMALAInfo(probability, accepted, step, reversible)


class AutoMALARun(NamedTuple):
    """autoMALA within one call: the chains and what the end-of-call adaptation counts.

    Attributes:
        state: the chains, with the step sizes every search of this call starts from.
        initial: ``(chains,)`` those step sizes, as the call started (clamped into bounds).
        accepted_step_sum: ``(chains,)`` sum of the selected step sizes of accepted adjusted
            iterations.
        accepted_count: ``(chains,)`` number of accepted adjusted iterations.
        num_adjusted: adjusted iterations so far.
    """

    state: AutoMALAState
    initial: Tensor
    accepted_step_sum: Tensor
    accepted_count: Tensor
    num_adjusted: int


def automala_start(
    z0: Tensor | LangevinState | AutoMALAState,
    log_density_fn: LogDensity,
    step_size: float | Tensor,
    step_size_bounds: tuple[float, float] = (1e-4, 10.0),
) -> AutoMALARun:
    """The start of an autoMALA call: the chains at ``z0`` (a state's cache is reused) with
    per-chain step sizes ``step_size`` clamped into ``step_size_bounds``, nothing counted yet.

    Raises:
        RuntimeError: if the initial score is zero for every chain.
    """
    lower, upper = step_size_bounds
    base = to_state(z0, log_density_fn)
    steps = torch.as_tensor(step_size, dtype=base.z.dtype, device=base.z.device)
    initial = steps.expand(base.z.shape[0]).clamp(lower, upper).clone()  # (chains,)
    state = AutoMALAState(*base, initial)
    check_score(state)
    zeros = torch.zeros_like(initial)
    return AutoMALARun(state, initial, zeros, zeros, 0)


def automala_iteration(
    run: AutoMALARun,
    log_density_fn: LogDensity,
    rng: torch.Generator | None,
    iteration: int,
    *,
    step_size_bounds: tuple[float, float] = (1e-4, 10.0),
    change_rate: float = 2.0,
    num_unadjusted: int = 2,
    eps: float = 1e-4,
    support: Support | None = None,
) -> AutoMALARun:
    """Iteration ``iteration`` (0-based) of an autoMALA call: an unadjusted step during the first
    ``num_unadjusted``, a full :func:`automala_step` after them, whose selected step size and
    acceptance are counted for :func:`automala_adapt` (``support``: see :func:`automala_step`)."""
    adjusted = iteration >= num_unadjusted
    state, info = automala_step(
        run.state,
        log_density_fn,
        rng,
        step_size_bounds=step_size_bounds,
        change_rate=change_rate,
        eps=eps,
        adjusted=adjusted,
        support=support,
    )
    if not adjusted:
        return run._replace(state=state)
    return AutoMALARun(
        state,
        run.initial,
        run.accepted_step_sum + torch.where(info.accepted, info.step_size, 0.0),
        run.accepted_count + info.accepted.to(run.accepted_count.dtype),
        run.num_adjusted + 1,
    )


def automala_adapt(
    run: AutoMALARun,
    step_size_bounds: tuple[float, float] = (1e-4, 10.0),
    change_rate: float = 2.0,
) -> AutoMALAState:
    """The end of an autoMALA call: per chain, the mean selected step size over its accepted
    adjusted iterations (the starting step if none was accepted), multiplied by ``change_rate``
    if the acceptance rate over adjusted iterations exceeds 0.574, else divided, and clamped
    to ``step_size_bounds``; the state unchanged when no iteration was adjusted."""
    if run.num_adjusted == 0:
        return run.state
    lower, upper = step_size_bounds
    count = run.accepted_count
    mean_step = torch.where(count > 0, run.accepted_step_sum / count.clamp(min=1.0), run.initial)
    rate = count / run.num_adjusted
    factor = torch.where(rate > TARGET_ACCEPTANCE, change_rate, 1.0 / change_rate).to(rate)
    return run.state._replace(step_size=(mean_step * factor).clamp(lower, upper))


def automala(
    z0: Tensor | LangevinState | AutoMALAState,
    log_density_fn: LogDensity,
    step_size: float | Tensor,
    num_steps: int,
    rng: torch.Generator | None,
    *,
    step_size_bounds: tuple[float, float] = (1e-4, 10.0),
    change_rate: float = 2.0,
    num_unadjusted: int = 2,
    eps: float = 1e-4,
    callback: Callable[[int, AutoMALAState], AutoMALAState | LangevinState] | None = None,
    support: Support | None = None,
) -> AutoMALAState:
    """Run ``num_steps`` autoMALA iterations and adapt the per-chain step sizes (maths 4.2).

    The first ``num_unadjusted`` iterations accept the leapfrog move unconditionally; the others
    are full autoMALA steps (:func:`automala_step`), each starting its search from the chain's
    step size at the start of the call. At the end the step sizes are adapted
    (:func:`automala_adapt`) and returned in ``state.step_size``, so the caller can pass them
    back next call. :func:`automala_start`, :func:`automala_iteration` and
    :func:`automala_adapt` are the same call in pieces.

    Args:
        z0: ``(chains, *event)`` start positions, or a state whose cache is reused.
        log_density_fn: ``z -> (chains,)`` log-density.
        step_size: starting step size per chain (float or ``(chains,)``), clamped into bounds.
        num_steps: number of iterations, unadjusted ones included.
        rng: source of randomness.
        step_size_bounds: ``(min, max)`` step sizes (``step_size_bounds`` in the configs).
        change_rate: search and adaptation factor ``Delta`` (``autoMALA_eta_changerate``).
        num_unadjusted: number of initial unconditional iterations (``N_unadjusted``).
        eps: reversibility tolerance.
        callback: ``callback(i, state) -> state`` after each adjusted iteration ``i`` (0-based
            over all iterations; replica exchange only after the unadjusted phase, maths 4.3).
            Returning a :class:`LangevinState` keeps the current step sizes.
        support: a box the chains are reflected into (see :func:`automala_step`).

    Returns:
        the final :class:`AutoMALAState` with adapted step sizes.

    Raises:
        RuntimeError: if the initial score is zero for every chain.
        FloatingPointError: if the chains end with non-finite values.
    """
    check_automala_settings(step_size_bounds, change_rate)
    run = automala_start(z0, log_density_fn, step_size, step_size_bounds)
    for i in range(num_steps):
        run = automala_iteration(
            run,
            log_density_fn,
            rng,
            i,
            step_size_bounds=step_size_bounds,
            change_rate=change_rate,
            num_unadjusted=num_unadjusted,
            eps=eps,
            support=support,
        )
        if callback is not None and i >= num_unadjusted:
            returned = callback(i, run.state)
            run = run._replace(state=AutoMALAState(*returned[:3], run.state.step_size))
    state = automala_adapt(run, step_size_bounds, change_rate)
    check_finite(state)
    return state


def check_automala_settings(step_size_bounds: tuple[float, float], change_rate: float) -> None:
    """Refuse step-size bounds that are not ``0 < min < max`` and a ``change_rate <= 1``."""
    lower, upper = step_size_bounds
    if not 0 < lower < upper:
        raise ValueError(f"step_size_bounds needs 0 < min < max, got {step_size_bounds}")
    if change_rate <= 1:
        raise ValueError(f"change_rate must be > 1, got {change_rate}")
