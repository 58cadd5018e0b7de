"""FID and KID on synthetic features (maths 7), seeded with stated tolerances."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tkam.metrics import frechet_distance, kernel_inception_distance, mmd2_unbiased


def _gaussian(n: int, d: int, seed: int, shift: float = 0.0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, d)) + shift


def test_fid_of_a_set_against_itself_is_zero():
    features = _gaussian(500, 32, 0) @ _gaussian(32, 32, 1)  # correlated features
    assert frechet_distance(features, features) < 1e-3


def test_fid_grows_monotonically_with_added_noise():
    rng = np.random.default_rng(2)
    features = rng.normal(size=(1000, 16))
    noise = rng.normal(size=features.shape)
    values = [frechet_distance(features, features + s * noise) for s in (0.0, 0.1, 0.3, 0.6, 1.0)]
    assert values[0] < 1e-3
    assert all(b > a for a, b in zip(values, values[1:], strict=False)), values


def test_fid_matches_closed_form_for_known_gaussians():
    # N(0, I) vs N(m, 4 I): FID -> |m|^2 + d (1 + 4 - 2 * 2) = |m|^2 + d for large samples.
    d = 4
    a = _gaussian(200_000, d, 3)
    b = 2.0 * _gaussian(200_000, d, 4) + 1.0
    assert frechet_distance(a, b) == pytest.approx(d * 1.0 + d, rel=0.02)


def test_fid_accepts_tensors_and_rejects_mismatched_dimensions():
    x = torch.randn(50, 3)
    assert frechet_distance(x, x) < 1e-6
    with pytest.raises(ValueError):
        frechet_distance(torch.randn(50, 3), torch.randn(50, 4))


def test_mmd_unbiased_is_zero_for_identical_constant_sets():
    x = np.ones((10, 5))
    assert mmd2_unbiased(x, x) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.statistical
def test_kid_is_unbiased_for_samples_of_the_same_gaussian():
    # Subset estimates are unbiased for MMD^2 = 0; their mean over 200 subsets must lie within
    # 4 standard errors of 0 (a biased V-statistic would sit at ~ +2 E k / m, far outside).
    a, b = _gaussian(2000, 8, 5), _gaussian(2000, 8, 6)
    result = kernel_inception_distance(a, b, 100, 200, torch.Generator().manual_seed(0))
    standard_error = result.std / np.sqrt(len(result.values))
    assert abs(result.mean) < 4 * standard_error, (result.mean, standard_error)


@pytest.mark.statistical
def test_kid_is_clearly_positive_for_different_gaussians():
    a, b = _gaussian(2000, 8, 7), _gaussian(2000, 8, 8, shift=0.5)
    result = kernel_inception_distance(a, b, 100, 50, torch.Generator().manual_seed(0))
    assert result.mean > 10 * result.std / np.sqrt(len(result.values))
    assert result.mean > 0.05
