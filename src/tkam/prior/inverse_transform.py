"""Inverse-transform sampling of piecewise-linear CDFs, vectorised (spec section 3.4).

No Python loop over components or samples: ``searchsorted`` finds the interval, a lerp inverts it.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["invert_batched", "invert_components", "invert_shared"]


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


def invert_components(knots: Tensor, cdf: Tensor, component: Tensor, u: Tensor) -> Tensor:
    """Invert, for each sample, the CDF of its own component.

    All component CDFs are laid end to end with offsets ``2c`` so the concatenation is one ascending
    sequence; one ``searchsorted`` then serves every sample, whatever its component, without
    materialising a per-sample copy of the CDF.

    Args:
        knots: ``(C, n)`` knots of each component.
        cdf: ``(C, n)`` CDF values, 0 first and 1 last.
        component: ``(...)`` long component index of each sample.
        u: ``(...)`` uniforms in ``[0, 1)``.

    Returns:
        ``(...)`` samples, in ``cdf``'s dtype.
    """
    num, n = cdf.shape
    offsets = 2.0 * torch.arange(num, dtype=torch.float64, device=cdf.device)
    sequence = (cdf.double() + offsets[:, None]).reshape(-1)
    flat_u = u.reshape(-1).double()
    flat_c = component.reshape(-1)
    g = torch.searchsorted(sequence, flat_u + offsets[flat_c], right=False)
    j = (g - flat_c * n).clamp_(1, n - 1) + flat_c * n
    lo = j - 1
    cdf_flat = cdf.reshape(-1)
    knots_flat = knots.expand_as(cdf).reshape(-1)
    out = _lerp_inverse(
        flat_u.to(cdf.dtype), cdf_flat[lo], cdf_flat[j], knots_flat[lo], knots_flat[j]
    )
    return out.reshape(u.shape)


def invert_shared(knots: Tensor, cdf: Tensor, u: Tensor) -> Tensor:
    """Invert ``Q`` CDFs per row at uniforms shared by those CDFs (the univariate prior's layout).

    Rather than a binary search per output, the uniforms of each row are sorted once; the knots'
    CDF values are located among them (``Q x P x n`` searches), which gives how many samples fall
    in each interval, and the interval parameters are expanded by ``repeat_interleave``. This is
    several times faster than ``invert_batched`` for many samples.

    Args:
        knots: ``(P, n)`` ascending knots of each row.
        cdf: ``(Q, P, n)`` CDFs of the components on those rows (0 first, 1 last).
        u: ``(P, S)`` uniforms in ``[0, 1)``, shared by the ``Q`` components of a row.

    Returns:
        ``(S, Q, P)`` samples.
    """
    Q, P, n = cdf.shape
    S = u.shape[-1]
    u = u.to(cdf.dtype)
    sorted_u, order = torch.sort(u, dim=-1)  # (P, S)
    # One batched search per row: the Q x n knot values of row p among its S sorted uniforms.
    queries = cdf.permute(1, 0, 2).reshape(P, Q * n)
    below = torch.searchsorted(sorted_u.contiguous(), queries, right=True)
    below = below.view(P, Q, n).permute(1, 0, 2).contiguous()
    # below[..., k] = #{s: u_s <= F_k}; samples with F_{k-1} < u <= F_k use interval (k-1, k).
    counts = torch.diff(below, dim=-1)  # (Q, P, n-1)
    counts[..., 0] += below[..., 0]  # u = 0 = F_0 joins the first interval
    f_lo, f_hi = cdf[..., :-1], cdf[..., 1:]
    x_lo = knots[:, :-1].expand(Q, P, n - 1)
    gap = f_hi - f_lo
    slope = torch.where(gap > 0, (knots[:, 1:] - knots[:, :-1]) / torch.where(gap > 0, gap, 1.0), 0)
    # The interval of every sorted sample, built once and used for all four parameters.
    interval = torch.repeat_interleave(
        torch.arange(counts.numel(), device=cdf.device), counts.reshape(-1)
    )

    def expand(table: Tensor) -> Tensor:
        return table.reshape(-1).index_select(0, interval).view(Q, P, S)

    start, rate, base = expand(x_lo), expand(slope), expand(f_lo)
    end = expand(knots[:, 1:].expand(Q, P, n - 1))
    values = torch.minimum(start + rate * (sorted_u - base), end)
    out = torch.empty(S, Q, P, dtype=cdf.dtype, device=cdf.device)
    out.permute(1, 2, 0).scatter_(2, order.expand(Q, P, S), values)
    return out
