"""Basis functions of KAN layers (maths 2.2 and 10 item 1)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from scipy.interpolate import BSpline

from tkam.config import KANConfig
from tkam.kan import bases
from tkam.kan.layer import UnivariateLayer, least_squares

ALL_BASES = ("bspline", "rbf", "rswaf", "fourier", "chebyshev")
GRID_BASES = ("bspline", "rbf", "rswaf")


def make_layer(
    basis: str, in_dim: int = 4, out_dim: int = 3, seed: int = 0, **kw
) -> UnivariateLayer:
    options = {"grid_size": 6, "grid_range": (-1.0, 1.0), "eps_scale": 1.0}
    if basis == "chebyshev":
        options["init_tau"] = 1.1
    options.update(kw)
    config = KANConfig(basis=basis, **options)
    layer = UnivariateLayer(in_dim, out_dim, config, rng=torch.Generator().manual_seed(seed))
    return layer.double()


# ------------------------------------------------------------------------------------------------
# Grid extension


@pytest.mark.parametrize("degree", [0, 1, 2, 3, 5])
@pytest.mark.parametrize("grid_size", [1, 4, 9])
def test_extend_grid_adds_2k_columns_with_the_same_spacing(degree: int, grid_size: int) -> None:
    lo = torch.tensor([[-1.0], [0.0], [2.0]], dtype=torch.float64)
    hi = torch.tensor([[1.0], [4.0], [2.5]], dtype=torch.float64)
    grid = lo + (hi - lo) * torch.linspace(0, 1, grid_size + 1, dtype=torch.float64)  # (3, G+1)
    extended = bases.extend_grid(grid, degree)
    assert extended.shape == (3, grid_size + 1 + 2 * degree)
    # The original points sit in the middle, untouched.
    torch.testing.assert_close(extended[:, degree : degree + grid_size + 1], grid)
    # Uniform spacing continues outwards on both sides.
    spacing = (hi - lo) / grid_size
    torch.testing.assert_close(
        extended.diff(dim=1), spacing.expand(3, grid_size + 2 * degree), rtol=0, atol=1e-12
    )


# ------------------------------------------------------------------------------------------------
# Shapes and finiteness of every basis


@pytest.mark.parametrize(
    ("basis", "expected"),
    [("bspline", 6 + 3), ("rbf", 6 + 1), ("rswaf", 6 + 1), ("fourier", 2 * 7), ("chebyshev", 4)],
)
def test_num_bases_table(basis: str, expected: int) -> None:
    assert bases.num_bases(basis, 6, 3) == expected
    assert make_layer(basis, grid_size=6, spline_degree=3).num_bases == expected


def test_num_bases_rejects_unknown_basis() -> None:
    with pytest.raises(ValueError, match="unknown basis"):
        bases.num_bases("wavelet", 5, 3)


@pytest.mark.parametrize("basis", ALL_BASES)
def test_every_basis_gives_the_right_shape_and_finite_values(basis: str) -> None:
    layer = make_layer(basis, in_dim=4, out_dim=3)
    g = torch.Generator().manual_seed(1)
    # Inputs inside and well outside the grid range.
    x = (torch.rand(50, 4, generator=g, dtype=torch.float64) * 6 - 3).requires_grad_()
    values = layer.basis(x)
    assert values.shape == (50, 4, layer.num_bases)
    assert torch.isfinite(values).all()
    out = layer(x)
    assert out.shape == (50, 4, 3)
    assert torch.isfinite(out).all()
    (grad,) = torch.autograd.grad(out.sum(), x)
    assert torch.isfinite(grad).all()
    # Leading batch dimensions are carried through.
    assert layer.basis(x.detach().reshape(5, 10, 4)).shape == (5, 10, 4, layer.num_bases)


def test_bspline_basis_matches_scipy() -> None:
    g = torch.Generator().manual_seed(2)
    for degree in range(0, 5):
        grid = torch.linspace(-2.0, 3.0, 8, dtype=torch.float64)[None]
        knots = bases.extend_grid(grid, degree)
        x = torch.rand(200, 1, generator=g, dtype=torch.float64) * 5 - 2  # inside [-2, 3)
        ours = bases.bspline_basis(x, knots, degree)[:, 0]  # (200, M)
        t = knots[0].numpy()
        num = len(t) - degree - 1
        theirs = np.stack(
            [
                BSpline(t, np.eye(num)[m], degree, extrapolate=False)(x[:, 0].numpy())
                for m in range(num)
            ],
            axis=1,
        )
        np.testing.assert_allclose(ours.numpy(), np.nan_to_num(theirs), atol=1e-12)


def test_radial_fourier_and_chebyshev_bases_match_their_formulas() -> None:
    g = torch.Generator().manual_seed(3)
    x = torch.rand(30, 2, generator=g, dtype=torch.float64) * 4 - 2
    grid = torch.tensor([[-1.0, 0.0, 1.0], [0.0, 0.5, 2.0]], dtype=torch.float64)
    h, tau = torch.tensor(0.7, dtype=torch.float64), torch.tensor(1.3, dtype=torch.float64)
    xn, gn = x.numpy()[..., None], grid.numpy()
    np.testing.assert_allclose(
        bases.rbf_basis(x, grid, h, tau).numpy(), np.exp(-0.5 * ((xn - gn) / (0.7 * 1.3)) ** 2)
    )
    np.testing.assert_allclose(
        bases.rswaf_basis(x, grid, tau).numpy(), 1 - np.tanh((xn - gn) / 1.3) ** 2
    )
    k = torch.arange(4, dtype=torch.float64)
    angle = 2 * math.pi * 1.3 * xn * k.numpy()
    np.testing.assert_allclose(
        bases.fourier_basis(x, k, tau).numpy(),
        np.concatenate([np.cos(angle), np.sin(angle)], axis=-1),
        atol=1e-12,
    )
    y = np.tanh(xn) / 1.3
    expected = np.cos(np.arange(6) * np.arccos(y))
    np.testing.assert_allclose(bases.chebyshev_basis(x, 5, tau).numpy(), expected, atol=1e-12)


def test_activation_names() -> None:
    x = torch.linspace(-2, 2, 9)
    assert torch.equal(bases.activation("none")(x), torch.zeros(9))
    torch.testing.assert_close(bases.activation("silu")(x), x * torch.sigmoid(x))
    torch.testing.assert_close(bases.activation("leakyrelu")(x), torch.where(x > 0, x, 0.01 * x))
    with pytest.raises(ValueError, match="unknown base activation"):
        bases.activation("softsign")


# ------------------------------------------------------------------------------------------------
# Least-squares fits reproduce curves (maths 10 item 1)


def _fit(layer: UnivariateLayer, x: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Coefficients ``(I, O, M)`` fitting ``targets (S, I, O)`` at ``x (S, I)``."""
    design = layer.basis(x).permute(1, 0, 2)  # (I, S, M)
    return least_squares(design, targets.permute(1, 0, 2)).permute(0, 2, 1)


