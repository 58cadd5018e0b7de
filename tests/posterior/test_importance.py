"""Importance weights, SIR and the log-evidence estimate (maths 4.1, departures A3)."""

from __future__ import annotations

import math

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tkam.posterior import (
    RESAMPLERS,
    SIRResult,
    importance_resample,
    importance_weights,
    log_evidence,
    resample,
)

# ---------------------------------------------------------------------------------------------
# importance_weights

_LOG_LIKELIHOODS = hnp.arrays(
    dtype=st.sampled_from([np.float32, np.float64]),
    shape=hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=40),
    elements=st.one_of(
        st.floats(-1e4, 1e4, width=32),
        st.sampled_from([-1e4, 1e4, 0.0, -1e4 + 1.0]),
    ),
)


@settings(max_examples=150, deadline=None)
@given(_LOG_LIKELIHOODS)
def test_weights_are_a_distribution_and_ess_is_bounded(array: np.ndarray) -> None:
    log_likelihood = torch.from_numpy(array)
    n = log_likelihood.shape[1]
    weights, ess = importance_weights(log_likelihood)
    assert weights.dtype == log_likelihood.dtype and ess.dtype == log_likelihood.dtype
    assert weights.shape == log_likelihood.shape and ess.shape == (log_likelihood.shape[0],)
    assert torch.isfinite(weights).all() and torch.isfinite(ess).all()
    assert (weights >= 0).all()
    tolerance = 1e-5 if log_likelihood.dtype == torch.float32 else 1e-12
    torch.testing.assert_close(weights.sum(dim=1), torch.ones_like(ess), rtol=0.0, atol=tolerance)
    assert (ess >= 1.0).all() and (ess <= n).all()

    estimate, standard_error = log_evidence(log_likelihood) if n >= 2 else (ess, ess)
    assert torch.isfinite(estimate).all() and torch.isfinite(standard_error).all()


def test_ess_known_values() -> None:
    log_likelihood = torch.tensor(
        [
            [0.3, 0.3, 0.3, 0.3],  # uniform: ESS = N
            [0.0, -1e4, -1e4, -1e4],  # one particle: ESS = 1
            [5.0, 5.0, -1e4, -1e4],  # two equal particles: ESS = 2
            [math.log(3.0), 0.0, 0.0, 0.0],  # w = (1/2, 1/6, 1/6, 1/6): ESS = 3
        ],
        dtype=torch.float64,
    )
    weights, ess = importance_weights(log_likelihood)
    torch.testing.assert_close(ess, torch.tensor([4.0, 1.0, 2.0, 3.0], dtype=torch.float64))
    torch.testing.assert_close(weights[3], torch.tensor([3.0, 1.0, 1.0, 1.0]).double() / 6.0)


def test_weights_ignore_a_constant_per_row() -> None:
    g = torch.Generator().manual_seed(0)
    log_likelihood = 20.0 * torch.randn(3, 50, generator=g, dtype=torch.float64)
    shift = torch.tensor([[-7e3], [0.0], [9e3]], dtype=torch.float64)
    torch.testing.assert_close(
        importance_weights(log_likelihood + shift)[0], importance_weights(log_likelihood)[0]
    )


# ---------------------------------------------------------------------------------------------
# importance_resample


def _mixed_rows(n: int = 64) -> torch.Tensor:
    """Row 0: mild spread (high ESS, weights not uniform); row 1: one dominant particle."""
    g = torch.Generator().manual_seed(1)
    mild = 0.1 * torch.randn(n, generator=g)
    peaked = torch.full((n,), -1e4)
    peaked[5] = 0.0
    return torch.stack([mild, peaked])


@pytest.mark.parametrize("name", sorted(RESAMPLERS))
def test_high_ess_rows_are_untouched_and_low_ess_rows_resampled(name: str) -> None:
    log_likelihood = _mixed_rows()
    n = log_likelihood.shape[1]
    weights, ess = importance_weights(log_likelihood)
    result = importance_resample(log_likelihood, 0.5, name, torch.Generator().manual_seed(2))
    assert isinstance(result, SIRResult)
    assert result.resampled.tolist() == [False, True]
    assert result.indices.dtype == torch.long and result.indices.shape == (2, n)
    assert torch.equal(result.indices[0], torch.arange(n))
    assert torch.equal(result.weights[0], weights[0])
    assert not torch.allclose(result.weights[0], torch.full((n,), 1.0 / n))
    assert torch.all(result.indices[1] == 5)
    assert torch.all(result.weights[1] == 1.0 / n)
    torch.testing.assert_close(result.ess, ess)
    assert result.weights.dtype == log_likelihood.dtype


