"""What every Langevin-type sampler shares: chain states with a cached log-density and score.

Samplers are functions over an explicit state (design 3): :func:`init_state` evaluates
the log-density and its score once, and every step returns a new state that caches both at the new
position, so a ULA or MALA step costs exactly one gradient evaluation. Nothing here knows what the
density is: a sampler sees a callable ``log_density(z) -> (chains,)`` over a batch of chains
``z: (chains, *event)``, and every chain moves in one batched tensor operation. All randomness
comes from the ``torch.Generator`` passed in (``rng``; ``None``, which a prior's ``sample``
passes on when it is given none, draws from torch's global stream).

Scores are ``torch.autograd.grad`` of the log-density summed over chains, taken with respect to
``z`` only: parameters that the callable closes over are never touched (no ``.grad`` builds up).
Returned states are detached.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple, Protocol, Self, TypeVar

import torch
from torch import Tensor

__all__ = [
    "ChainState",
    "LangevinState",
    "LogDensity",
    "check_finite",
    "check_score",
    "init_state",
    "log_uniform",
    "normal",
    "on_rows",
    "per_chain",
    "refresh_state",
    "reflect",
    "select",
    "Support",
    "sum_event",
    "to_state",
    "where_chains",
]

LogDensity = Callable[[Tensor], Tensor]
"""A callable ``z (chains, *event) -> log-density (chains,)``, differentiable in ``z``.

A log-density whose chains are independent (chain ``c``'s value depends on row ``c`` alone, as a
posterior's does on its own data point) may also have a method ``on_rows(rows) -> LogDensity``:
the same density for chains ``rows`` only. A sampler that needs new values for a few chains
(autoMALA's step-size search) then evaluates those alone (:func:`on_rows`)."""


def on_rows(log_density_fn: LogDensity, rows: Tensor) -> LogDensity | None:
    """The log-density of chains ``rows`` (a ``(k,)`` index) alone, if ``log_density_fn`` has an
    ``on_rows`` method (see :data:`LogDensity`); None for a plain callable, whose chains must be
    evaluated together."""
    restrict = getattr(log_density_fn, "on_rows", None)
    return None if restrict is None else restrict(rows)


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


class ChainState(Protocol):
    """What every sampler's state has (:class:`LangevinState`, ``AutoMALAState``): the fields of
    a :class:`LangevinState`, as a NamedTuple whose ``_replace`` returns its own type."""

    @property
    def z(self) -> Tensor: ...

    @property
    def log_density(self) -> Tensor: ...

    @property
    def grad(self) -> Tensor: ...

    def _replace(self, *args: Any, **kwargs: Any) -> Self: ...


class Support(NamedTuple):
    """A box ``[lower, upper]`` that chains stay in: the prior's support (maths 4.2).

    Attributes:
        lower: lower limits, broadcastable to the event shape ``(*event)``.
        upper: upper limits, broadcastable to ``lower`` and larger than it everywhere.
    """

    lower: Tensor
    upper: Tensor


def reflect(z: Tensor, support: Support) -> tuple[Tensor, Tensor]:
    """``z`` folded into the box by reflection at its walls, as often as it takes.

    A point inside is returned unchanged (bit for bit); one that crossed a wall is mirrored back,
    ``lower - d`` to ``lower + d`` and ``upper + d`` to ``upper - d``, and so on for a move wider
    than the box. Reflection is an isometry on each piece, so a Langevin or leapfrog move composed
    with it stays volume-preserving and reversible (a hard wall).

    Returns:
        the folded positions and a bool mask of the coordinates mirrored an odd number of times
        (whose velocity a leapfrog step reverses).
    """
    lower, upper = support.lower.to(z), support.upper.to(z)
    width = upper - lower
    folded = torch.remainder(z - lower, 2.0 * width)  # in [0, 2 width)
    odd = folded > width
    mirrored = lower + torch.where(odd, 2.0 * width - folded, folded)
    inside = (z >= lower) & (z <= upper)
    return torch.where(inside, z, mirrored), odd & ~inside


State = TypeVar("State", bound=tuple)
Chains = TypeVar("Chains", bound=ChainState)


def per_chain(value: float | Tensor, z: Tensor) -> Tensor:
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


def sum_event(x: Tensor) -> Tensor:
    """Sum over every dimension but the first (chains): ``(chains, *event) -> (chains,)``."""
    return x.flatten(1).sum(dim=1)


def where_chains(mask: Tensor, new: Tensor, old: Tensor) -> Tensor:
    """Per-chain select: ``mask (chains,)`` picks rows of ``new`` over ``old``."""
    return torch.where(mask.view(-1, *([1] * (new.dim() - 1))), new, old)


def select(mask: Tensor, new: State, old: State) -> State:
    """Per-chain select of every field of two states of the same type (NamedTuples of
    ``(chains, ...)`` tensors)."""
    return type(old)(*(where_chains(mask, a, b) for a, b in zip(new, old)))


def normal(z: Tensor, rng: torch.Generator | None) -> Tensor:
    return torch.randn(z.shape, generator=rng, dtype=z.dtype, device=z.device)


def log_uniform(shape: tuple[int, ...], rng: torch.Generator | None, like: Tensor) -> Tensor:
    """``log u`` with ``u`` uniform on ``(0, 1]``, so the log is finite."""
    u = torch.rand(shape, generator=rng, dtype=like.dtype, device=like.device)
    return torch.log1p(-u)


def to_state(z0: Tensor | ChainState, log_density_fn: LogDensity) -> LangevinState:
    """Positions (evaluated) or any state with ``z``, ``log_density`` and ``grad`` (reused)."""
    if isinstance(z0, Tensor):
        return init_state(z0, log_density_fn)
    return LangevinState(z0.z, z0.log_density, z0.grad)


def check_score(state: ChainState) -> None:
    """Abort on an all-zero score (the density does not depend on ``z``: a detached graph)."""
    if state.grad.numel() > 0 and not bool((state.grad != 0).any()):
        raise RuntimeError("the log-density's gradient is zero for every chain; is z detached?")


def check_finite(state: ChainState) -> None:
    """Abort on NaN/inf positions or scores (maths 4.2); one host synchronisation per call."""
    if not (bool(torch.isfinite(state.z).all()) and bool(torch.isfinite(state.grad).all())):
        raise FloatingPointError("Langevin chains produced non-finite positions or gradients")


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


def refresh_state(state: Chains, z: Tensor, log_density_fn: LogDensity) -> Chains:
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
