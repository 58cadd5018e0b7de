"""FID-infinity / KID-infinity extrapolation in 1/n (maths 7)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tkam.metrics import (
    SPEC_SAMPLE_SIZES,
    default_sample_sizes,
    extrapolate_to_infinity,
    infinity_metrics,
)


def test_exact_data_a_plus_b_over_n_gives_the_intercept():
    sizes = list(SPEC_SAMPLE_SIZES)
    values = [3.25 + 1234.5 / n for n in sizes]
    intercept, slope = extrapolate_to_infinity(sizes, values)
    assert intercept == pytest.approx(3.25, abs=1e-9)
    assert slope == pytest.approx(1234.5, rel=1e-9)


def test_noisy_data_recovers_the_intercept_within_tolerance():
    # Noise sd 0.01 on 11 points: the intercept's sd is ~0.03 here; allow 0.1 (> 3 sd).
    rng = np.random.default_rng(0)
    sizes = np.array(SPEC_SAMPLE_SIZES)
    values = 1.5 + 800.0 / sizes + rng.normal(scale=0.01, size=sizes.shape)
    intercept, _ = extrapolate_to_infinity(sizes, values)
    assert intercept == pytest.approx(1.5, abs=0.1)


def test_extrapolation_needs_two_distinct_sizes():
    with pytest.raises(ValueError):
        extrapolate_to_infinity([100, 100], [1.0, 2.0])


def test_default_sample_sizes():
    assert default_sample_sizes(1000) == [200, 400, 600, 800, 1000]
    assert default_sample_sizes(5000) == list(range(1000, 3001, 200))
    assert max(default_sample_sizes(37)) == 37


def test_infinity_metrics_on_features():
    rng = np.random.default_rng(1)
    real = rng.normal(size=(400, 6))
    same = rng.normal(size=(400, 6))
    shifted = rng.normal(size=(400, 6)) + 1.0
    sizes = [100, 200, 300, 400]
    near = infinity_metrics(real, same, sizes, torch.Generator().manual_seed(0), 100, 10)
    far = infinity_metrics(real, shifted, sizes, torch.Generator().manual_seed(0), 100, 10)
    assert near.sample_sizes == sizes and len(near.fid_values) == len(near.kid_values) == 4
    assert near.fid_at_n == near.fid_values[-1]
    # FID's small-sample bias shrinks with n and the extrapolation removes most of it.
    assert near.fid_values[0] > near.fid_values[-1]
    assert abs(near.fid_infinity) < near.fid_values[-1]
    assert far.fid_infinity == pytest.approx(6.0, rel=0.2)  # |m|^2 = 6 for a unit shift
    assert far.kid_infinity > 10 * abs(near.kid_infinity)
