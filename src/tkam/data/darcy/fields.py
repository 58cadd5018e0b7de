"""The random coefficient of the Darcy flow data: a thresholded Gaussian random field (maths
6).

A Gaussian random field ``g`` on the unit square with covariance operator
``(-Laplacian + 9 I)^-2`` (``tau = 3``, ``alpha = 2``), thresholded: ``a = 12`` where ``g >= 0``,
else ``a = 3`` (the standard recipe of the Darcy benchmarks of the neural-operator literature).
We sample ``g`` by spectral synthesis in the eigenbasis of the Neumann Laplacian, the cosine
series

    g(x, y) = sum_{(k, l) != (0, 0)} xi_kl (pi^2 (k^2 + l^2) + 9)^-1 phi_k(x) phi_l(y),

``xi_kl ~ N(0, 1)``, ``phi_0 = 1``, ``phi_k = sqrt(2) cos(pi k x)`` (orthonormal on [0, 1]). The
constant mode is left out, as in the standard recipe: the field has mean zero over the square, so
that neither value dominates the typical field. The eigenvalues ``pi^2 |k|^2`` are
``4 pi^2 |nu|^2`` in the frequency ``nu = k / 2`` of each cosine, so the spectral density is
proportional to ``(4 pi^2 |nu|^2 + 9)^-2``. The series is truncated to the modes the solver grid
resolves (``k, l < n``) and evaluated at the cell centres in one inverse cosine transform
(DCT-III) per field. Neumann (not periodic) modes are chosen because the square is not periodic:
a periodic field would tie opposite edges.

Field ``i`` of seed ``s`` draws its coefficients ``xi`` from its own stream, so it depends only on
``(s, i)``: generating 10 fields gives the first 10 of 1,000.
"""

from __future__ import annotations

import numpy as np
import scipy.fft

__all__ = [
    "COEFFICIENT_HIGH",
    "COEFFICIENT_LOW",
    "GRF_ALPHA",
    "GRF_TAU",
    "darcy_coefficients",
    "field_attributes",
    "field_noise",
    "gaussian_random_field",
    "sample_coefficients",
]

COEFFICIENT_HIGH = 12.0
COEFFICIENT_LOW = 3.0
GRF_TAU = 3.0
GRF_ALPHA = 2.0


def gaussian_random_field(noise: np.ndarray) -> np.ndarray:
    """Values of the cosine-series Gaussian random field at the cell centres.

    Args:
        noise: ``(..., n, n)`` standard normal series coefficients ``xi_kl`` (``k`` along rows,
            i.e. ``y``; ``l`` along columns, ``x``).

    Returns:
        ``(..., n, n)`` float64 values ``g(x_j, y_i)`` at ``x_j = (j + 1/2) / n``,
        ``y_i = (i + 1/2) / n``; covariance operator ``(-Laplacian + tau^2)^-alpha`` with Neumann
        boundary conditions, restricted to mean-zero fields (``xi_00`` is ignored) and truncated
        to ``k, l < n``.
    """
    noise = np.asarray(noise, dtype=np.float64)
    n = noise.shape[-1]
    if noise.ndim < 2 or noise.shape[-2] != n:
        raise ValueError(f"noise must be (..., n, n), got shape {noise.shape}")
    k = np.arange(n)
    eigenvalues = np.pi**2 * (k[:, None] ** 2 + k[None, :] ** 2) + GRF_TAU**2  # (n, n)
    # Orthonormal cosines carry sqrt(2) for k > 0; DCT-III adds x_0 + 2 sum_k x_k cos(...), so
    # the k > 0 terms are halved: sqrt(2) / 2 per axis.
    axis_factor = np.where(k > 0, np.sqrt(2.0) / 2.0, 1.0)
    weights = eigenvalues ** (-GRF_ALPHA / 2.0) * axis_factor[:, None] * axis_factor[None, :]
    weights[0, 0] = 0.0  # no constant mode: a mean-zero field
    return scipy.fft.dctn(noise * weights, type=3, axes=(-2, -1))


def field_noise(seed: int, start: int, count: int, size: int) -> np.ndarray:
    """Series coefficients of fields ``start .. start + count - 1``.

    Field ``i`` uses its own stream ``SeedSequence(seed, spawn_key=(i,))``, so it does not
    depend on how the fields are chunked.

    Returns:
        ``(count, size, size)`` float64 standard normal values.
    """
    out = np.empty((count, size, size))
    for offset in range(count):
        stream = np.random.SeedSequence(seed, spawn_key=(start + offset,))
        rng = np.random.default_rng(stream)
        out[offset] = rng.standard_normal((size, size))
    return out


def darcy_coefficients(field: np.ndarray) -> np.ndarray:
    """Threshold a Gaussian random field: 12 where ``field >= 0``, else 3 (float64, same shape)."""
    return np.where(field >= 0.0, COEFFICIENT_HIGH, COEFFICIENT_LOW)


def sample_coefficients(seed: int, start: int, count: int, size: int) -> np.ndarray:
    """The coefficients of fields ``start .. start + count - 1`` of a seed on a ``size`` grid.

    Returns:
        ``(count, size, size)`` float64, values 3 and 12 at the cell centres.
    """
    return darcy_coefficients(gaussian_random_field(field_noise(seed, start, count, size)))


def field_attributes() -> dict[str, object]:
    """The coefficient recipe as a generated file records it (HDF5 attributes, in file order)."""
    return {
        "coefficient_high": COEFFICIENT_HIGH,
        "coefficient_low": COEFFICIENT_LOW,
        "grf_tau": GRF_TAU,
        "grf_alpha": GRF_ALPHA,
        "grf": "cosine series (Neumann Laplacian eigenfunctions), covariance "
        "(-Laplacian + tau^2)^-alpha, mean zero (no constant mode), modes k, l < "
        "solver_resolution; a = high where the field >= 0, else low",
    }
