"""A builder of small float64 priors whose densities are visibly non-flat."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from tkam.config import PriorConfig
from tkam.prior import KANPrior, build_prior

# The initialisation (maths 2.3) makes Fourier and Chebyshev functions tiny; these factors give
# them log-density variations of order one, like the grid bases with eps_scale = G / 2.
_COEFFICIENT_BOOST = {"fourier": 10.0, "chebyshev": 20.0}


def build_test_prior(
    basis: str,
    reference: str,
    *,
    mixture: bool = False,
    seed: int = 0,
    widths: tuple[int, int] = (2, 3),
    grid_size: int = 8,
    **overrides,
) -> KANPrior:
    """A float64 prior with a rough random energy ``f`` (range of order 1-5 over the domain)."""
    options = {
        "basis": basis,
        "reference": reference,
        "widths": widths,
        "mixture": mixture,
        "grid_size": grid_size,
        "eps_scale": grid_size / 2,  # initial spline targets uniform in [-1/4, 1/4]
        "sigma_spline": 3.0,
        "init_tau": 1.1 if basis == "chebyshev" else 1.0,
        "train_proportions": mixture,  # non-uniform mixture weights
    }
    options.update(overrides)
    prior = build_prior(PriorConfig(**options), rng=torch.Generator().manual_seed(seed))
    prior = prior.double()
    with torch.no_grad():
        prior.layer.coef.mul_(_COEFFICIENT_BOOST.get(basis, 1.0))
    return prior


@pytest.fixture
def make_prior() -> Callable[..., KANPrior]:
    """The :func:`build_test_prior` factory."""
    return build_test_prior
