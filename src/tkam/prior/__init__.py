"""Kolmogorov-Arnold priors: learned univariate densities sampled by inverse transform."""

from __future__ import annotations

import warnings

import torch

from tkam.config import PriorConfig
from tkam.prior.base import KANPrior
from tkam.prior.deep import DeepPrior
from tkam.prior.gaussian import GaussianPrior
from tkam.prior.learned import (
    component_divergences,
    effective_dimension,
    largest_components,
    prior_report,
    summarise,
)
from tkam.prior.mixture import MixturePrior
from tkam.prior.protocol import Prior, PriorModule
from tkam.prior.quadrature import QuadratureTable, gauss_legendre
from tkam.prior.reference import REFERENCE_DOMAINS, ReferenceDensity
from tkam.prior.univariate import UnivariatePrior

__all__ = [
    "DeepPrior",
    "GaussianPrior",
    "Prior",
    "PriorModule",
    "KANPrior",
    "MixturePrior",
    "UnivariatePrior",
    "QuadratureTable",
    "ReferenceDensity",
    "REFERENCE_DOMAINS",
    "gauss_legendre",
    "build_prior",
    "component_divergences",
    "effective_dimension",
    "largest_components",
    "prior_report",
    "summarise",
]


def build_prior(
    config: PriorConfig, eps: float = 1e-4, rng: torch.Generator | None = None
) -> Prior:
    """The prior a config asks for: deep if more than two widths, else mixture or univariate."""
    if config.deep:
        if config.mixture:
            warnings.warn(
                "prior.mixture is ignored for a deep prior (the reference reverses the widths "
                "and fails, ambiguity A24)",
                stacklevel=2,
            )
        return DeepPrior(config, eps=eps, rng=rng)
    cls = MixturePrior if config.mixture else UnivariatePrior
    return cls(config, eps=eps, rng=rng)
