"""Normalising constants by quadrature and the piecewise-linear CDFs that ITS inverts (maths 3.3).

Both rules produce, for every component ``(q, p)``, knots ``x_1 < ... < x_n`` of its row, the log
unnormalised density there, ``log Z`` (differentiable) and CDF values ``F_1 = 0 <= ... <= F_n = 1``.
The sampler draws exactly from the CDF that interpolates ``(x_j, F_j)`` linearly.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from tkam.kan import native_calls
from tkam.kan.layer import UnivariateLayer
from tkam.kan.native import native_applies
from tkam.kan.ops import basis_by_input

__all__ = [
    "gauss_legendre",
    "log_plus",
    "QuadratureTable",
    "gauss_legendre_table",
    "fused_gauss_legendre_table",
    "trapezium_table",
]


def log_plus(log_value: Tensor, eps: float) -> Tensor:
    """``log(exp(log_value) + eps)`` without forming ``exp(log_value)``: finite for any finite
    ``log_value`` (``log(Z + eps)`` overflowed float32 for ``log Z > 88``)."""
    return torch.logaddexp(log_value, log_value.new_tensor(math.log(eps)))


@lru_cache(maxsize=32)
def _leggauss(n: int) -> tuple[np.ndarray, np.ndarray]:
    return np.polynomial.legendre.leggauss(n)


def gauss_legendre(domain: Tensor, num_nodes: int, compat: bool = False) -> tuple[Tensor, Tensor]:
    """Gauss-Legendre nodes and weights mapped affinely onto each row's ``[a, b]`` (departures A1).

    Args:
        domain: ``(R, 2)`` limits per row.
        num_nodes: N_g.
        compat: the reference code's map instead, nodes ``b x`` and weights ``(b - a) / 2 w``:
            the same on symmetric domains, off the domain (and off pi_0's support) on the
            uniform reference's ``[-0.1, 1.1]`` and the lognormal's ``[0, 4]``.

    Returns:
        nodes ``(R, N_g)`` ascending and weights ``(R, N_g)``, in ``domain``'s dtype.
    """
    x_np, w_np = _leggauss(num_nodes)
    x = torch.as_tensor(x_np, dtype=torch.float64, device=domain.device)
    w = torch.as_tensor(w_np, dtype=torch.float64, device=domain.device)
    a = domain[:, :1].double()
    b = domain[:, 1:].double()
    nodes = b * x if compat else 0.5 * (a + b) + 0.5 * (b - a) * x
    weights = 0.5 * (b - a) * w
    return nodes.to(domain.dtype), weights.to(domain.dtype)


class QuadratureTable(NamedTuple):
    """Everything the prior's density, sampler and plots need, per component ``(Q, P)``.

    Attributes:
        knots: knot positions, broadcastable to ``(Q, P, n)``: ``(1, P, n)`` for the univariate
            prior (row p), ``(Q, 1, n)`` for the mixture (row q).
        log_density: ``(Q, P, n)`` log of the normalised density ``e^f pi_0 / Z`` at the knots.
        cdf: ``(Q, P, n)`` CDF at the knots, 0 at the first and exactly 1 at the last.
        log_normaliser: ``(Q, P)`` ``log Z``, differentiable with respect to the parameters.
        cdf_by_row: the CDFs laid out ``(P, n, Q)`` for the univariate prior's sampler, where
            the fused quadrature wrote them (else ``None``).
    """

    knots: Tensor
    log_density: Tensor
    cdf: Tensor
    log_normaliser: Tensor
    cdf_by_row: Tensor | None = None


def _normalised_cdf(cumulative: Tensor) -> Tensor:
    # Scale so that the last knot is exactly 1: the sampler relies on F_n = 1 for u in [0, 1).
    cdf = cumulative / cumulative[..., -1:]
    cdf = cdf.clamp(0.0, 1.0)
    cdf[..., -1] = 1.0
    return cdf


def gauss_legendre_table(
    nodes: Tensor, log_weights: Tensor, log_unnormalised: Tensor, rule: str = "midpoint"
) -> QuadratureTable:
    """Quadrature on Gauss-Legendre nodes.

    ``Z = sum_g w_g exp(f(x_g)) pi_0(x_g)``. The CDF assigns each node's mass ``m_g`` to its
    neighbourhood: ``midpoint`` puts ``F_j`` at ``sum_{g<j} m_g + m_j / 2`` (shifted and rescaled so
    the ends are 0 and 1), a second-order rule; ``left`` puts ``F_j = sum_{g<j} m_g`` (the
    reference's "mass before the node", departures A18, whose last-node atom is dropped).

    Args:
        nodes: ``(Q, P, N)`` (broadcast views allowed).
        log_weights: ``(Q, P, N)`` log quadrature weights.
        log_unnormalised: ``(Q, P, N)`` ``f + log pi_0`` at the nodes.
        rule: ``midpoint`` or ``left``.
    """
    log_mass = log_weights + log_unnormalised
    log_z = torch.logsumexp(log_mass, dim=-1)  # (Q, P)
    log_density = log_unnormalised - log_z.unsqueeze(-1)
    with torch.no_grad():
        mass = torch.exp(log_mass - log_z.unsqueeze(-1))
        before = torch.cumsum(mass, dim=-1) - mass
        if rule == "midpoint":
            cumulative = before + 0.5 * mass - 0.5 * mass[..., :1]
        else:
            cumulative = before
        cdf = _normalised_cdf(cumulative)
    return QuadratureTable(nodes, log_density, cdf, log_z)


@torch.profiler.record_function("tkam::quadrature_table")
def fused_gauss_legendre_table(
    layer: UnivariateLayer,
    knots: Tensor,
    nodes: Tensor,
    log_weights: Tensor,
    log_reference: Tensor,
    rows_are_inputs: bool,
    rule: str = "midpoint",
) -> QuadratureTable | None:
    """:func:`gauss_legendre_table` of a prior layer, without gradient, fused; ``None`` where
    the fused kernels do not apply (:func:`~tkam.kan.native.native_applies` for CPU float32:
    not CPU float32, the eager kernel, no compiler).

    The spline sums at the nodes are one batched matmul per layer row, ``(N, M) @ (M, O)``, of
    the fused basis values with the coefficients; one kernel pass then applies ``w_spline``, the
    base branch and ``pi_0`` and computes ``log Z``, the normalised log-density and the CDF.

    Args:
        layer: the prior's univariate-function layer (R rows, O outputs).
        knots: ``(Q, P, N)`` broadcast view of the nodes (returned as the table's knots).
        nodes, log_weights, log_reference: ``(R, N)`` nodes, log quadrature weights and
            ``log pi_0`` per row.
        rows_are_inputs: component ``(q, p)`` is ``phi_{p->q}`` (univariate) rather than
            ``phi_{q->p}`` (mixture).
    """
    args = layer.arguments()
    if not native_applies(
        nodes, log_weights, log_reference, args.coef, kernel=layer.kernel, cpu_float32=True
    ):
        return None
    R, N = nodes.shape
    O = args.coef.shape[1]
    Q, P = (O, R) if rows_are_inputs else (R, O)
    basis = basis_by_input(nodes.T, args.basis_args())  # (R, N, M)
    spline = torch.bmm(basis, args.coef.transpose(1, 2))  # (R, N, O)
    act = layer.activation(nodes) if args.w_base is not None else None
    # The tables come laid out (R, N, O), like the spline sums; (Q, P, N) are views of them.
    log_density, cdf, log_z = native_calls.quadrature_table(
        spline,
        args.w_spline,
        args.w_base,
        act,
        log_weights,
        log_reference,
        (Q, P),
        rows_are_inputs,
        rule,
    )
    order = (2, 0, 1) if rows_are_inputs else (0, 2, 1)  # (R, N, O) -> (Q, P, N)
    by_row = cdf if rows_are_inputs else None
    return QuadratureTable(knots, log_density.permute(order), cdf.permute(order), log_z, by_row)


def trapezium_table(knots: Tensor, log_unnormalised: Tensor) -> QuadratureTable:
    """Trapezium rule on the row's grid points (maths 3.3): ``m_g = (x_{g+1} - x_g)(h_g + h_{g+1}) / 2``
    with ``h = e^f pi_0``; the CDF at knot ``j`` is the cumulative mass before it.

    Args:
        knots: ``(Q, P, K)`` grid points per component's row.
        log_unnormalised: ``(Q, P, K)`` ``f + log pi_0`` at the knots.
    """
    widths = (knots[..., 1:] - knots[..., :-1]).clamp_min(0.0)
    log_pair = torch.logaddexp(log_unnormalised[..., 1:], log_unnormalised[..., :-1])
    log_mass = torch.log(0.5 * widths) + log_pair  # (Q, P, K-1)
    log_z = torch.logsumexp(log_mass, dim=-1)
    log_density = log_unnormalised - log_z.unsqueeze(-1)
    with torch.no_grad():
        mass = torch.exp(log_mass - log_z.unsqueeze(-1))
        zero = torch.zeros_like(mass[..., :1])
        cdf = _normalised_cdf(torch.cat([zero, torch.cumsum(mass, dim=-1)], dim=-1))
    return QuadratureTable(knots, log_density, cdf, log_z)
