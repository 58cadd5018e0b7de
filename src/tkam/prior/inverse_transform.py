"""Inverse-transform sampling of piecewise-linear CDFs, vectorised (maths 3.4).

``invert_batched`` is the reference: ``searchsorted`` finds the interval, a lerp inverts it, for
any dtype and device. On CPU float32 tensors the priors' two layouts run fused C++ kernels
(:mod:`tkam.kan.native_calls`; ``kernel = "eager"`` turns them off, as it does for the layers)
with the very arithmetic of ``invert_batched``, so their samples are bitwise those of the
reference: the univariate prior's shared uniforms are sorted once per row
and merged with its components' CDFs; the mixture's per-sample components find their interval
from a guide table (one index per ``1/L`` of probability, so a lookup and a short forward scan
replace the binary search).
"""

from __future__ import annotations

from typing import Literal, overload

import torch
from torch import Tensor

from tkam.kan import native_calls
from tkam.kan.native import native_applies

__all__ = ["invert_batched", "invert_components", "invert_shared", "guide_table"]

# Without AVX-512: from this many samples per knot on, interpolating interval by interval beats
# sample by sample.
RUNS_FROM = 5


def _lerp_inverse(u: Tensor, f_lo: Tensor, f_hi: Tensor, x_lo: Tensor, x_hi: Tensor) -> Tensor:
    gap = f_hi - f_lo
    frac = torch.where(gap > 0, (u - f_lo) / torch.where(gap > 0, gap, 1.0), 0.0).clamp(0.0, 1.0)
    # Rounding in the lerp may step a few ulps past the interval: keep samples inside it.
    return torch.minimum(torch.maximum(x_lo + (x_hi - x_lo) * frac, x_lo), x_hi)


def invert_batched(knots: Tensor, cdf: Tensor, u: Tensor) -> Tensor:
    """Invert one CDF per leading index for a batch of uniforms each.

    Args:
        knots: ``(..., n)`` ascending knots (broadcast views allowed).
        cdf: ``(..., n)`` CDF values with ``cdf[..., 0] = 0`` and ``cdf[..., -1] = 1``.
        u: ``(..., S)`` uniforms in ``[0, 1)``.

    Returns:
        ``(..., S)`` samples; ``u`` maps to the ``x`` with ``F(x) = u`` on the linear interpolant.
    """
    n = cdf.shape[-1]
    u = u.to(cdf.dtype)
    j = torch.searchsorted(cdf.contiguous(), u.contiguous(), right=False)
    j = j.clamp_(1, n - 1)
    lo = j - 1
    knots = knots.expand_as(cdf)
    return _lerp_inverse(
        u,
        torch.gather(cdf, -1, lo),
        torch.gather(cdf, -1, j),
        torch.gather(knots, -1, lo),
        torch.gather(knots, -1, j),
    )


@torch.profiler.record_function("tkam::guide_table")
def guide_table(cdf: Tensor, *, kernel: str = "fused") -> Tensor:
    """``guide[c, b] = min{j : cdf[c, j] >= b / L}`` for ``b < L``, L the power of two >= n.

    With L a power of two, ``floor(u L) = b`` implies ``u >= b / L`` exactly in floating point, so
    the search for ``u`` may start at ``guide[c, b]``. ``(C, n) -> (C, L)`` int32. ``kernel``:
    the prior layer's setting (``eager`` never runs the fused kernel).
    """
    C, n = cdf.shape
    L = 1 << max(n - 1, 1).bit_length()
    if native_applies(cdf, kernel=kernel, cpu_float32=True):
        return native_calls.guide_table(cdf, L)
    thresholds = torch.arange(L, dtype=cdf.dtype, device=cdf.device) / L
    guide = torch.searchsorted(cdf.contiguous(), thresholds.expand(C, L).contiguous())
    return guide.to(torch.int32)


@overload
def invert_components(
    knots: Tensor,
    cdf: Tensor,
    component: Tensor,
    u: Tensor,
    guide: Tensor | None = None,
    knot_rows: Tensor | None = None,
    *,
    kernel: str = "fused",
    slope: Literal[False] = False,
) -> Tensor: ...


@overload
def invert_components(
    knots: Tensor,
    cdf: Tensor,
    component: Tensor,
    u: Tensor,
    guide: Tensor | None = None,
    knot_rows: Tensor | None = None,
    *,
    kernel: str = "fused",
    slope: Literal[True],
) -> tuple[Tensor, Tensor]: ...


