"""Darcy flow, our own data set (maths 6, departures A14): the coefficient's Gaussian random field
(:mod:`~tkam.data.darcy.fields`), the finite-volume solver (:mod:`~tkam.data.darcy.solver`), the
generation behind ``tkam data darcy`` (:mod:`~tkam.data.darcy.generate`) and the HDF5 file with its
loader (:mod:`~tkam.data.darcy.files`).
"""

from __future__ import annotations

from tkam.data.darcy.fields import (
    COEFFICIENT_HIGH,
    COEFFICIENT_LOW,
    GRF_ALPHA,
    GRF_TAU,
    darcy_coefficients,
    field_noise,
    gaussian_random_field,
    sample_coefficients,
)
from tkam.data.darcy.files import (
    DARCY_FILE,
    DarcyFields,
    darcy_path,
    load_darcy,
    write_darcy,
)
from tkam.data.darcy.generate import DEFAULT_REFINEMENT, generate_darcy, generation_attributes
from tkam.data.darcy.solver import darcy_matrix, default_workers, solve_darcy

__all__ = [
    "COEFFICIENT_HIGH",
    "COEFFICIENT_LOW",
    "DARCY_FILE",
    "DEFAULT_REFINEMENT",
    "GRF_ALPHA",
    "GRF_TAU",
    "DarcyFields",
    "darcy_coefficients",
    "darcy_matrix",
    "darcy_path",
    "default_workers",
    "field_noise",
    "gaussian_random_field",
    "generate_darcy",
    "generation_attributes",
    "load_darcy",
    "sample_coefficients",
    "solve_darcy",
    "write_darcy",
]
