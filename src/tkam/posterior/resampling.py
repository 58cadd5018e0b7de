"""Resamplers for sequential importance resampling (maths 4.1, departures A8).

Every resampler is a plain function ``(weights (B, N), rng) -> indices (B, N)`` that resamples
each row independently and fully vectorised over the batch: cumulative weights, one batch of
uniforms, one ``torch.searchsorted``. The index of a uniform ``u`` is the first ``j`` with
``c_j >= u`` (clamped to ``N - 1``), as in the reference code.

Internally the cumulative weights are built in float64: with float32, ``cumsum`` over thousands of
particles drifts by ``O(N * eps)`` and would bias the selection probabilities of small weights.
The uniforms are drawn in ``(0, 1]`` (``1 - U`` with ``U`` in ``[0, 1)``), so a particle of zero
weight, whose cumulative interval is empty, can never be selected, and ``u <= c_{N-1} = 1`` always
finds an index.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

__all__ = [
    "RESAMPLERS",
    "Resampler",
    "multinomial",
    "resample",
    "residual",
    "stratified",
    "systematic",
]

Resampler = Callable[[Tensor, torch.Generator | None], Tensor]


def _normalised(weights: Tensor) -> Tensor:
    """Rows of ``weights`` as float64 probabilities (rows need only be non-negative, sum > 0)."""
    if weights.dim() != 2:
        raise ValueError(f"weights must have shape (B, N), got {tuple(weights.shape)}")
    w = weights.detach().to(torch.float64)
    return w / w.sum(dim=-1, keepdim=True)


def _cumulative(probabilities: Tensor) -> Tensor:
    """Cumulative sums per row with the last entry forced to exactly 1.

    Round-off can leave the last partial sum just below 1; a uniform above it would then fall off
    the end, so the final entry is overwritten rather than trusted.
    """
    c = torch.cumsum(probabilities, dim=-1)  # (B, N)
    c[:, -1] = 1.0
    return c


def _uniforms(shape: tuple[int, ...], rng: torch.Generator | None, device: torch.device) -> Tensor:
    """Uniforms on ``(0, 1]`` in float64 (see the module docstring for why not ``[0, 1)``)."""
    return 1.0 - torch.rand(shape, generator=rng, dtype=torch.float64, device=device)


def _search(cumulative: Tensor, u: Tensor) -> Tensor:
    """First ``j`` with ``cumulative[b, j] >= u[b, n]``, clamped to ``N - 1``; ``(B, N)`` long."""
    n = cumulative.shape[-1]
    index = torch.searchsorted(cumulative.contiguous(), u.contiguous(), right=False)
    return index.clamp_(max=n - 1)


def systematic(weights: Tensor, rng: torch.Generator | None) -> Tensor:
    """Systematic resampling: one uniform per row, ``u_n = (U + n) / N``.

    Each index ``i`` is drawn ``floor(N w_i)`` or ``ceil(N w_i)`` times, with mean ``N w_i``.

    Args:
        weights: ``(B, N)`` non-negative weights per row (normalised here).
        rng: source of randomness.

    Returns:
        ``(B, N)`` long indices into each row's particles.
    """
    w = _normalised(weights)
    batch, n = w.shape
    offset = _uniforms((batch, 1), rng, w.device)  # (B, 1) in (0, 1]
    grid = torch.arange(n, dtype=torch.float64, device=w.device)  # (N,)
    u = (grid + offset) / n  # (B, N) in (0, 1]
    return _search(_cumulative(w), u)


def stratified(weights: Tensor, rng: torch.Generator | None) -> Tensor:
    """Stratified resampling: one uniform per stratum, ``u_n = (U_n + n) / N``.

    Args:
        weights: ``(B, N)`` non-negative weights per row (normalised here).
        rng: source of randomness.

    Returns:
        ``(B, N)`` long indices into each row's particles.
    """
    w = _normalised(weights)
    batch, n = w.shape
    grid = torch.arange(n, dtype=torch.float64, device=w.device)
    u = (grid + _uniforms((batch, n), rng, w.device)) / n  # (B, N)
    return _search(_cumulative(w), u)


def multinomial(weights: Tensor, rng: torch.Generator | None) -> Tensor:
    """Multinomial resampling: ``N`` independent draws from each row's weights.

    Not offered by the reference code (which falls back to systematic for unknown names); kept as
    the textbook baseline whose count variance ``N w (1 - w)`` bounds the others'.

    Args:
        weights: ``(B, N)`` non-negative weights per row (normalised here).
        rng: source of randomness.

    Returns:
        ``(B, N)`` long indices into each row's particles.
    """
    w = _normalised(weights)
    return _search(_cumulative(w), _uniforms(tuple(w.shape), rng, w.device))


def residual(weights: Tensor, rng: torch.Generator | None, *, compat: bool = False) -> Tensor:
    """Residual resampling (maths 4.1, departures A8).

    Index ``i`` first gets ``k_i = floor(N w_i)`` deterministic copies; the remaining
    ``N - sum_i k_i`` slots are filled by independent multinomial draws from the residual weights
    ``r_i`` proportional to ``N w_i - k_i``, which makes the expected count exactly ``N w_i``.

    The output lists the deterministic copies first (ascending index), then the random draws.

    Args:
        weights: ``(B, N)`` non-negative weights per row (normalised here).
        rng: source of randomness.
        compat: use the reference code's residual weights ``softmax_i(w_i (N - k_i))`` instead;
            these are close to uniform and do not keep the expected counts at ``N w_i``.

    Returns:
        ``(B, N)`` long indices into each row's particles.
    """
    w = _normalised(weights)
    batch, n = w.shape
    scaled = n * w  # (B, N)
    copies = torch.floor(scaled)  # (B, N) k_i
    copies_cumulative = torch.cumsum(copies, dim=-1)  # (B, N)
    num_deterministic = copies_cumulative[:, -1:].clamp(max=n)  # (B, 1)
    slot = torch.arange(n, dtype=torch.float64, device=w.device).expand(batch, n)  # (B, N)
    # Slot s holds a deterministic copy of the first index whose cumulative copy count exceeds s.
    deterministic = torch.searchsorted(copies_cumulative, slot.contiguous(), right=True)
    deterministic = deterministic.clamp_(max=n - 1)

    if compat:
        residual_weights = torch.softmax(w * (n - copies), dim=-1)
    else:
        residual_weights = scaled - copies
        # A row whose N w_i are all integers has no random slots; any valid weights will do there.
        total = residual_weights.sum(dim=-1, keepdim=True)
        residual_weights = torch.where(total > 0, residual_weights, w)
        residual_weights = residual_weights / residual_weights.sum(dim=-1, keepdim=True)
    drawn = _search(_cumulative(residual_weights), _uniforms((batch, n), rng, w.device))

    return torch.where(slot < num_deterministic, deterministic, drawn)


RESAMPLERS: dict[str, Resampler] = {
    "systematic": systematic,
    "stratified": stratified,
    "multinomial": multinomial,
    "residual": residual,
}


def resample(
    name: str, weights: Tensor, rng: torch.Generator | None, *, compat: bool = False
) -> Tensor:
    """Resample every row of ``weights`` with the resampler called ``name``.

    Args:
        name: a key of ``RESAMPLERS``.
        weights: ``(B, N)`` non-negative weights per row.
        rng: source of randomness.
        compat: reproduce the reference code where it departs from the textbook algorithm; only
            ``residual`` does (departures A8), the others ignore the flag.

    Returns:
        ``(B, N)`` long indices into each row's particles.

    Raises:
        ValueError: if ``name`` is not a known resampler.
    """
    if name not in RESAMPLERS:
        choices = ", ".join(sorted(RESAMPLERS))
        raise ValueError(f"unknown resampler {name!r}; choose one of: {choices}")
    if name == "residual":
        return residual(weights, rng, compat=compat)
    return RESAMPLERS[name](weights, rng)