@pytest.mark.parametrize("basis", ALL_BASES)
def test_refitting_a_layer_reproduces_its_own_curves(basis: str) -> None:
    layer = make_layer(basis, in_dim=3, out_dim=2, seed=4)
    g = torch.Generator().manual_seed(5)
    x = torch.rand(300, 3, generator=g, dtype=torch.float64) * 2 - 1
    with torch.no_grad():
        curves = layer.spline(x)
        coef = _fit(layer, x, curves)
        layer.coef.copy_(coef)
        refit = layer.spline(x)
    l2 = (refit - curves).square().mean().sqrt().item()
    assert l2 < 0.1
    # The system is consistent, so the least-squares fit is exact up to rounding.
    assert l2 < 1e-8 * (1 + curves.abs().max().item())


@pytest.mark.parametrize("basis", ALL_BASES)
def test_bases_fit_a_smooth_curve(basis: str) -> None:
    # The Fourier basis has period 1/tau; tau = 0.25 makes [-1, 1] half a period, so a
    # non-periodic curve there is representable.
    extra = {"init_tau": 0.25} if basis == "fourier" else {}
    layer = make_layer(basis, in_dim=2, out_dim=2, seed=6, grid_size=8, spline_degree=4, **extra)
    x = torch.linspace(-1, 1, 201, dtype=torch.float64)[:, None].repeat(1, 2)
    freq = torch.tensor([[1.0, 1.5], [2.0, 0.5]], dtype=torch.float64)
    target = torch.sin(freq * x[..., None]) + 0.3 * x[..., None] ** 2  # (S, I, O)
    with torch.no_grad():
        layer.coef.copy_(_fit(layer, x, target))
        l2 = (layer.spline(x) - target).square().mean().sqrt().item()
    assert l2 < 0.1, f"{basis}: L2 error {l2:.3g}"


def test_least_squares_is_minimum_norm_on_rank_deficient_systems() -> None:
    g = torch.Generator().manual_seed(7)
    design = torch.randn(2, 10, 4, generator=g, dtype=torch.float64)
    design[..., 3] = design[..., 2]  # two identical columns: rank 3
    targets = torch.randn(2, 10, 5, generator=g, dtype=torch.float64)
    solution = least_squares(design, targets)
    assert solution.shape == (2, 4, 5)
    expected = np.linalg.pinv(design.numpy()) @ targets.numpy()
    np.testing.assert_allclose(solution.numpy(), expected, atol=1e-10)
    assert least_squares(design.float(), targets.float()).dtype == torch.float32


# ------------------------------------------------------------------------------------------------
# Property tests


@given(
    degree=st.integers(0, 5),
    grid_size=st.integers(1, 12),
    lo=st.floats(-5.0, 5.0),
    width=st.floats(0.1, 10.0),
    fractions=st.lists(st.floats(0.0, 1.0, exclude_max=True), min_size=1, max_size=20),
)
def test_bspline_partition_of_unity_and_non_negativity(
    degree: int, grid_size: int, lo: float, width: float, fractions: list[float]
) -> None:
    hi = lo + width
    grid = torch.linspace(lo, hi, grid_size + 1, dtype=torch.float64)[None]
    knots = bases.extend_grid(grid, degree)
    x = lo + width * torch.tensor(fractions, dtype=torch.float64)[:, None]
    x = x.clamp(max=float(np.nextafter(hi, -np.inf)))  # stay inside [a, b)
    values = bases.bspline_basis(x, knots, degree)
    assert values.shape == (len(fractions), 1, grid_size + degree)
    assert (values >= 0).all()
    torch.testing.assert_close(
        values.sum(-1), torch.ones(len(fractions), 1, dtype=torch.float64), rtol=0, atol=1e-5
    )
