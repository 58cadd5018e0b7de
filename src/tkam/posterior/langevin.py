"""Langevin posterior samplers: ULA, MALA and autoMALA (spec section 4.2, ambiguity A12).

Samplers are functions over an explicit state (DESIGN.md section 3): ``init_state`` evaluates the
log-density and its score once, and every step returns a new state that caches both at the new
position, so a ULA or MALA step costs exactly one gradient evaluation. Nothing here knows what the
density is: a sampler sees a callable ``log_density(z) -> (chains,)`` over a batch of chains
``z: (chains, *event)`` (event ``(Q, P)`` or ``(Q,)`` in this library), and every chain moves in
one batched tensor operation. All randomness comes from the ``torch.Generator`` passed in.

Scores are ``torch.autograd.grad`` of the log-density summed over chains, taken with respect to
``z`` only: parameters that the callable closes over are never touched (no ``.grad`` builds up).
Returned states and infos are detached.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple, TypeVar

import torch
from torch import Tensor

__all__ = [
    "AutoMALAInfo",
    "AutoMALAState",
    "LangevinInfo",
    "LangevinState",
    "LogDensity",
    "automala",
    "automala_init",
    "automala_step",
    "init_state",
    "langevin_proposal",
    "mala",
    "mala_step",
    "mixed_preconditioner",
    "refresh_state",
    "ula",
    "ula_step",
]

LogDensity = Callable[[Tensor], Tensor]
"""A callable ``z (chains, *event) -> log-density (chains,)``, differentiable in ``z``."""

# autoMALA's end-of-call adaptation aims at the optimal MALA acceptance rate (Roberts & Rosenthal).
TARGET_ACCEPTANCE = 0.574


class LangevinState(NamedTuple):
    """Position of every chain with its cached log-density and score (all detached).

    Attributes:
        z: ``(chains, *event)`` positions.
        log_density: ``(chains,)`` log-density at ``z``.
        grad: ``(chains, *event)`` gradient of the log-density at ``z``.
    """

    z: Tensor
    log_density: Tensor
    grad: Tensor


class LangevinInfo(NamedTuple):
    """What one ULA or MALA step did, per chain.

    Attributes:
        acceptance_probability: ``(chains,)`` Metropolis-Hastings acceptance probability (ones
            for ULA, which accepts every move).
        accepted: ``(chains,)`` bool, whether the chain moved.
    """

    acceptance_probability: Tensor
    accepted: Tensor


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


State = TypeVar("State", LangevinState, AutoMALAState)


# ---------------------------------------------------------------------------------------------
# helpers


def _per_chain(value: float | Tensor, z: Tensor) -> Tensor:
    """``value`` (float, 0-d, ``(chains,)`` or already ``z``-shaped) broadcastable against ``z``."""
    if not isinstance(value, Tensor):
        return torch.as_tensor(value, dtype=z.dtype, device=z.device)
    value = value.to(dtype=z.dtype, device=z.device)
    if value.dim() == 1 and z.dim() > 1:
        if value.shape[0] != z.shape[0]:
            raise ValueError(
                f"a per-chain value must have shape ({z.shape[0]},), got {tuple(value.shape)}"
            )
        return value.view(-1, *([1] * (z.dim() - 1)))  # (chains, 1, ..., 1)
    return value


def _sum_event(x: Tensor) -> Tensor:
    """Sum over every dimension but the first (chains): ``(chains, *event) -> (chains,)``."""
    return x.flatten(1).sum(dim=1)


def _where(mask: Tensor, new: Tensor, old: Tensor) -> Tensor:
    """Per-chain select: ``mask (chains,)`` picks rows of ``new`` over ``old``."""
    return torch.where(mask.view(-1, *([1] * (new.dim() - 1))), new, old)


def _select(mask: Tensor, new: State, old: State) -> State:
    """Per-chain select of every field of two states of the same type."""
    return type(old)(*(_where(mask, a, b) for a, b in zip(new, old)))


def _normal(z: Tensor, generator: torch.Generator) -> Tensor:
    return torch.randn(z.shape, generator=generator, dtype=z.dtype, device=z.device)


def _log_uniform(shape: tuple[int, ...], generator: torch.Generator, like: Tensor) -> Tensor:
    """``log u`` with ``u`` uniform on ``(0, 1]``, so the log is finite."""
    u = torch.rand(shape, generator=generator, dtype=like.dtype, device=like.device)
    return torch.log1p(-u)


def _to_state(z0: Tensor | LangevinState | AutoMALAState, log_density_fn: LogDensity):
    if isinstance(z0, Tensor):
        return init_state(z0, log_density_fn)
    return LangevinState(z0.z, z0.log_density, z0.grad)


def _check_score(state: LangevinState | AutoMALAState) -> None:
    """Abort on an all-zero score (the density does not depend on ``z``: a detached graph)."""
    if state.grad.numel() > 0 and not bool((state.grad != 0).any()):
        raise RuntimeError("the log-density's gradient is zero for every chain; is z detached?")


def _check_finite(state: LangevinState | AutoMALAState) -> None:
    """Abort on NaN/inf positions or scores (spec 4.2); one host synchronisation per call."""
    if not (bool(torch.isfinite(state.z).all()) and bool(torch.isfinite(state.grad).all())):
        raise FloatingPointError("Langevin chains produced non-finite positions or gradients")


# ---------------------------------------------------------------------------------------------
# state


def init_state(z: Tensor, log_density_fn: LogDensity) -> LangevinState:
    """Evaluate the log-density and its score at ``z`` (one forward and one backward pass).

    The score is ``torch.autograd.grad`` of the summed log-density with respect to ``z`` alone,
    so parameters the callable closes over accumulate no ``.grad``; gradient tracking is switched
    on locally, so this works under ``torch.no_grad()`` too. A density that does not depend on
    ``z`` gets a zero score.

    Args:
        z: ``(chains, *event)`` positions (treated as constants; a detached copy is used).
        log_density_fn: ``z -> (chains,)`` log-density.

    Returns:
        :class:`LangevinState` of detached tensors.

    Raises:
        ValueError: if the callable does not return one value per chain.
    """
    z = z.detach().requires_grad_(True)
    with torch.enable_grad():
        log_density = log_density_fn(z)
        if log_density.shape != z.shape[:1]:
            raise ValueError(
                f"log_density_fn must return shape ({z.shape[0]},), got {tuple(log_density.shape)}"
            )
        if log_density.requires_grad:
            (grad,) = torch.autograd.grad(log_density.sum(), [z], allow_unused=True)
        else:
            grad = None
    if grad is None:
        grad = torch.zeros_like(z)
    return LangevinState(z.detach(), log_density.detach(), grad.detach())


def refresh_state(state: State, z: Tensor, log_density_fn: LogDensity) -> State:
    """Move every chain of ``state`` to ``z`` and recompute the cache, keeping other fields.

    Meant for callbacks that change positions between steps (replica exchange): a chain swapped
    into another temperature needs its log-density and score under that temperature.

    Args:
        state: a :class:`LangevinState` or :class:`AutoMALAState`.
        z: ``(chains, *event)`` new positions.
        log_density_fn: the log-density the sampler runs on.

    Returns:
        a state of the same type (autoMALA step sizes unchanged).
    """
    return state._replace(**init_state(z, log_density_fn)._asdict())


# ---------------------------------------------------------------------------------------------
# ULA and MALA


def _langevin_mean(z: Tensor, grad: Tensor, step: Tensor, scale: Tensor | None) -> Tensor:
    """Drift of the Langevin proposal: ``z + eta D^2 grad`` (``D`` = preconditioner scale)."""
    if scale is None:
        return z + step * grad
    return z + step * scale.square() * grad


def langevin_proposal(
    state: LangevinState | AutoMALAState,
    step_size: float | Tensor,
    generator: torch.Generator,
    preconditioner: Tensor | None = None,
) -> Tensor:
    """One Langevin move ``z' = z + eta grad + sqrt(2 eta) xi`` (spec 4.2, 3.8).

    With a preconditioner ``D`` (a diagonal scale, i.e. ``M^{-1/2}``) the move is
    ``z + eta D^2 grad + sqrt(2 eta) D xi``: a Langevin diffusion whose noise has covariance
    ``2 eta D^2``.

    Args:
        state: current positions with their cached score.
        step_size: ``eta``: a float, or a ``(chains,)`` tensor broadcast over the event dims.
        generator: source of the noise ``xi ~ N(0, I)``.
        preconditioner: optional positive scale ``D`` broadcastable to ``z`` (e.g. ``event``).

    Returns:
        ``(chains, *event)`` proposed positions.
    """
    z = state.z
    step = _per_chain(step_size, z)
    noise = torch.sqrt(2.0 * step) * _normal(z, generator)  # (chains, *event)
    if preconditioner is not None:
        noise = noise * preconditioner
    return _langevin_mean(z, state.grad, step, preconditioner) + noise


def ula_step(
    state: LangevinState,
    log_density_fn: LogDensity,
    step_size: float | Tensor,
    generator: torch.Generator,
    preconditioner: Tensor | None = None,
) -> tuple[LangevinState, LangevinInfo]:
    """One unadjusted Langevin step (spec 4.2): every move is kept; one gradient evaluation.

    Args:
        state: current state.
        log_density_fn: ``z -> (chains,)`` log-density.
        step_size: ``eta`` as a float or a ``(chains,)`` tensor.
        generator: source of randomness.
        preconditioner: optional diagonal scale ``D`` (see :func:`langevin_proposal`).

    Returns:
        the new state and a :class:`LangevinInfo` (acceptance probability one everywhere).
    """
    new = init_state(langevin_proposal(state, step_size, generator, preconditioner), log_density_fn)
    ones = torch.ones_like(new.log_density)
    return new, LangevinInfo(ones, torch.ones_like(ones, dtype=torch.bool))


def _log_proposal_density(
    to: Tensor, frm: Tensor, grad_frm: Tensor, step: Tensor, scale: Tensor | None
) -> Tensor:
    """``log q(to | frm)`` of the Langevin proposal, up to a constant that cancels in MH."""
    residual = to - _langevin_mean(frm, grad_frm, step, scale)
    if scale is not None:
        residual = residual / scale
    return -_sum_event(residual.square() / (4.0 * step))  # (chains,)


def mala_step(
    state: LangevinState,
    log_density_fn: LogDensity,
    step_size: float | Tensor,
    generator: torch.Generator,
    preconditioner: Tensor | None = None,
) -> tuple[LangevinState, LangevinInfo]:
    """One Metropolis-adjusted Langevin step: the ULA proposal plus an MH correction per chain.

    ``log alpha = log pi(z') - log pi(z) + log q(z | z') - log q(z' | z)`` with the Gaussian
    Langevin proposal densities (they differ because the drift depends on the start point).
    Non-finite ratios reject. One gradient evaluation (at the proposal).

    Args:
        state: current state.
        log_density_fn: ``z -> (chains,)`` log-density.
        step_size: ``eta`` as a float or a ``(chains,)`` tensor.
        generator: source of the proposal noise and the acceptance uniforms.
        preconditioner: optional diagonal scale ``D`` (see :func:`langevin_proposal`).

    Returns:
        the new state and a :class:`LangevinInfo`.
    """
    step = _per_chain(step_size, state.z)
    proposal = init_state(
        langevin_proposal(state, step_size, generator, preconditioner), log_density_fn
    )
    log_ratio = (
        proposal.log_density
        - state.log_density
        + _log_proposal_density(state.z, proposal.z, proposal.grad, step, preconditioner)
        - _log_proposal_density(proposal.z, state.z, state.grad, step, preconditioner)
    )  # (chains,)
    log_ratio = torch.nan_to_num(log_ratio, nan=-math.inf)
    accepted = _log_uniform(log_ratio.shape, generator, log_ratio) < log_ratio
    probability = torch.exp(log_ratio.clamp(max=0.0))
    return _select(accepted, proposal, state), LangevinInfo(probability, accepted)


def _run(
    step_fn: Callable[..., tuple[LangevinState, LangevinInfo]],
    z0: Tensor | LangevinState,
    log_density_fn: LogDensity,
    step_size: float | Tensor,
    num_steps: int,
    generator: torch.Generator,
    callback: Callable[[int, LangevinState], LangevinState] | None,
) -> tuple[LangevinState, Tensor]:
    state = _to_state(z0, log_density_fn)
    _check_score(state)
    accepted = torch.zeros_like(state.log_density)
    for i in range(num_steps):
        state, info = step_fn(state, log_density_fn, step_size, generator)
        accepted = accepted + info.accepted.to(accepted.dtype)
        if callback is not None:
            state = callback(i, state)
    _check_finite(state)
    return state, accepted / max(num_steps, 1)


def ula(
    z0: Tensor | LangevinState,
    log_density_fn: LogDensity,
    step_size: float | Tensor,
    num_steps: int,
    generator: torch.Generator,
    callback: Callable[[int, LangevinState], LangevinState] | None = None,
) -> LangevinState:
    """Run ``num_steps`` ULA steps from ``z0`` (spec 4.2): ``z <- z + eta grad + sqrt(2 eta) xi``.

    Args:
        z0: ``(chains, *event)`` start positions, or a state whose cache is reused.
        log_density_fn: ``z -> (chains,)`` log-density (e.g. a tempered posterior).
        step_size: ``eta`` as a float or a ``(chains,)`` tensor.
        num_steps: number of steps.
        generator: source of randomness.
        callback: ``callback(i, state) -> state`` called after step ``i`` (0-based), e.g. for
            replica exchange; a callback that moves chains must return a consistent cache (see
            :func:`refresh_state`).

    Returns:
        the final :class:`LangevinState`.

    Raises:
        RuntimeError: if the initial score is zero for every chain.
        FloatingPointError: if the chains end with non-finite values.
    """
    return _run(ula_step, z0, log_density_fn, step_size, num_steps, generator, callback)[0]


def mala(
    z0: Tensor | LangevinState,
    log_density_fn: LogDensity,
    step_size: float | Tensor,
    num_steps: int,
    generator: torch.Generator,
    callback: Callable[[int, LangevinState], LangevinState] | None = None,
) -> tuple[LangevinState, Tensor]:
    """Run ``num_steps`` MALA steps from ``z0`` with a fixed step size.

    Args:
        z0: ``(chains, *event)`` start positions, or a state whose cache is reused.
        log_density_fn: ``z -> (chains,)`` log-density.
        step_size: ``eta`` as a float or a ``(chains,)`` tensor.
        num_steps: number of steps.
        generator: source of randomness.
        callback: ``callback(i, state) -> state`` after step ``i`` (0-based).

    Returns:
        the final state and the ``(chains,)`` fraction of accepted proposals.

    Raises:
        RuntimeError: if the initial score is zero for every chain.
        FloatingPointError: if the chains end with non-finite values.
    """
    return _run(mala_step, z0, log_density_fn, step_size, num_steps, generator, callback)


# ---------------------------------------------------------------------------------------------
# autoMALA (Biron-Lattes et al. 2024; spec 4.2, A12)


def mixed_preconditioner(z: Tensor, generator: torch.Generator) -> Tensor:
    """Draw autoMALA's diagonal ``M^{1/2}``, shared by all chains (spec 4.2).

    With ``sigma`` the per-coordinate standard deviation across chains (0, or a single chain,
    maps to 1): with probability 1/3 ``1 / sigma``, with probability 1/3 ones, otherwise
    ``m + (1 - m) / sigma`` with ``m ~ U(0, 1)``. The random mixture keeps the sampler robust
    when the spread across chains misstates the local scale (e.g. chains in several modes).

    Args:
        z: ``(chains, *event)`` current positions.
        generator: source of the two uniforms.

    Returns:
        ``event``-shaped positive tensor ``M^{1/2}``.
    """
    sigma = z.detach().std(dim=0, correction=0)  # (*event)
    sigma = torch.where(torch.isfinite(sigma) & (sigma > 0), sigma, torch.ones_like(sigma))
    inverse = 1.0 / sigma
    u = torch.rand((2,), generator=generator, dtype=z.dtype, device=z.device)
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
) -> _Leapfrog:
    """One leapfrog step of the preconditioned Hamiltonian (one gradient evaluation).

    ``scale`` is ``M^{-1/2}``: gradient and momentum are multiplied by it, so the position moves
    by ``eta scale rho + eta^2/2 scale^2 grad``: a Langevin proposal with per-coordinate step
    ``eta^2 scale^2 / 2``, proportional to ``sigma^2`` when ``M^{1/2} = 1 / sigma``. The momentum is
    standard normal and the kinetic energy ``||rho||^2 / 2`` (the map is volume preserving and
    reversible under momentum flip for any fixed ``scale``).
    """
    step = _per_chain(step_size, start.z)
    half = momentum + 0.5 * step * scale * start.grad
    end = init_state(start.z + step * scale * half, log_density_fn)
    momentum_end = half + 0.5 * step * scale * end.grad
    log_ratio = (
        end.log_density
        - start.log_density
        - 0.5 * (_sum_event(momentum_end.square()) - _sum_event(momentum.square()))
    )
    # Published autoMALA treats a non-finite ratio as a step that is too large (keep shrinking).
    log_ratio = torch.where(torch.isfinite(log_ratio), log_ratio, -math.inf)
    return _Leapfrog(end, momentum_end, log_ratio)


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
) -> tuple[Tensor, _Leapfrog]:
    """autoMALA's step-size selector, vectorised over chains (spec 4.2).

    Every trial starts from the same ``(z, rho)``. ``delta = +1`` if ``log r >= log b``,
    ``-1`` if ``log r <= log a``, else the initial step is kept. Growing chains multiply by
    ``change_rate`` until ``log r < log b`` and return the last step that still had
    ``log r >= log b`` (``eta / Delta``); shrinking chains divide until ``log r > log a`` and
    return that step; a non-finite ``log r`` counts as ``-inf`` (too large a step). A search
    whose next trial would leave ``bounds`` stops at its last (in-bounds) trial. Each loop iteration is one batched gradient evaluation; the number of
    iterations is at most ``log(max / min) / log(change_rate) + 1``.

    Returns:
        the selected ``(chains,)`` step sizes and the leapfrog result at them.
    """
    lower, upper = bounds
    step = initial_step_size
    current = _leapfrog(start, momentum, step, scale, log_density_fn)
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
        trial = _leapfrog(start, momentum, trial_step, scale, log_density_fn)
        keep_going = active & torch.where(
            growing, trial.log_ratio >= log_b, trial.log_ratio <= log_a
        )
        # A growing chain that stops keeps its previous trial (eta / Delta); a shrinking one
        # takes the trial that crossed log a.
        take = keep_going | (active & ~growing)
        step = torch.where(take, trial_step, step)
        current = _Leapfrog(
            _select(take, trial.state, current.state),
            _where(take, trial.momentum, current.momentum),
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
    generator: torch.Generator,
    *,
    step_size_bounds: tuple[float, float] = (1e-4, 10.0),
    change_rate: float = 2.0,
    eps: float = 1e-4,
    adjusted: bool = True,
) -> tuple[AutoMALAState, AutoMALAInfo]:
    """One autoMALA iteration (Biron-Lattes et al. 2024; spec 4.2, A12).

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
        generator: source of randomness.
        step_size_bounds: ``(min, max)`` the search stays within.
        change_rate: the search's factor ``Delta > 1``.
        eps: reversibility tolerance (``TRAINING.eps``).
        adjusted: False for the unconditional (unadjusted) iterations.

    Returns:
        the new state and an :class:`AutoMALAInfo`.
    """
    z = state.z
    chains = z.shape[0]
    lower, upper = step_size_bounds
    mass_sqrt = mixed_preconditioner(z, generator)  # (*event)
    scale = 1.0 / mass_sqrt
    momentum = _normal(z, generator)  # (chains, *event)
    start = LangevinState(z, state.log_density, state.grad)
    step0 = state.step_size.to(z.dtype).clamp(lower, upper)  # (chains,)

    band = torch.rand((chains, 2), generator=generator, dtype=z.dtype, device=z.device)
    log_a, log_b = torch.log(band.amin(dim=1)), torch.log(band.amax(dim=1))  # (chains,)
    search = (log_a, log_b, scale, log_density_fn, (lower, upper), change_rate)
    step, forward = _step_size_search(start, momentum, step0, *search)
    moved = AutoMALAState(*forward.state, state.step_size)

    if not adjusted:
        # Unconditional, except for a move that left the density's domain (log r = -inf).
        finite = torch.isfinite(forward.log_ratio)
        new = _select(finite, moved, state)
        return new, AutoMALAInfo(finite.to(z.dtype), finite, step, torch.ones_like(finite))

    log_u = _log_uniform((chains,), generator, z)
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
    new = _select(accepted, moved, state)
    return new, AutoMALAInfo(probability, accepted, step, reversible)


def automala(
    z0: Tensor | LangevinState | AutoMALAState,
    log_density_fn: LogDensity,
    step_size: float | Tensor,
    num_steps: int,
    generator: torch.Generator,
    *,
    step_size_bounds: tuple[float, float] = (1e-4, 10.0),
    change_rate: float = 2.0,
    num_unadjusted: int = 2,
    eps: float = 1e-4,
    callback: Callable[[int, AutoMALAState], AutoMALAState | LangevinState] | None = None,
) -> AutoMALAState:
    """Run ``num_steps`` autoMALA iterations and adapt the per-chain step sizes (spec 4.2).

    The first ``num_unadjusted`` iterations accept the leapfrog move unconditionally; the others
    are full autoMALA steps (:func:`automala_step`), each starting its search from the chain's
    step size at the start of the call. At the end, per chain, the mean selected step size over
    accepted adjusted iterations (the starting step if none was accepted) is multiplied by
    ``change_rate`` if the acceptance rate over adjusted iterations exceeds 0.574, else divided,
    and clamped to ``step_size_bounds``; it is returned in ``state.step_size`` so the caller can
    pass it back next call.

    Args:
        z0: ``(chains, *event)`` start positions, or a state whose cache is reused.
        log_density_fn: ``z -> (chains,)`` log-density.
        step_size: starting step size per chain (float or ``(chains,)``), clamped into bounds.
        num_steps: number of iterations, unadjusted ones included.
        generator: source of randomness.
        step_size_bounds: ``(min, max)`` step sizes (``step_size_bounds`` in the configs).
        change_rate: search and adaptation factor ``Delta`` (``autoMALA_eta_changerate``).
        num_unadjusted: number of initial unconditional iterations (``N_unadjusted``).
        eps: reversibility tolerance.
        callback: ``callback(i, state) -> state`` after each adjusted iteration ``i`` (0-based
            over all iterations; replica exchange only after the unadjusted phase, spec 4.3).
            Returning a :class:`LangevinState` keeps the current step sizes.

    Returns:
        the final :class:`AutoMALAState` with adapted step sizes.

    Raises:
        RuntimeError: if the initial score is zero for every chain.
        FloatingPointError: if the chains end with non-finite values.
    """
    lower, upper = step_size_bounds
    if not 0 < lower < upper:
        raise ValueError(f"step_size_bounds needs 0 < min < max, got {step_size_bounds}")
    if change_rate <= 1:
        raise ValueError(f"change_rate must be > 1, got {change_rate}")
    base = _to_state(z0, log_density_fn)
    steps = torch.as_tensor(step_size, dtype=base.z.dtype, device=base.z.device)
    initial = steps.expand(base.z.shape[0]).clamp(lower, upper).clone()  # (chains,)
    state = AutoMALAState(*base, initial)
    _check_score(state)

    accepted_step_sum = torch.zeros_like(initial)
    accepted_count = torch.zeros_like(initial)
    num_adjusted = 0
    for i in range(num_steps):
        adjusted = i >= num_unadjusted
        state, info = automala_step(
            state,
            log_density_fn,
            generator,
            step_size_bounds=step_size_bounds,
            change_rate=change_rate,
            eps=eps,
            adjusted=adjusted,
        )
        if not adjusted:
            continue
        num_adjusted += 1
        accepted_step_sum = accepted_step_sum + torch.where(info.accepted, info.step_size, 0.0)
        accepted_count = accepted_count + info.accepted.to(accepted_count.dtype)
        if callback is not None:
            returned = callback(i, state)
            state = AutoMALAState(*returned[:3], state.step_size)

    if num_adjusted > 0:
        mean_step = torch.where(
            accepted_count > 0, accepted_step_sum / accepted_count.clamp(min=1.0), initial
        )
        rate = accepted_count / num_adjusted
        factor = torch.where(rate > TARGET_ACCEPTANCE, change_rate, 1.0 / change_rate).to(rate)
        state = state._replace(step_size=(mean_step * factor).clamp(lower, upper))
    _check_finite(state)
    return state
