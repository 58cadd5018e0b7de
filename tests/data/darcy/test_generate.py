"""The generator (:mod:`tkam.data.darcy.generate`): reproducible fields independent of chunking,
balanced coefficients, plausible solutions, refinement sampling, and the stored settings."""

from __future__ import annotations

import numpy as np
import pytest

from tkam.data.darcy.fields import (
    COEFFICIENT_HIGH,
    COEFFICIENT_LOW,
    darcy_coefficients,
    field_noise,
    gaussian_random_field,
)
from tkam.data.darcy.generate import generate_darcy, generation_attributes
from tkam.data.darcy.solver import solve_darcy


def test_generated_fields_are_reproducible_and_independent_of_chunking() -> None:
    first = generate_darcy(5, resolution=8, seed=3, chunk_size=2)
    again = generate_darcy(3, resolution=8, seed=3, chunk_size=5)
    np.testing.assert_array_equal(first.solution[:3], again.solution)
    np.testing.assert_array_equal(first.coefficient[:3], again.coefficient)
    other = generate_darcy(3, resolution=8, seed=4)
    assert not np.array_equal(first.coefficient[:3], other.coefficient)
    assert first.coefficient.shape == first.solution.shape == (5, 1, 8, 8)
    assert first.coefficient.dtype == first.solution.dtype == np.float32
    assert set(np.unique(first.coefficient)) <= {COEFFICIENT_LOW, COEFFICIENT_HIGH}
    assert first.solution.min() > 0  # f = 1 > 0 with u = 0 on the boundary: u > 0 inside


def test_generated_coefficient_values_are_balanced_and_solutions_plausible() -> None:
    fields = generate_darcy(40, resolution=16, seed=0, refinement=1)
    high = (fields.coefficient == COEFFICIENT_HIGH).mean()
    assert 0.4 < high < 0.6  # mean-zero field thresholded at 0
    # The compliance sum(u) = f^T A(a)^-1 f decreases as a grows (the matrix is monotone in a in
    # the Loewner order), so it lies between those of a = 12 and a = 3 everywhere.
    stiff = solve_darcy(np.full((16, 16), COEFFICIENT_HIGH)).sum()
    soft = solve_darcy(np.full((16, 16), COEFFICIENT_LOW)).sum()
    compliance = fields.solution.astype(np.float64).sum(axis=(1, 2, 3))
    assert np.all((compliance > stiff) & (compliance < soft))
    assert compliance.std() > 0.05 * compliance.mean()  # the fields differ


def test_refinement_samples_the_fine_solution_at_the_output_centres() -> None:
    coarse = generate_darcy(2, resolution=8, seed=5, refinement=3)
    noise_grid = 24
    fine_a = darcy_coefficients(gaussian_random_field(field_noise(5, 0, 2, noise_grid)))
    fine_u = solve_darcy(fine_a)
    np.testing.assert_allclose(coarse.solution[:, 0], fine_u[:, 1::3, 1::3], rtol=1e-6)
    np.testing.assert_array_equal(coarse.coefficient[:, 0], fine_a[:, 1::3, 1::3])
    with pytest.raises(ValueError, match="odd"):
        generate_darcy(1, resolution=8, refinement=2)


def test_generation_attributes_record_the_settings_in_a_fixed_order() -> None:
    attributes = generation_attributes(30, 16, 7, 3)
    assert list(attributes)[:5] == [
        "num_fields",
        "resolution",
        "seed",
        "refinement",
        "solver_resolution",
    ]
    assert attributes["solver_resolution"] == 48 and attributes["generator"].startswith("tkam ")
