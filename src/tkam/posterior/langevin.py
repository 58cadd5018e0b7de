"""Langevin posterior samplers: ULA and MALA (maths 4.2).

Functions over the chain states of :mod:`tkam.posterior.state`; autoMALA is in
:mod:`tkam.posterior.automala`, tempered populations with replica exchange in
:mod:`tkam.posterior.tempering`.
"""

from __future__ import annotations

import functools
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
    per_chain,
    reflect,
    select,
    sum_event,
    to_state,
)

__all__ = [
    "LangevinInfo",
    "langevin_proposal",
    "mala",
    "mala_step",
    "ula",
    "ula_step",
]


class LangevinInfo(NamedTuple):
    """What one ULA or MALA step did, per chain.

    Attributes:
        acceptance_probability: ``(chains,)`` Metropolis-Hastings acceptance probability (ones
            for ULA, which accepts every move).
        accepted: ``(chains,)`` bool, whether the chain moved.
    """

    acceptance_probability: Tensor
    accepted: Tensor


# ---------------------------------------------------------------------------------------------
# ULA and MALA


def _langevin_mean(z: Tensor, grad: Tensor, step: Tensor, scale: Tensor | None) -> Tensor:
    """Drift of the Langevin proposal: ``z + eta D^2 grad`` (``D`` = preconditioner scale)."""
    if scale is None:
        return z + step * grad
    return z + step * scale.square() * grad


def langevin_proposal(
    state: LangevinState,
    step_size: float | Tensor,
    rng: torch.Generator | None,
    preconditioner: Tensor | None = None,
    support: Support | None = None,
) -> Tensor:
    """One Langevin move ``z' = z + eta grad + sqrt(2 eta) xi`` (maths 4.2, 3.8).

    With a preconditioner ``D`` (a diagonal scale, i.e. ``M^{-1/2}``) the move is
    ``z + eta D^2 grad + sqrt(2 eta) D xi``: a Langevin diffusion whose noise has covariance
    ``2 eta D^2``.

    Args:
        state: current positions with their cached score.
        step_size: ``eta``: a float, or a ``(chains,)`` tensor broadcast over the event dims.
        rng: source of the noise ``xi ~ N(0, I)``.
        preconditioner: optional positive scale ``D`` broadcastable to ``z`` (e.g. ``event``).
        support: a box the move is folded back into by :func:`~tkam.posterior.state.reflect`
            (reflected Langevin: the chains stay on the target's support).

    Returns:
        ``(chains, *event)`` proposed positions.
    """
    z = state.z
    step = per_chain(step_size, z)
    noise = torch.sqrt(2.0 * step) * normal(z, rng)  # (chains, *event)
    if preconditioner is not None:
        noise = noise * preconditioner
    moved = _langevin_mean(z, state.grad, step, preconditioner) + noise
    return moved if support is None else reflect(moved, support)[0]


def ula_step(
    state: LangevinState,
    log_density_fn: LogDensity,
    step_size: float | Tensor,
    rng: torch.Generator | None,
    preconditioner: Tensor | None = None,
    support: Support | None = None,
) -> tuple[LangevinState, LangevinInfo]:
    """One unadjusted Langevin step (maths 4.2): every move is kept; one gradient evaluation.

    Args:
        state: current state.
        log_density_fn: ``z -> (chains,)`` log-density.
        step_size: ``eta`` as a float or a ``(chains,)`` tensor.
        rng: source of randomness.
        preconditioner: optional diagonal scale ``D`` (see :func:`langevin_proposal`).
        support: a box the chains are reflected into (see :func:`langevin_proposal`).

    Returns:
        the new state and a :class:`LangevinInfo` (acceptance probability one everywhere).
    """
    proposal = langevin_proposal(state, step_size, rng, preconditioner, support)
    new = init_state(proposal, log_density_fn)
    ones = torch.ones_like(new.log_density)
    return new, LangevinInfo(ones, torch.ones_like(ones, dtype=torch.bool))


def _log_proposal_density(
    to: Tensor, frm: Tensor, grad_frm: Tensor, step: Tensor, scale: Tensor | None
) -> Tensor:
    """``log q(to | frm)`` of the Langevin proposal, up to a constant that cancels in MH."""
    residual = to - _langevin_mean(frm, grad_frm, step, scale)
    if scale is not None:
        residual = residual / scale
    return -sum_event(residual.square() / (4.0 * step))  # (chains,)


