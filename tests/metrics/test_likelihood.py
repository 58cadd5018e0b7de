"""Test-set log-likelihood against the exact evidence of a linear-Gaussian model."""

from __future__ import annotations

import math

import pytest
import torch

from tkam.generator.likelihood import GaussianLikelihood
from tkam.metrics import estimate_log_likelihood, mean_log_evidence_standard_error
from tkam.posterior import log_evidence


class _Prior:
    def __init__(self, dim: int) -> None:
        self.dim = dim

    def sample(self, num: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.randn(num, self.dim, generator=generator, dtype=torch.float64)


class LinearGaussian:
    """z ~ N(0, I_k), x | z ~ N(A z, s^2 I): the same methods the estimator calls on a TKAM."""

    def __init__(self, matrix: torch.Tensor, std: float) -> None:
        self.matrix = matrix
        self.prior = _Prior(matrix.shape[1])
        self.likelihood = GaussianLikelihood(std, 0.0, "none")

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return z @ self.matrix.T

    def exact_log_evidence(self, x: torch.Tensor) -> torch.Tensor:
        d = self.matrix.shape[0]
        covariance = self.matrix @ self.matrix.T + self.likelihood.std**2 * torch.eye(d)
        dist = torch.distributions.MultivariateNormal(torch.zeros(d), covariance_matrix=covariance)
        return dist.log_prob(x)


@pytest.mark.statistical
def test_matches_exact_evidence_within_standard_error():
    gen = torch.Generator().manual_seed(0)
    matrix = torch.randn(3, 2, generator=gen, dtype=torch.float64)
    model = LinearGaussian(matrix, std=0.7)
    x = model.decode(model.prior.sample(40, gen)) + 0.7 * torch.randn(40, 3, generator=gen)
    result = estimate_log_likelihood(model, x, 20_000, torch.Generator().manual_seed(1))
    exact = float(model.exact_log_evidence(x).mean()) / 3
    assert result.normalised and result.num_dims == 3
    assert result.standard_error > 0
    # Within 4 Monte Carlo standard errors (plus the estimator's O(1/K) bias, far smaller).
    assert abs(result.nats_per_dim - exact) < 4 * result.standard_error + 1e-4, (
        result.nats_per_dim,
        exact,
        result.standard_error,
    )
    per_item_exact = model.exact_log_evidence(x)
    z = (result.per_item - per_item_exact).abs() / result.per_item_standard_error
    assert float(z.max()) < 5.0


def test_single_row_standard_error_matches_log_evidence():
    matrix = torch.randn(1, 50, dtype=torch.float64) * 3
    _, se = log_evidence(matrix)
    assert mean_log_evidence_standard_error(matrix) == pytest.approx(float(se[0]), rel=1e-10)


def test_gaussian_constant_is_added():
    # A model whose decoder ignores z: p(x) = N(x; 0, s^2 I) exactly, with zero standard error.
    model = LinearGaussian(torch.zeros(4, 2, dtype=torch.float64), std=0.5)
    x = torch.randn(5, 4, dtype=torch.float64)
    result = estimate_log_likelihood(model, x, 10)
    exact = -0.5 * x.square().sum(-1) / 0.25 - 2 * math.log(2 * math.pi * 0.25)
    assert result.nats_per_dim == pytest.approx(float(exact.mean()) / 4, rel=1e-12)
    assert result.standard_error == pytest.approx(0.0, abs=1e-12)
