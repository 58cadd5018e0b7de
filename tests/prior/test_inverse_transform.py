"""Inverse-transform sampling of piecewise-linear CDFs (maths 3.4 and 10 item 7)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

from tests.helpers import requires_native
from tkam.kan import native_calls
from tkam.prior import inverse_transform
from tkam.prior.inverse_transform import (
    guide_table,
    invert_batched,
    invert_components,
    invert_shared,
)

N = 20_000
KS_CRITICAL_005 = 1.36 / np.sqrt(N)  # alpha = 0.05, as in the reference suite


def test_uniform_masses_on_a_grid_give_uniform_samples() -> None:
    # Spec 10 item 7: uniform masses on a 5-point grid over [0, 1].
    knots = torch.linspace(0, 1, 5, dtype=torch.float64)
    cdf = torch.linspace(0, 1, 5, dtype=torch.float64)
    u = torch.rand(N, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    z = invert_batched(knots, cdf, u).numpy()
    assert z.shape == (N,)
    assert z.min() >= 0 and z.max() <= 1
    statistic = stats.kstest(z, "uniform").statistic
    assert statistic < KS_CRITICAL_005, f"KS D = {statistic:.4f}"


def test_gaussian_masses_on_a_grid_give_standard_normal_like_samples() -> None:
    # Spec 10 item 7: Gaussian masses on [-3, 3] with step 0.5.
    knots = torch.arange(-3.0, 3.0 + 1e-9, 0.5, dtype=torch.float64)
    phi = torch.as_tensor(stats.norm.cdf(knots.numpy()))
    cdf = (phi - phi[0]) / (phi[-1] - phi[0])
    u = torch.rand(N, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    z = invert_batched(knots, cdf, u).numpy()
    assert np.all(np.abs(z) <= 4)
    assert abs(z.mean()) < 0.5
    assert abs(z.std() - 1) < 0.5
    # Tighter: the piecewise-linear law has these moments up to discretisation and noise.
    assert abs(z.mean()) < 0.03 and abs(z.std() - 1) < 0.03
    # Samples follow the interpolated CDF itself ...
    piecewise = stats.kstest(z, lambda x: np.interp(x, knots.numpy(), cdf.numpy())).statistic
    assert piecewise < KS_CRITICAL_005
    # ... and the fitted normal within the interpolation error (h^2/8 max|phi'| ~ 0.008).
    fitted = stats.kstest(z, "norm", args=(z.mean(), z.std())).statistic
    assert fitted < KS_CRITICAL_005 + 0.008


def test_inverse_of_the_interpolated_cdf_is_exact() -> None:
    g = torch.Generator().manual_seed(2)
    knots = torch.sort(torch.randn(4, 10, generator=g, dtype=torch.float64), dim=-1).values
    mass = torch.rand(4, 9, generator=g, dtype=torch.float64)
    cdf = torch.cat([torch.zeros(4, 1, dtype=torch.float64), mass.cumsum(-1)], dim=-1)
    cdf = cdf / cdf[:, -1:]
    u = torch.rand(4, 1000, generator=g, dtype=torch.float64)
    z = invert_batched(knots, cdf, u)
    for c in range(4):
        back = np.interp(z[c].numpy(), knots[c].numpy(), cdf[c].numpy())
        np.testing.assert_allclose(back, u[c].numpy(), atol=1e-12)
    # The knots' own CDF values map back onto the knots; u = 0 maps to the first knot.
    torch.testing.assert_close(invert_batched(knots, cdf, cdf[:, :-1]), knots[:, :-1])
    zero = torch.zeros(4, 1, dtype=torch.float64)
    torch.testing.assert_close(invert_batched(knots, cdf, zero), knots[:, :1])


def test_zero_mass_intervals_are_never_sampled() -> None:
    knots = torch.tensor([0.0, 1.0, 2.0, 3.0, 4.0], dtype=torch.float64)
    cdf = torch.tensor([0.0, 0.5, 0.5, 0.5, 1.0], dtype=torch.float64)  # no mass on (1, 3)
    u = torch.rand(N, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    z = invert_batched(knots, cdf, u)
    assert not ((z > 1.0) & (z < 3.0)).any()
    assert ((z <= 1.0).double().mean() - 0.5).abs() < 0.02


def test_broadcast_knots_and_float32() -> None:
    # Knots shared by every leading index (a broadcast view), float32 CDFs and uniforms.
    knots = torch.linspace(-1, 1, 6)[None, None].expand(3, 2, 6)
    cdf = torch.linspace(0, 1, 6).repeat(3, 2, 1)
    u = torch.rand(3, 2, 500, generator=torch.Generator().manual_seed(4))
    z = invert_batched(knots, cdf, u)
    assert z.shape == (3, 2, 500) and z.dtype == torch.float32
    torch.testing.assert_close(z, 2 * u - 1, atol=1e-6, rtol=0)


def test_invert_components_matches_per_component_inversion() -> None:
    g = torch.Generator().manual_seed(5)
    C, n = 6, 15
    knots = torch.sort(torch.randn(C, n, generator=g, dtype=torch.float64) * 2, dim=-1).values
    mass = torch.rand(C, n - 1, generator=g, dtype=torch.float64)
    mass[2, 3:9] = 0.0  # flat stretches in one component
    cdf = torch.cat([torch.zeros(C, 1, dtype=torch.float64), mass.cumsum(-1)], dim=-1)
    cdf = cdf / cdf[:, -1:]
    component = torch.randint(0, C, (40, 7), generator=g)
    u = torch.rand(40, 7, generator=g, dtype=torch.float64)
    z = invert_components(knots, cdf, component, u)
    assert z.shape == (40, 7)
    expected = invert_batched(knots[component], cdf[component], u.unsqueeze(-1)).squeeze(-1)
    torch.testing.assert_close(z, expected, rtol=0, atol=1e-12)


def _shared_reference(knots: torch.Tensor, cdf: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """``invert_shared`` by the plain per-component search: ``(S, Q, P)``."""
    Q, P, _ = cdf.shape
    return invert_batched(knots.expand_as(cdf), cdf, u.expand(Q, P, -1)).permute(2, 0, 1)


def test_invert_shared_matches_per_component_inversion() -> None:
    g = torch.Generator().manual_seed(6)
    Q, P, n, S = 4, 3, 12, 500
    knots = torch.sort(torch.randn(P, n, generator=g, dtype=torch.float64), dim=-1).values
    mass = torch.rand(Q, P, n - 1, generator=g, dtype=torch.float64)
    mass[0, 1, :4] = 0.0  # zero mass at the start (like the uniform reference's outer nodes)
    mass[1, 2, 5:] = 0.0  # ... and at the end
    mass[2, 0, 3:7] = 0.0  # ... and in the middle
    cdf = torch.cat([torch.zeros(Q, P, 1, dtype=torch.float64), mass.cumsum(-1)], dim=-1)
    cdf = cdf / cdf[..., -1:]
    cdf[..., -1] = 1.0
    u = torch.rand(P, S, generator=g, dtype=torch.float64)
    u[:, :3] = 0.0  # ties, and u = 0 exactly
    u[:, 3:6] = cdf[0, :, 5:6]  # u equal to a knot's CDF value
    z = invert_shared(knots, cdf, u)
    assert z.shape == (S, Q, P)
    torch.testing.assert_close(z, _shared_reference(knots, cdf, u), rtol=0, atol=1e-12)


# ------------------------------------------------------------------------------------------------
# Properties


@st.composite
def cdf_tables(draw):
    n = draw(st.integers(2, 30))
    rows = draw(st.integers(1, 4))
    seed = draw(st.integers(0, 2**31 - 1))
    g = torch.Generator().manual_seed(seed)
    dtype = draw(st.sampled_from([torch.float32, torch.float64]))
    steps = torch.rand(rows, n - 1, generator=g, dtype=torch.float64)
    steps[steps < draw(st.floats(0, 0.5))] = 0.0  # some repeated knots
    knots = torch.cat([torch.zeros(rows, 1, dtype=torch.float64), steps.cumsum(-1)], dim=-1)
    knots = knots * draw(st.floats(0.01, 100)) + draw(st.floats(-50, 50))
    mass = torch.rand(rows, n - 1, generator=g, dtype=torch.float64)
    mass[mass < draw(st.floats(0, 0.7))] = 0.0  # flat CDF stretches
    mass[:, -1] += 1e-3  # some mass somewhere
    cdf = torch.cat([torch.zeros(rows, 1, dtype=torch.float64), mass.cumsum(-1)], dim=-1)
    cdf = cdf / cdf[:, -1:]
    cdf[:, -1] = 1.0
    return knots.to(dtype), cdf.to(dtype), g


@given(table=cdf_tables(), extremes=st.booleans())
def test_samples_stay_within_the_first_and_last_knot(table, extremes) -> None:
    knots, cdf, g = table
    rows = knots.shape[0]
    u = torch.rand(rows, 200, generator=g, dtype=torch.float64).to(knots.dtype)
    if extremes:
        largest_below_one = float(np.nextafter(np.array(1.0, dtype=u.numpy().dtype), 0))
        u[:, 0], u[:, 1] = 0.0, largest_below_one
    lo, hi = knots[:, :1], knots[:, -1:]  # exactly: no rounding excursions either
    z = invert_batched(knots, cdf, u)
    assert torch.isfinite(z).all()
    assert (z >= lo).all() and (z <= hi).all()
    # Monotone in u (the sampler is an inverse CDF).
    order = torch.argsort(u, dim=-1)
    assert (torch.gather(z, -1, order).diff(dim=-1) >= 0).all()
    # The shared-uniform inverter (the univariate prior's sampler) stays inside and agrees.
    shared_cdf = torch.stack([cdf, cdf.flip(0)])  # Q = 2 CDFs per row
    w = invert_shared(knots, shared_cdf, u)  # (200, 2, rows)
    assert torch.isfinite(w).all()
    assert (w >= lo.T).all() and (w <= hi.T).all()
    reference = _shared_reference(knots, shared_cdf, u)
    spread = (knots[:, -1] - knots[:, 0]).max().item()
    tol = 1e-4 if knots.dtype == torch.float32 else 1e-10
    torch.testing.assert_close(w, reference, rtol=0, atol=tol * (1 + spread))
    # The component-indexed inverter agrees on the same ranges.
    component = torch.randint(0, rows, (200,), generator=g)
    w = invert_components(knots, cdf, component, u[0])
    assert (w >= lo[component, 0]).all() and (w <= hi[component, 0]).all()


@pytest.mark.parametrize(
    ("dtype", "knots", "cdf", "inverter"),
    [
        (
            torch.float32,
            [-36.02873611450195, -36.02873611450195, 10.894769668579102],
            [0.0, 0.25845131278038025, 1.0],
            "batched",
        ),
        (
            torch.float32,
            [-36.02873611450195, -36.02873611450195, 10.894769668579102],
            [0.0, 0.25845131278038025, 1.0],
            "shared",
        ),
        (
            torch.float64,
            [-47.87471489293065, -35.7312261747, -11.116087256490779],
            [0.0, 0.37040864421593617, 1.0],
            "shared",
        ),
    ],
)
def test_samples_never_pass_the_last_knot_exactly(dtype, knots, cdf, inverter) -> None:
    # Regression: the lerp x_lo + (x_hi - x_lo) t used to round a few ulps past the last knot for
    # a uniform just below 1 (found by the property test above).
    knots = torch.tensor([knots], dtype=dtype)
    cdf = torch.tensor([cdf], dtype=dtype)
    u = torch.tensor(
        [[float(np.nextafter(np.array(1.0, dtype=cdf.numpy().dtype), 0))]], dtype=dtype
    )
    if inverter == "batched":
        z = invert_batched(knots, cdf, u)[0, 0]
    else:
        z = invert_shared(knots, cdf[None], u)[0, 0, 0]
    assert knots[0, 0] <= z <= knots[0, -1], f"{z.item()!r} beyond {knots[0, -1].item()!r}"


# ------------------------------------------------------------------------------------------------
# The fused CPU kernels (float32): bitwise the reference's samples, on every path.

requires_kernels = requires_native


def _random_table(seed: int, Q: int, P: int, n: int, flat: float = 0.3):
    g = torch.Generator().manual_seed(seed)
    knots = torch.sort(torch.randn(P, n, generator=g) * 2, dim=-1).values
    mass = torch.rand(Q, P, n - 1, generator=g)
    mass[mass < flat] = 0.0  # flat CDF stretches and zero-mass ends
    mass[..., -1] += 1e-3
    cdf = torch.cat([torch.zeros(Q, P, 1), mass.cumsum(-1)], dim=-1)
    cdf = cdf / cdf[..., -1:]
    cdf[..., -1] = 1.0
    return knots, cdf, g


@requires_kernels
@pytest.mark.parametrize("path", ["lanes", "sparse", "runs"])
@pytest.mark.parametrize("samples", [1, 7, 100, 1500])
def test_fused_shared_inversion_is_bitwise_the_reference(monkeypatch, path, samples) -> None:
    # Q = 37 is not a multiple of the 16 AVX-512 lanes; P = 5 rows, n = 50 knots.
    knots, cdf, g = _random_table(11, Q=37, P=5, n=50)
    u = torch.rand(5, samples, generator=g)
    u[:, :1] = 0.0  # u = 0 exactly
    u[:, -1:] = cdf[3, :, 20:21]  # u equal to a knot's CDF value
    if path != "lanes":
        monkeypatch.setattr(native_calls, "invert_shared_lanes", lambda *args: False)
        monkeypatch.setattr(inverse_transform, "RUNS_FROM", 0 if path == "runs" else 10**9)
    z, sums = invert_shared(knots, cdf, u, sums=True)
    reference = _shared_reference(knots, cdf, u)
    assert z.dtype == torch.float32 and z.shape == (samples, 37, 5)
    assert torch.equal(z, reference)
    torch.testing.assert_close(sums, reference.sum(-1), rtol=1e-6, atol=1e-5)
    only_sums = invert_shared(knots, cdf, u, values=False, sums=True)[1]
    torch.testing.assert_close(only_sums, sums, rtol=1e-6, atol=1e-5)


@requires_kernels
def test_fused_component_inversion_and_guide_tables_match_the_reference() -> None:
    knots, cdf, g = _random_table(12, Q=1, P=9, n=33)
    knots, cdf = knots, cdf[0]  # (C, n) component rows
    guide = guide_table(cdf)
    L = guide.shape[1]
    assert L == 64  # the power of two >= n
    thresholds = torch.arange(L, dtype=torch.float32) / L
    expected = torch.searchsorted(cdf, thresholds.expand(9, L).contiguous())
    assert torch.equal(guide.long(), expected)
    component = torch.randint(0, 9, (300, 4), generator=g)
    u = torch.rand(300, 4, generator=g)
    z = invert_components(knots, cdf, component, u, guide)
    reference = invert_batched(knots[component], cdf[component], u.unsqueeze(-1)).squeeze(-1)
    assert torch.equal(z, reference)


@pytest.mark.parametrize(
    "fused", [pytest.param(True, marks=requires_kernels), False], ids=["fused", "eager"]
)
def test_component_inversion_returns_the_slope_of_its_interval(fused) -> None:
    """``slope=True``: the same samples, and ``dx/du`` equal to the gradient that autograd takes
    through the reference's lerp (seed 12; a zero-mass interval has slope 0 and is never drawn)."""
    knots, cdf, g = _random_table(12, Q=1, P=9, n=33)
    cdf = cdf[0]
    component = torch.randint(0, 9, (300, 4), generator=g)
    u = torch.rand(300, 4, generator=g)
    kernel = "fused" if fused else "eager"
    z, slope = invert_components(knots, cdf, component, u, kernel=kernel, slope=True)
    assert torch.equal(z, invert_components(knots, cdf, component, u, kernel=kernel))
    leaf = u.unsqueeze(-1).clone().requires_grad_(True)
    reference = invert_batched(knots[component], cdf[component], leaf)
    (grad,) = torch.autograd.grad(reference.sum(), leaf)
    torch.testing.assert_close(slope, grad.squeeze(-1), rtol=1e-5, atol=1e-6)
    assert bool((slope > 0).all())
