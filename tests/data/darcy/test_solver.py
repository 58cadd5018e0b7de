"""The finite-volume solver (:mod:`tkam.data.darcy.solver`): second-order convergence against a
manufactured solution, batches and threads, the matrix, and bad coefficients."""

from __future__ import annotations

import numpy as np
import pytest

from tkam.data.darcy.solver import darcy_matrix, solve_darcy

PI = np.pi


def manufactured(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Coefficient, right-hand side and exact solution at the n x n cell centres.

    u* = sin(pi x) sin(pi y) (zero on the boundary) and a smooth, positive, non-symmetric
    a = 1 + sin(2 pi x) cos(3 pi y) / 2 + x y / 4; f = -div(a grad u*) = -(a_x u_x + a_y u_y
    + a (u_xx + u_yy)), computed by hand.
    """
    centres = (np.arange(n) + 0.5) / n
    x, y = np.meshgrid(centres, centres, indexing="xy")  # rows are y, columns x
    a = 1.0 + 0.5 * np.sin(2 * PI * x) * np.cos(3 * PI * y) + 0.25 * x * y
    a_x = PI * np.cos(2 * PI * x) * np.cos(3 * PI * y) + 0.25 * y
    a_y = -1.5 * PI * np.sin(2 * PI * x) * np.sin(3 * PI * y) + 0.25 * x
    u = np.sin(PI * x) * np.sin(PI * y)
    u_x = PI * np.cos(PI * x) * np.sin(PI * y)
    u_y = PI * np.sin(PI * x) * np.cos(PI * y)
    laplacian = -2 * PI**2 * u
    f = -(a_x * u_x + a_y * u_y + a * laplacian)
    return a, f, u


def test_solver_converges_at_second_order() -> None:
    sizes = [16, 32, 64, 128]
    max_errors, l2_errors = [], []
    for n in sizes:
        a, f, exact = manufactured(n)
        error = solve_darcy(a, f) - exact
        max_errors.append(np.abs(error).max())
        l2_errors.append(np.sqrt(np.mean(error**2)))
    max_orders = np.log2(np.array(max_errors[:-1]) / np.array(max_errors[1:]))
    l2_orders = np.log2(np.array(l2_errors[:-1]) / np.array(l2_errors[1:]))
    assert np.all((max_orders > 1.8) & (max_orders < 2.2)), max_orders
    assert np.all((l2_orders > 1.8) & (l2_orders < 2.2)), l2_orders
    assert max_errors[-1] < 2e-4


def test_solver_batches_and_threads_agree_with_one_field_at_a_time() -> None:
    rng = np.random.default_rng(0)
    a = np.exp(rng.standard_normal((3, 12, 12)))
    f = rng.standard_normal((3, 12, 12))
    together = solve_darcy(a, f, workers=2)
    alone = np.stack([solve_darcy(a[i], f[i], workers=1) for i in range(3)])
    np.testing.assert_allclose(together, alone, rtol=1e-12, atol=1e-14)


def test_matrix_is_symmetric_positive_definite_and_matches_the_scheme() -> None:
    rng = np.random.default_rng(1)
    a = np.exp(rng.standard_normal((5, 5)))
    matrix = darcy_matrix(a).toarray()
    np.testing.assert_allclose(matrix, matrix.T, rtol=0, atol=0)
    assert np.linalg.eigvalsh(matrix).min() > 0
    # Interior face between cells (2, 2) and (2, 3): minus the harmonic mean of the two cells.
    harmonic = 2 * a[2, 2] * a[2, 3] / (a[2, 2] + a[2, 3])
    assert matrix[2 * 5 + 2, 2 * 5 + 3] == pytest.approx(-harmonic)
    # Corner cell (0, 0): two interior faces and two boundary faces at half-cell distance.
    east = 2 * a[0, 0] * a[0, 1] / (a[0, 0] + a[0, 1])
    north = 2 * a[0, 0] * a[1, 0] / (a[0, 0] + a[1, 0])
    assert matrix[0, 0] == pytest.approx(east + north + 4 * a[0, 0])
    # A constant coefficient scales the solution by its inverse.
    np.testing.assert_allclose(
        solve_darcy(np.full((6, 6), 4.0)), solve_darcy(np.ones((6, 6))) / 4.0, rtol=1e-12
    )


def test_solver_rejects_bad_coefficients() -> None:
    with pytest.raises(ValueError, match="positive"):
        solve_darcy(np.zeros((4, 4)))
    with pytest.raises(ValueError, match="square"):
        solve_darcy(np.ones((4, 5)))