@pytest.mark.parametrize("name", sorted(RESAMPLERS))
def test_resampled_flags_follow_the_threshold(name: str) -> None:
    g = torch.Generator().manual_seed(3)
    n = 40
    scale = torch.logspace(-2, 1.5, 30)[:, None]  # ESS from ~N down to ~1
    log_likelihood = scale * torch.randn(30, n, generator=g)
    weights, ess = importance_weights(log_likelihood)
    result = importance_resample(log_likelihood, 0.5, name, torch.Generator().manual_seed(4))
    assert torch.equal(result.resampled, ess < 0.5 * n)
    assert 0 < int(result.resampled.sum()) < 30
    # Resampled rows hold exactly what the resampler gives for the same generator state.
    drawn = resample(name, weights, torch.Generator().manual_seed(4))
    rows = result.resampled
    assert torch.equal(result.indices[rows], drawn[rows])
    assert torch.equal(result.indices[~rows], torch.arange(n).expand(int((~rows).sum()), n))
    torch.testing.assert_close(result.weights.sum(dim=1), torch.ones(30))


def test_threshold_extremes() -> None:
    log_likelihood = _mixed_rows()
    none = importance_resample(log_likelihood, 0.0, "residual", torch.Generator().manual_seed(5))
    every = importance_resample(log_likelihood, 1.01, "residual", torch.Generator().manual_seed(5))
    assert not none.resampled.any()
    assert every.resampled.all()


def test_compat_weights_are_softmax_of_gathered_weights() -> None:
    log_likelihood = _mixed_rows()
    weights, _ = importance_weights(log_likelihood)
    result = importance_resample(
        log_likelihood, 0.5, "systematic", torch.Generator().manual_seed(6), compat=True
    )
    expected = torch.softmax(torch.gather(weights, 1, result.indices), dim=1)
    torch.testing.assert_close(result.weights, expected)
    # Softmax of probabilities is close to uniform: the reference's weights barely weight.
    torch.testing.assert_close(
        result.weights, torch.full_like(expected, 1 / 64), rtol=0.0, atol=0.03 / 64
    )


def test_compat_residual_is_forwarded() -> None:
    log_likelihood = 3.0 * torch.randn(8, 30, generator=torch.Generator().manual_seed(7))
    weights, _ = importance_weights(log_likelihood)
    result = importance_resample(
        log_likelihood, 2.0, "residual", torch.Generator().manual_seed(8), compat_residual=True
    )
    expected = resample("residual", weights, torch.Generator().manual_seed(8), compat=True)
    assert torch.equal(result.indices, expected)


def test_outputs_are_constants() -> None:
    log_likelihood = _mixed_rows().requires_grad_()
    result = importance_resample(log_likelihood, 0.5, "residual", torch.Generator())
    assert not result.weights.requires_grad


def test_unknown_resampler_is_rejected() -> None:
    with pytest.raises(ValueError, match="choose one of"):
        importance_resample(_mixed_rows(), 0.5, "bogus", torch.Generator())


@pytest.mark.statistical
@pytest.mark.parametrize("name", sorted(RESAMPLERS))
def test_sir_estimates_are_unbiased(name: str) -> None:
    """Seed 9, 20,000 repetitions, |z| < 4.5: sum_n w~_n f(z_{I_n}) has mean sum_n w_n f(z_n)."""
    g = torch.Generator().manual_seed(9)
    n, repetitions = 16, 20_000
    z = torch.randn(n, generator=g, dtype=torch.float64)
    log_likelihood = (2.0 * torch.randn(n, generator=g, dtype=torch.float64)).expand(repetitions, n)
    weights, _ = importance_weights(log_likelihood[:1])
    target = float((weights[0] * z).sum())
    result = importance_resample(log_likelihood, 0.5, name, g)
    assert result.resampled.all()
    estimates = (result.weights * z[result.indices]).sum(dim=1)  # (R,)
    z_score = (estimates.mean() - target) / (estimates.std() / math.sqrt(repetitions))
    assert abs(float(z_score)) < 4.5