def mala_step(
    state: LangevinState,
    log_density_fn: LogDensity,
    step_size: float | Tensor,
    rng: torch.Generator | None,
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
        rng: source of the proposal noise and the acceptance uniforms.
        preconditioner: optional diagonal scale ``D`` (see :func:`langevin_proposal`).

    Returns:
        the new state and a :class:`LangevinInfo`.
    """
    step = per_chain(step_size, state.z)
    proposal = init_state(langevin_proposal(state, step_size, rng, preconditioner), log_density_fn)
    log_ratio = (
        proposal.log_density
        - state.log_density
        + _log_proposal_density(state.z, proposal.z, proposal.grad, step, preconditioner)
        - _log_proposal_density(proposal.z, state.z, state.grad, step, preconditioner)
    )  # (chains,)
    log_ratio = torch.nan_to_num(log_ratio, nan=-math.inf)
    accepted = log_uniform(log_ratio.shape, rng, log_ratio) < log_ratio
    probability = torch.exp(log_ratio.clamp(max=0.0))
    return select(accepted, proposal, state), LangevinInfo(probability, accepted)


def _run(
    step_fn: Callable[..., tuple[LangevinState, LangevinInfo]],
    z0: Tensor | LangevinState,
    log_density_fn: LogDensity,
    step_size: float | Tensor,
    num_steps: int,
    rng: torch.Generator | None,
    callback: Callable[[int, LangevinState], LangevinState] | None,
) -> tuple[LangevinState, Tensor]:
    state = to_state(z0, log_density_fn)
    check_score(state)
    accepted = torch.zeros_like(state.log_density)
    for i in range(num_steps):
        state, info = step_fn(state, log_density_fn, step_size, rng)
        accepted = accepted + info.accepted.to(accepted.dtype)
        if callback is not None:
            state = callback(i, state)
    check_finite(state)
    return state, accepted / max(num_steps, 1)


def ula(
    z0: Tensor | LangevinState,
    log_density_fn: LogDensity,
    step_size: float | Tensor,
    num_steps: int,
    rng: torch.Generator | None,
    callback: Callable[[int, LangevinState], LangevinState] | None = None,
    support: Support | None = None,
) -> LangevinState:
    """Run ``num_steps`` ULA steps from ``z0`` (maths 4.2): ``z <- z + eta grad + sqrt(2 eta) xi``.

    Args:
        z0: ``(chains, *event)`` start positions, or a state whose cache is reused.
        log_density_fn: ``z -> (chains,)`` log-density (e.g. a tempered posterior).
        step_size: ``eta`` as a float or a ``(chains,)`` tensor.
        num_steps: number of steps.
        rng: source of randomness.
        callback: ``callback(i, state) -> state`` called after step ``i`` (0-based), e.g. for
            replica exchange; a callback that moves chains must return a consistent cache (see
            :func:`refresh_state`).
        support: a box the chains are reflected into (reflected Langevin, see
            :func:`langevin_proposal`).

    Returns:
        the final :class:`LangevinState`.

    Raises:
        RuntimeError: if the initial score is zero for every chain.
        FloatingPointError: if the chains end with non-finite values.
    """
    step = functools.partial(ula_step, support=support)
    return _run(step, z0, log_density_fn, step_size, num_steps, rng, callback)[0]


def mala(
    z0: Tensor | LangevinState,
    log_density_fn: LogDensity,
    step_size: float | Tensor,
    num_steps: int,
    rng: torch.Generator | None,
    callback: Callable[[int, LangevinState], LangevinState] | None = None,
) -> tuple[LangevinState, Tensor]:
    """Run ``num_steps`` MALA steps from ``z0`` with a fixed step size.

    Args:
        z0: ``(chains, *event)`` start positions, or a state whose cache is reused.
        log_density_fn: ``z -> (chains,)`` log-density.
        step_size: ``eta`` as a float or a ``(chains,)`` tensor.
        num_steps: number of steps.
        rng: source of randomness.
        callback: ``callback(i, state) -> state`` after step ``i`` (0-based).

    Returns:
        the final state and the ``(chains,)`` fraction of accepted proposals.

    Raises:
        RuntimeError: if the initial score is zero for every chain.
        FloatingPointError: if the chains end with non-finite values.
    """
    return _run(mala_step, z0, log_density_fn, step_size, num_steps, rng, callback)
