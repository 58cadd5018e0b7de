"""Univariate bases of KAN layers (maths 2.2).

Every function maps inputs ``x`` of shape ``(..., I)`` to basis values ``(..., I, M)``; row ``i`` of
the grid belongs to input ``i``. Layers contract these with their coefficients in one ``einsum``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "activation",
    "bspline_basis",
    "rbf_basis",
    "rswaf_basis",
    "fourier_basis",
    "chebyshev_basis",
    "extend_grid",
    "num_bases",
]


def _none(x: Tensor) -> Tensor:
    return torch.zeros_like(x)


_ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "relu": F.relu,
    "leakyrelu": lambda x: F.leaky_relu(x, 0.01),
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "swish": F.hardswish,  # the reference's "swish" is hard-swish
    "gelu": lambda x: F.gelu(x, approximate="tanh"),
    "selu": F.selu,
    "silu": F.silu,
    "elu": F.elu,
    "celu": F.celu,
    "none": _none,
}


def activation(name: str) -> Callable[[Tensor], Tensor]:
    """The base activation b(x) of maths 2.1 (``none`` returns zeros)."""
    try:
        return _ACTIVATIONS[name]
    except KeyError:
        raise ValueError(
            f"unknown base activation {name!r}; choose one of {', '.join(_ACTIVATIONS)}"
        ) from None


def num_bases(basis: str, grid_size: int, degree: int) -> int:
    """Number of basis functions M per input (maths 2.2)."""
    if basis == "bspline":
        return grid_size + degree
    if basis in ("rbf", "rswaf"):
        return grid_size + 1
    if basis == "fourier":
        return 2 * (grid_size + 1)
    if basis == "chebyshev":
        return degree + 1
    raise ValueError(f"unknown basis {basis!r}")


def extend_grid(grid: Tensor, degree: int) -> Tensor:
    """Extend each row of a uniform-spaced grid ``(I, G+1)`` by ``degree`` knots on each side.

    The spacing of the first (last) interval is repeated outwards, so the row gains ``2k`` columns.
    """
    if degree == 0:
        return grid
    left = grid[:, 1:2] - grid[:, 0:1]
    right = grid[:, -1:] - grid[:, -2:-1]
    steps = torch.arange(1, degree + 1, dtype=grid.dtype, device=grid.device)
    before = grid[:, :1] - left * steps.flip(0)
    after = grid[:, -1:] + right * steps
    return torch.cat([before, grid, after], dim=1)


def bspline_basis(x: Tensor, knots: Tensor, degree: int) -> Tensor:
    """B-splines of degree ``k`` by the Cox-de Boor recursion on the extended knot row.

    Args:
        x: inputs ``(..., I)``.
        knots: extended knots ``(I, K)``, non-decreasing per row.
        degree: spline degree k.

    Returns:
        ``(..., I, K - 1 - k)`` basis values; terms with a zero denominator are dropped.
    """
    x = x.unsqueeze(-1)  # (..., I, 1)
    t = knots
    b = ((x >= t[:, :-1]) & (x < t[:, 1:])).to(x.dtype)  # (..., I, K-1)
    for d in range(1, degree + 1):
        left_den = t[:, d:-1] - t[:, : -(d + 1)]
        right_den = t[:, d + 1 :] - t[:, 1:-d]
        left = torch.where(left_den > 0, (x - t[:, : -(d + 1)]) / left_den.clamp_min(1e-30), 0.0)
        right = torch.where(right_den > 0, (t[:, d + 1 :] - x) / right_den.clamp_min(1e-30), 0.0)
        b = left * b[..., :-1] + right * b[..., 1:]
    return b


def rbf_basis(x: Tensor, grid: Tensor, bandwidth: Tensor, tau: Tensor) -> Tensor:
    """Gaussian radial bases ``exp(-((x - g) / (h tau))^2 / 2)``; ``h`` is one scalar per layer."""
    return torch.exp(-0.5 * ((x.unsqueeze(-1) - grid) / (bandwidth * tau)).square())


def rswaf_basis(x: Tensor, grid: Tensor, tau: Tensor) -> Tensor:
    """Reflectional switch-activation bases ``1 - tanh^2((x - g) / tau)``."""
    return 1.0 - torch.tanh((x.unsqueeze(-1) - grid) / tau).square()


def fourier_basis(x: Tensor, frequencies: Tensor, tau: Tensor) -> Tensor:
    """``[cos(2 pi tau k x), sin(2 pi tau k x)]`` for k in ``frequencies`` (the cosines first)."""
    angle = (2.0 * math.pi) * tau * x.unsqueeze(-1) * frequencies  # (..., I, G+1)
    return torch.cat([torch.cos(angle), torch.sin(angle)], dim=-1)


def chebyshev_basis(x: Tensor, degree: int, tau: Tensor) -> Tensor:
    """Chebyshev polynomials ``T_n(tanh(x) / tau)``, n = 0..D, by the three-term recurrence.

    The recurrence equals ``cos(n arccos y)`` on ``|y| < 1`` and has finite gradients everywhere,
    whereas ``arccos`` has infinite slope at the ends.
    """
    y = torch.tanh(x) / tau
    terms = [torch.ones_like(y)]
    if degree >= 1:
        terms.append(y)
    for _ in range(2, degree + 1):
        terms.append(2.0 * y * terms[-1] - terms[-2])
    return torch.stack(terms, dim=-1)
