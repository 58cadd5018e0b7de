"""The random coefficient (:mod:`tkam.data.darcy.fields`): the cosine-series Gaussian random field,
the per-field noise streams and the threshold."""

from __future__ import annotations

import numpy as np

from tkam.data.darcy.fields import (
    COEFFICIENT_HIGH,
    COEFFICIENT_LOW,
    darcy_coefficients,
    field_attributes,
    field_noise,
    gaussian_random_field,
    sample_coefficients,
)

PI = np.pi


def test_random_field_is_the_cosine_series() -> None:
    n = 12
    noise = np.random.default_rng(2).standard_normal((n, n))
    field = gaussian_random_field(noise)
    centres = (np.arange(n) + 0.5) / n
    k = np.arange(n)
    basis = np.where(k > 0, np.sqrt(2.0), 1.0) * np.cos(PI * np.outer(centres, k))  # (n, K)
    weights = 1.0 / (PI**2 * (k[:, None] ** 2 + k[None, :] ** 2) + 9.0)
    weights[0, 0] = 0.0  # mean-zero field
    expected = basis @ (noise * weights) @ basis.T
    np.testing.assert_allclose(field, expected, rtol=1e-12, atol=1e-14)
    assert abs(field.mean()) < 1e-12  # no constant mode: the cell average vanishes


def test_noise_of_a_field_depends_only_on_the_seed_and_its_index() -> None:
    together = field_noise(3, 0, 4, 6)
    np.testing.assert_array_equal(field_noise(3, 2, 2, 6), together[2:])
    assert not np.array_equal(field_noise(4, 0, 1, 6)[0], together[0])
    assert together.shape == (4, 6, 6) and together.dtype == np.float64


def test_threshold_gives_the_two_coefficient_values() -> None:
    field = np.array([[-0.5, 0.0], [1e-9, -1e-9]])
    expected = [[COEFFICIENT_LOW, COEFFICIENT_HIGH], [COEFFICIENT_HIGH, COEFFICIENT_LOW]]
    np.testing.assert_array_equal(darcy_coefficients(field), expected)


def test_sample_coefficients_threshold_the_field_of_each_noise_stream() -> None:
    expected = darcy_coefficients(gaussian_random_field(field_noise(5, 1, 2, 9)))
    np.testing.assert_array_equal(sample_coefficients(5, 1, 2, 9), expected)
    attributes = field_attributes()
    assert list(attributes) == [
        "coefficient_high",
        "coefficient_low",
        "grf_tau",
        "grf_alpha",
        "grf",
    ]
    assert (attributes["coefficient_high"], attributes["coefficient_low"]) == (12.0, 3.0)
