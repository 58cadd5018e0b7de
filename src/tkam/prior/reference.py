"""Reference densities pi_0 of the univariate priors (maths 3.1)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tkam.config import REFERENCE_DOMAINS

__all__ = ["ReferenceDensity", "REFERENCE_DOMAINS"]


_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)


class ReferenceDensity(nn.Module):
    """pi_0 evaluated per row: inputs ``(..., R)`` where the last axis indexes the R rows.

    ``learnable_gaussian`` has a mean and a softplus-parametrised standard deviation per row and is
    the proper normal density (the reference inverts it, departures A17).

    Args:
        name: uniform, gaussian, lognormal, learnable_gaussian or ebm.
        num_rows: R, rows with their own parameters (learnable_gaussian only).
        grid_range: domain for ebm and learnable_gaussian.
        eps: stabiliser inside ``log(pi_0 + eps)`` and the lognormal density (``train.eps``).
    """

    def __init__(
        self, name: str, num_rows: int, grid_range: tuple[float, float], eps: float = 1e-4
    ) -> None:
        super().__init__()
        if name not in REFERENCE_DOMAINS:
            raise ValueError(f"unknown reference density {name!r}")
        self.name = name
        self.eps = eps
        fixed = REFERENCE_DOMAINS[name]
        self.domain = fixed if fixed is not None else (float(grid_range[0]), float(grid_range[1]))
        if name == "learnable_gaussian":
            self.mean = nn.Parameter(torch.zeros(num_rows))
            # softplus(log(e - 1)) = 1: start at the standard normal.
            self.raw_std = nn.Parameter(torch.full((num_rows,), math.log(math.e - 1.0)))

    def log_pdf(self, z: Tensor) -> Tensor:
        """``log pi_0(z)`` exactly (``-inf`` outside the support); used for quadrature masses."""
        name = self.name
        if name == "ebm":
            return torch.zeros_like(z)
        if name == "uniform":
            inside = (z >= 0) & (z <= 1)
            return torch.where(inside, 0.0, -math.inf).to(z.dtype)
        if name == "gaussian":
            return -0.5 * z.square() - _LOG_SQRT_2PI
        if name == "lognormal":
            return torch.log(self._lognormal(z))
        std = F.softplus(self.raw_std)
        return -0.5 * ((z - self.mean) / std).square() - torch.log(std) - _LOG_SQRT_2PI

    def _lognormal(self, z: Tensor) -> Tensor:
        # The reference's stabilised form exp(-ln^2(z + eps)/2) / (z sqrt(2 pi) + eps), zero for z<0.
        eps = self.eps
        zc = z.clamp_min(0.0)
        value = torch.exp(-0.5 * torch.log(zc + eps).square()) / (zc * math.sqrt(2 * math.pi) + eps)
        return torch.where(z >= 0, value, torch.zeros_like(value))

    def log_density(self, z: Tensor) -> Tensor:
        """``log(pi_0(z) + eps)`` as in the log-prior (maths 3.1); 0 for ``ebm``."""
        if self.name == "ebm":
            return torch.zeros_like(z)
        return torch.log(self.log_pdf(z).exp() + self.eps)

    def log_base(self, z: Tensor) -> Tensor:
        """The log-density of a deep prior's base (maths 3.8, departures A10): exact where pi_0 is
        positive on the whole line (the Gaussians), so that the base keeps its tails;
        ``log(pi_0 + eps)`` for the densities with bounded support, whose Langevin chains need the
        floor outside."""
        if self.name in ("gaussian", "learnable_gaussian"):
            return self.log_pdf(z)
        return self.log_density(z)