# ---------------------------------------------------------------------------------------------
# log_evidence on a conjugate Gaussian: z ~ N(0, 1), x | z ~ N(z, s^2)  =>  x ~ N(0, 1 + s^2)

NOISE = 0.5
X_VALUES = torch.tensor([-2.0, -0.5, 0.0, 1.0, 2.5], dtype=torch.float64)


def _gaussian_log_density(x: torch.Tensor, mean: torch.Tensor, variance: float) -> torch.Tensor:
    return -0.5 * (x - mean) ** 2 / variance - 0.5 * math.log(2 * math.pi * variance)


def _conjugate_log_likelihood(x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """``(B, N)`` log N(x_b; z_n, s^2) for prior draws ``z`` of shape ``(N,)`` or ``(B, N)``."""
    return _gaussian_log_density(x[:, None], z, NOISE**2)


def _exact_log_evidence(x: torch.Tensor) -> torch.Tensor:
    return _gaussian_log_density(x, torch.zeros_like(x), 1.0 + NOISE**2)


@pytest.mark.statistical
def test_log_evidence_matches_closed_form() -> None:
    """Seed 10, N = 5,000 prior draws shared by five x values: |error| < 3 standard errors."""
    z = torch.randn(5_000, generator=torch.Generator().manual_seed(10), dtype=torch.float64)
    estimate, standard_error = log_evidence(_conjugate_log_likelihood(X_VALUES, z))
    error = (estimate - _exact_log_evidence(X_VALUES)).abs()
    assert torch.all(standard_error > 0)
    assert torch.all(error < 3.0 * standard_error), (error, standard_error)


@pytest.mark.statistical
def test_standard_error_shrinks_like_inverse_sqrt_n() -> None:
    """Seed 11: se(N=1,000) / se(N=16,000) is within 20% of sqrt(16) = 4 for every x."""
    g = torch.Generator().manual_seed(11)
    _, small = log_evidence(
        _conjugate_log_likelihood(X_VALUES, torch.randn(1_000, generator=g, dtype=torch.float64))
    )
    _, large = log_evidence(
        _conjugate_log_likelihood(X_VALUES, torch.randn(16_000, generator=g, dtype=torch.float64))
    )
    ratio = small / large
    assert torch.all((ratio > 3.2) & (ratio < 4.8)), ratio


@pytest.mark.statistical
def test_standard_error_is_calibrated() -> None:
    """Seed 12, 400 independent estimates with N = 1,000 at x = 1: the spread of the estimates
    matches the mean reported standard error within 15%, and +-2 se covers 90-99% of them."""
    repetitions, n = 400, 1_000
    z = torch.randn(repetitions, n, generator=torch.Generator().manual_seed(12)).double()
    x = torch.full((repetitions,), 1.0, dtype=torch.float64)
    estimate, standard_error = log_evidence(_conjugate_log_likelihood(x, z))
    spread = float(estimate.std())
    assert 0.85 < spread / float(standard_error.mean()) < 1.15
    covered = ((estimate - _exact_log_evidence(x)).abs() < 2.0 * standard_error).double().mean()
    assert 0.90 < float(covered) < 0.99


def test_log_evidence_of_constant_rows_is_exact() -> None:
    log_likelihood = torch.tensor([[-3.0] * 6, [1e4] * 6, [-1e4] * 6], dtype=torch.float32)
    estimate, standard_error = log_evidence(log_likelihood)
    torch.testing.assert_close(estimate, torch.tensor([-3.0, 1e4, -1e4]))
    assert torch.all(standard_error == 0)
    assert estimate.dtype == torch.float32


def test_log_evidence_gradient_is_the_weights() -> None:
    log_likelihood = torch.randn(3, 20, generator=torch.Generator().manual_seed(13)).double()
    log_likelihood.requires_grad_()
    estimate, standard_error = log_evidence(log_likelihood)
    assert not standard_error.requires_grad
    (gradient,) = torch.autograd.grad(estimate.sum(), log_likelihood)
    torch.testing.assert_close(gradient, importance_weights(log_likelihood.detach())[0])


def test_log_evidence_needs_two_samples() -> None:
    with pytest.raises(ValueError, match="at least two"):
        log_evidence(torch.zeros(3, 1))
