"""Kolmogorov-Arnold priors: learned univariate densities sampled by inverse transform."""

from __future__ import annotations

import torch

from tkam.config import PriorConfig
from tkam.prior.base import KANPrior
from tkam.prior.mixture import MixturePrior
from tkam.prior.quadrature import QuadratureTable, gauss_legendre
from tkam.prior.reference import REFERENCE_DOMAINS, ReferenceDensity
from tkam.prior.univariate import UnivariatePrior

__all__ = [
    "KANPrior",
    "MixturePrior",
    "UnivariatePrior",
    "QuadratureTable",
    "ReferenceDensity",
    "REFERENCE_DOMAINS",
    "gauss_legendre",
    "build_prior",
]


def build_prior(
    config: PriorConfig, eps: float = 1e-4, generator: torch.Generator | None = None
) -> KANPrior:
    """The prior a config asks for: mixture if ``config.mixture`` else univariate."""
    cls = MixturePrior if config.mixture else UnivariatePrior
    return cls(config, eps=eps, generator=generator)