@torch.profiler.record_function("tkam::invert_components")
def invert_components(
    knots: Tensor,
    cdf: Tensor,
    component: Tensor,
    u: Tensor,
    guide: Tensor | None = None,
    knot_rows: Tensor | None = None,
    *,
    kernel: str = "fused",
    slope: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """Invert, for each sample, the CDF of its own component.

    Fused kernel on CPU float32; elsewhere all component CDFs are laid end to end with offsets
    ``2c`` so the concatenation is one ascending sequence, and one ``searchsorted`` serves every
    sample, whatever its component, without materialising a per-sample copy of the CDF.

    Args:
        knots: ``(C, n)`` knots of each component, or ``(R, n)`` with ``knot_rows``.
        cdf: ``(C, n)`` CDF values, 0 first and 1 last.
        component: ``(...)`` long component index of each sample.
        u: ``(...)`` uniforms in ``[0, 1)``.
        guide: :func:`guide_table` of ``cdf``, when the caller keeps one.
        knot_rows: ``(...)`` long row of ``knots`` of each sample, when ``knots`` holds fewer
            rows than ``cdf`` (components sharing their knots); else sample k uses row
            ``component[k]``.
        kernel: the prior layer's setting (``eager`` never runs the fused kernel).
        slope: also return ``dx/du`` at each sample, its interval's width over its rise (0 on
            a flat interval): the derivative of the piecewise-linear inverse almost everywhere.

    Returns:
        ``(...)`` samples, in ``cdf``'s dtype (and with ``slope`` their slopes).
    """
    if knot_rows is None:
        knots, knot_rows = knots.expand_as(cdf), component
    if native_applies(knots, cdf, kernel=kernel, cpu_float32=True):
        guide = guide_table(cdf) if guide is None else guide
        rows = component.reshape(-1).contiguous()
        knot_rows = knot_rows.expand_as(component).reshape(-1).contiguous()
        flat_u = u.reshape(-1).to(cdf.dtype).contiguous()
        if slope:
            out, slopes = native_calls.invert_rows(cdf, knots, guide, rows, knot_rows, flat_u, True)
            return out.reshape(u.shape), slopes.reshape(u.shape)
        return native_calls.invert_rows(cdf, knots, guide, rows, knot_rows, flat_u).reshape(u.shape)
    num, n = cdf.shape
    offsets = 2.0 * torch.arange(num, dtype=torch.float64, device=cdf.device)
    sequence = (cdf.double() + offsets[:, None]).reshape(-1)
    flat_u = u.reshape(-1).double()
    flat_c = component.reshape(-1)
    g = torch.searchsorted(sequence, flat_u + offsets[flat_c], right=False)
    index = (g - flat_c * n).clamp_(1, n - 1)  # the interval's upper end within the row
    j = index + flat_c * n
    lo = j - 1
    cdf_flat = cdf.reshape(-1)
    k = index + knot_rows.expand_as(component).reshape(-1) * n
    knots_flat = knots.reshape(-1)
    f_lo, f_hi, x_lo, x_hi = cdf_flat[lo], cdf_flat[j], knots_flat[k - 1], knots_flat[k]
    out = _lerp_inverse(flat_u.to(cdf.dtype), f_lo, f_hi, x_lo, x_hi).reshape(u.shape)
    if slope:
        gap = f_hi - f_lo
        slopes = torch.where(gap > 0, (x_hi - x_lo) / torch.where(gap > 0, gap, 1.0), 0.0)
        return out, slopes.reshape(u.shape)
    return out


@torch.profiler.record_function("tkam::invert_shared")
@overload
def invert_shared(
    knots: Tensor,
    cdf: Tensor,
    u: Tensor,
    values: Literal[True] = True,
    sums: Literal[False] = False,
    cdf_by_row: Tensor | None = None,
    *,
    kernel: str = "fused",
) -> Tensor: ...


@overload
def invert_shared(
    knots: Tensor,
    cdf: Tensor,
    u: Tensor,
    values: bool,
    sums: Literal[True],
    cdf_by_row: Tensor | None = None,
    *,
    kernel: str = "fused",
) -> tuple[Tensor | None, Tensor]: ...


@overload
def invert_shared(
    knots: Tensor,
    cdf: Tensor,
    u: Tensor,
    values: bool = True,
    *,
    sums: Literal[True],
    cdf_by_row: Tensor | None = None,
    kernel: str = "fused",
) -> tuple[Tensor | None, Tensor]: ...


def invert_shared(
    knots: Tensor,
    cdf: Tensor,
    u: Tensor,
    values: bool = True,
    sums: bool = False,
    cdf_by_row: Tensor | None = None,
    *,
    kernel: str = "fused",
) -> Tensor | tuple[Tensor | None, Tensor | None] | None:
    """Invert ``Q`` CDFs per row at uniforms shared by those CDFs (the univariate prior's layout).

    On CPU float32 a fused kernel sorts each row's uniforms once and merges them with every
    component's CDF: 16 components side by side where the CPU has AVX-512 (they share the
    uniforms), otherwise one at a time (for many samples, interpolating each interval's run of
    samples in one vectorised loop). The arithmetic is ``invert_batched``'s, and so are the
    samples, bit for bit.

    Args:
        knots: ``(P, n)`` ascending knots of each row.
        cdf: ``(Q, P, n)`` CDFs of the components on those rows (0 first, 1 last).
        u: ``(P, S)`` uniforms in ``[0, 1)``, shared by the ``Q`` components of a row.
        values, sums: return the ``(S, Q, P)`` samples, and/or their sums over ``p``,
            ``(S, Q)`` (the generator input, without writing the samples when ``values`` is off).
        cdf_by_row: ``cdf.permute(1, 2, 0).contiguous()``, when the caller keeps it.
        kernel: the prior layer's setting (``eager`` never runs the fused kernel).

    Returns:
        ``(S, Q, P)`` samples, or ``(samples or None, sums)`` when ``sums``.
    """
    Q, P, n = cdf.shape
    S = u.shape[-1]
    if native_applies(knots, cdf, kernel=kernel, cpu_float32=True):
        out = torch.empty(S, Q, P, dtype=cdf.dtype) if values else None
        total = torch.empty(S, Q, dtype=cdf.dtype) if sums else None
        u = u.to(cdf.dtype).contiguous()
        by_row = cdf.permute(1, 2, 0).contiguous() if cdf_by_row is None else cdf_by_row
        if not native_calls.invert_shared_lanes(by_row, knots, u, out, total):
            # No AVX-512: per component, by sample or by interval.
            sorted_u, order = torch.sort(u, dim=-1)  # (P, S)
            by_interval = S >= RUNS_FROM * n
            native_calls.invert_shared_sorted(
                cdf, knots, sorted_u, order.to(torch.int32), out, total, by_interval
            )
    else:
        out = invert_batched(knots.expand_as(cdf), cdf, u.expand(Q, P, S)).permute(2, 0, 1)
        total = out.sum(-1) if sums else None
        out = out.contiguous() if values else None
    return (out, total) if sums else out
