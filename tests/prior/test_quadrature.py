"""Gauss-Legendre and trapezium quadrature, normalising constants and CDF tables (maths 3.3)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import stats
from scipy.integrate import cumulative_trapezoid

from tests.helpers import requires_native
from tkam.prior import gauss_legendre
from tkam.prior.quadrature import (
    fused_gauss_legendre_table,
    gauss_legendre_table,
    log_plus,
    trapezium_table,
)

ALL_BASES = ("bspline", "rbf", "rswaf", "fourier", "chebyshev")
REFERENCES = ("uniform", "gaussian", "lognormal", "learnable_gaussian", "ebm")
SMOOTH_REFERENCES = ("gaussian", "lognormal", "learnable_gaussian", "ebm")


def normal_pdf(x: torch.Tensor) -> torch.Tensor:
    return torch.exp(-0.5 * x.square()) / math.sqrt(2 * math.pi)


# ------------------------------------------------------------------------------------------------
# Gauss-Legendre nodes (departures A1: affine map onto [a, b])


def test_gauss_legendre_integrates_the_normal_density_to_one() -> None:
    domain = torch.tensor([[-6.0, 6.0]], dtype=torch.float64)
    nodes, weights = gauss_legendre(domain, 100)
    total = (weights * normal_pdf(nodes)).sum().item()
    assert abs(total - 1.0) < 1e-6
    # And to the exact mass 1 - 2 Phi(-6) much more tightly.
    assert abs(total - (1 - 2 * stats.norm.cdf(-6.0))) < 1e-12


@pytest.mark.parametrize(("a", "b"), [(-2.0, 5.0), (0.0, 4.0), (-0.1, 1.1), (1.0, 3.0)])
def test_gauss_legendre_on_asymmetric_domains(a: float, b: float) -> None:
    domain = torch.tensor([[a, b]], dtype=torch.float64)
    nodes, weights = gauss_legendre(domain, 100)
    total = (weights * normal_pdf(nodes)).sum().item()
    expected = stats.norm.cdf(b) - stats.norm.cdf(a)
    assert abs(total - expected) < 1e-10, "nodes must be mapped affinely onto [a, b] (A1)"


def test_gauss_legendre_rows_nodes_and_weights() -> None:
    domain = torch.tensor([[-2.0, 5.0], [0.0, 4.0], [-1.2, 1.2]], dtype=torch.float64)
    n = 17
    nodes, weights = gauss_legendre(domain, n)
    assert nodes.shape == weights.shape == (3, n)
    assert (nodes.diff(dim=1) > 0).all()  # ascending
    assert (nodes > domain[:, :1]).all() and (nodes < domain[:, 1:]).all()
    torch.testing.assert_close(weights.sum(dim=1), domain[:, 1] - domain[:, 0])
    # Symmetric about the midpoint of each row.
    torch.testing.assert_close(nodes + nodes.flip(1), (domain.sum(1, keepdim=True)).expand(3, n))
    # Exact for polynomials of degree 2n - 1 on every row.
    a, b = domain[:, 0], domain[:, 1]
    degree = 2 * n - 1
    exact = (b ** (degree + 1) - a ** (degree + 1)) / (degree + 1)
    torch.testing.assert_close((weights * nodes**degree).sum(1), exact, rtol=1e-10, atol=0)


def test_gauss_legendre_keeps_the_domain_dtype() -> None:
    nodes, weights = gauss_legendre(torch.tensor([[0.0, 1.0]]), 8)
    assert nodes.dtype == weights.dtype == torch.float32


# ------------------------------------------------------------------------------------------------
# The CDF tables


def _random_table_inputs(seed: int, n: int = 12):
    g = torch.Generator().manual_seed(seed)
    nodes, weights = gauss_legendre(torch.tensor([[-1.0, 2.0], [0.0, 1.0]], dtype=torch.float64), n)
    log_h = torch.randn(3, 2, n, generator=g, dtype=torch.float64)  # (Q, P, n)
    return nodes.unsqueeze(0), torch.log(weights).unsqueeze(0), log_h


def test_left_and_midpoint_cdf_rules_match_their_definitions() -> None:
    nodes, log_w, log_h = _random_table_inputs(0)
    mass = torch.exp(log_w + log_h)  # (Q, P, n)
    z = mass.sum(-1)
    m = mass / z[..., None]
    before = torch.cumsum(m, -1) - m
    # "left" (departures A18): mass strictly before each node; the last node's atom is dropped.
    left = gauss_legendre_table(nodes, log_w, log_h, rule="left")
    torch.testing.assert_close(left.cdf, before / before[..., -1:])
    # "midpoint": half of each node's own mass, shifted so the first knot is 0.
    mid = gauss_legendre_table(nodes, log_w, log_h, rule="midpoint")
    shifted = before + 0.5 * m - 0.5 * m[..., :1]
    torch.testing.assert_close(mid.cdf, shifted / shifted[..., -1:])
    for table in (left, mid):
        torch.testing.assert_close(table.log_normaliser, torch.log(z))
        torch.testing.assert_close(table.log_density, log_h - torch.log(z)[..., None])
        assert table.cdf[..., 0].eq(0).all() and table.cdf[..., -1].eq(1).all()


def test_trapezium_table_matches_numpy() -> None:
    g = torch.Generator().manual_seed(1)
    knots = torch.sort(torch.rand(2, 9, generator=g, dtype=torch.float64) * 3, dim=1).values
    log_h = torch.randn(3, 2, 9, generator=g, dtype=torch.float64)
    table = trapezium_table(knots.unsqueeze(0), log_h)
    h = log_h.exp().numpy()
    for q in range(3):
        for p in range(2):
            x = knots[p].numpy()
            z = np.trapezoid(h[q, p], x)
            assert table.log_normaliser[q, p].item() == pytest.approx(np.log(z), rel=1e-12)
            cdf = cumulative_trapezoid(h[q, p], x, initial=0) / z
            np.testing.assert_allclose(table.cdf[q, p].numpy(), cdf, atol=1e-12)


# ------------------------------------------------------------------------------------------------
# The priors' normalising constants and CDFs against dense integrals


def dense_integrand(prior, num_points: int = 20_001):
    """``(points (R, N), h (N, Q, P))``: ``exp(f_qp) pi_0`` on a dense uniform grid of each row's
    quadrature domain, evaluated independently of the prior's own quadrature code."""
    with torch.no_grad():
        domain = prior.layer.quadrature_domain()
        t = torch.linspace(0, 1, num_points, dtype=torch.float64)
        points = domain[:, :1] + (domain[:, 1:] - domain[:, :1]) * t  # (R, N)
        f = prior.layer.at_nodes(points)  # (N, R, O): phi_{r->o}(points[r])
        log_pi0 = prior.reference.log_pdf(points.T)  # (N, R)
        h = torch.exp(f + log_pi0.unsqueeze(-1))  # (N, R, O)
    # Univariate: f_qp = phi_{p->q} on row p -> (N, Q=O, P=R); mixture: f_qp = phi_{q->p}.
    h = h.permute(0, 2, 1) if prior.rows_are_inputs else h
    return points, h


def component_row(prior, q: int, p: int) -> int:
    return p if prior.rows_are_inputs else q


@pytest.mark.parametrize("mixture", [False, True], ids=["univariate", "mixture"])
@pytest.mark.parametrize("reference", SMOOTH_REFERENCES)
@pytest.mark.parametrize("basis", ALL_BASES)
def test_normalising_constant_matches_a_dense_trapezium(make_prior, basis, reference, mixture):
    # B-spline grids extend lognormal's [0, 4] to below 0, where pi_0 is smooth but not analytic;
    # Gauss-Legendre converges more slowly there, so that case gets more nodes.
    num_nodes = 200 if (basis, reference) == ("bspline", "lognormal") else 100
    prior = make_prior(basis, reference, mixture=mixture, seed=3, num_nodes=num_nodes)
    points, h = dense_integrand(prior)
    log_z = prior.log_normaliser().detach()
    assert log_z.shape == (3, 2)
    for q in range(3):
        for p in range(2):
            row = points[component_row(prior, q, p)]
            dense = torch.trapezoid(h[:, q, p], row).item()
            relative = abs(log_z[q, p].exp().item() - dense) / dense
            assert relative < 1e-3, f"component ({q}, {p}): relative error {relative:.2e}"


def test_uniform_reference_normalising_constant_converges_at_first_order(make_prior):
    # pi_0 jumps at 0 and 1 inside the domain, so Gauss-Legendre is only O(1/N_g) accurate.
    errors = []
    for num_nodes in (100, 800):
        prior = make_prior("rbf", "uniform", seed=3, num_nodes=num_nodes)
        points, h = dense_integrand(prior, num_points=200_001)
        z = prior.log_normaliser().detach().exp()
        dense = torch.trapezoid(h, points.T.unsqueeze(1), dim=0)  # (Q, P), row p on axis P
        errors.append(((z - dense) / dense).abs().max().item())
    assert errors[0] < 3e-2
    assert errors[1] < errors[0] / 8


@pytest.mark.parametrize("reference", REFERENCES)
@pytest.mark.parametrize("basis", ALL_BASES)
def test_quadrature_cdf_converges_to_the_true_cdf(make_prior, basis, reference):
    """The law the sampler draws from (linear between nodes) is close in Kolmogorov distance to
    ``exp(f) pi_0 / Z`` and gets closer with more nodes. The uniform reference jumps inside the
    domain, which costs O(1/N_g) (departures A18's discussion), hence its looser bounds."""
    tolerances = (
        ((100, 0.04), (800, 0.005)) if reference == "uniform" else ((100, 0.015), (800, 0.0025))
    )
    for num_nodes, tolerance in tolerances:
        prior = make_prior(basis, reference, seed=4, num_nodes=num_nodes)
        points, h = dense_integrand(prior)
        exported = prior.export()
        worst = 0.0
        for q in range(3):
            for p in range(2):
                row = points[p].numpy()
                true_cdf = cumulative_trapezoid(h[:, q, p].numpy(), row, initial=0)
                true_cdf /= true_cdf[-1]
                ours = np.interp(row, exported["nodes"][p], exported["cdf"][q, p])
                worst = max(worst, float(np.abs(ours - true_cdf).max()))
        print(f"cdf error {basis}-{reference} N_g={num_nodes}: {worst:.2e}")
        assert worst < tolerance, f"N_g={num_nodes}: sup |F_quad - F| = {worst:.2e}"


# ------------------------------------------------------------------------------------------------
# Property: every prior's CDF table is a valid CDF


@settings(max_examples=30, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    basis=st.sampled_from(ALL_BASES),
    reference=st.sampled_from(REFERENCES),
    mixture=st.booleans(),
    rule=st.sampled_from(["midpoint", "left"]),
    trapezium=st.booleans(),
    # At least 16 nodes and G >= 2: with fewer, every node of a B-spline's wide extended domain can
    # miss the uniform reference's support [0, 1], so Z = 0 (a degenerate case, reported apart).
    num_nodes=st.integers(16, 60),
    grid_size=st.integers(2, 10),
    seed=st.integers(0, 2**31 - 1),
)
def test_cdf_tables_are_monotone_and_span_zero_to_one(
    make_prior, basis, reference, mixture, rule, trapezium, num_nodes, grid_size, seed
):
    trapezium = trapezium and basis in ("bspline", "rbf", "rswaf")
    prior = make_prior(
        basis,
        reference,
        mixture=mixture,
        seed=seed,
        grid_size=grid_size,
        num_nodes=num_nodes,
        cdf=rule,
        quadrature="trapezium" if trapezium else "gausslegendre",
    )
    table = prior.quadrature()
    n = table.cdf.shape[-1]
    assert table.cdf.shape == table.log_density.shape == (3, 2, n)
    assert table.knots.expand_as(table.cdf).shape == (3, 2, n)
    assert table.log_normaliser.shape == (3, 2)
    assert torch.isfinite(table.log_normaliser).all()
    cdf = table.cdf
    assert (cdf[..., 0] == 0).all() and (cdf[..., -1] == 1).all()
    assert ((cdf >= 0) & (cdf <= 1)).all()
    assert (cdf.diff(dim=-1) >= 0).all()
    assert (table.knots.diff(dim=-1) >= 0).all()


def test_log_plus_is_log_of_exp_plus_eps_without_overflow() -> None:
    # log(Z + eps) for log Z = 200 overflowed float32 as log(exp(log Z) + eps); the exact values
    # come from the identity log(e^a + e^b) = max + log1p(e^-(|a - b|)) in float64.
    eps = 1e-4
    values = torch.tensor([-100.0, -9.21, 0.0, 88.0, 89.0, 200.0, 1e4])
    expected = [
        max(a, math.log(eps)) + math.log1p(math.exp(-abs(a - math.log(eps))))
        for a in values.tolist()
    ]
    got = log_plus(values, eps)
    assert got.dtype == torch.float32 and torch.isfinite(got).all()
    np.testing.assert_allclose(got.tolist(), expected, rtol=1e-6)


def test_the_reference_node_map_is_kept_behind_its_compat_switch() -> None:
    # Departures A1: the reference code maps nodes as b * x with weights (b - a) / 2 * w; on a
    # symmetric domain that is the affine map, on [0, 4] (lognormal) half of its nodes fall below 0.
    x, w = np.polynomial.legendre.leggauss(8)
    domain = torch.tensor([[0.0, 4.0], [-1.2, 1.2]], dtype=torch.float64)
    nodes, weights = gauss_legendre(domain, 8, compat=True)
    np.testing.assert_allclose(nodes[0].numpy(), 4.0 * x)
    np.testing.assert_allclose(weights[0].numpy(), 2.0 * w)
    affine_nodes, affine_weights = gauss_legendre(domain, 8)
    torch.testing.assert_close(nodes[1], affine_nodes[1])
    torch.testing.assert_close(weights[1], affine_weights[1])
    assert int((nodes[0] < 0).sum()) == 4 and bool((affine_nodes[0] > 0).all())


# ------------------------------------------------------------------------------------------------
# The fused (C++) Gauss-Legendre table against the eager one, entry by entry, in float32

# Largest |fused - eager| / max(1, |eager|) allowed per entry: (log-normaliser, log-density and
# density, CDF). The fused kernel computes the same table with its own exp/log polynomials and
# summation order; errors seen are below 8e-7 (3x to 5x under these bounds). RSWAF bases lose
# digits in float32 (1 - tanh^2 near the grid points): there the eager float32 table itself is
# 2e-4 away from the float64 one, and fused and eager differ by at most 2.3e-4 (log-density) and
# 1.4e-5 (log-normaliser).
FUSED_TABLE_TOLERANCE = {"default": (2e-6, 4e-6, 2e-6), "rswaf": (5e-5, 5e-4, 5e-5)}


def _fused_and_eager_tables(prior, rule: str):
    nodes, log_weights = prior.quadrature_rule()
    log_reference = prior.reference.log_pdf(nodes.T).T
    with torch.no_grad():
        fused = fused_gauss_legendre_table(
            prior.layer,
            prior._row_view(nodes),
            nodes,
            log_weights,
            log_reference,
            prior.rows_are_inputs,
            rule,
        )
        prior.layer.kernel = "eager"
        eager = gauss_legendre_table(
            prior._row_view(nodes),
            prior._row_view(log_weights),
            prior._log_unnormalised_at(nodes),
            rule,
        )
    return fused, eager


def _relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    difference = (actual.double() - expected.double()).abs()
    return float((difference / expected.double().abs().clamp_min(1.0)).max())


@requires_native
@pytest.mark.parametrize("rule", ["midpoint", "left"])
@pytest.mark.parametrize("reference", ["gaussian", "uniform", "lognormal"])
@pytest.mark.parametrize("mixture", [False, True], ids=["univariate", "mixture"])
@pytest.mark.parametrize("basis", ALL_BASES)
def test_fused_float32_table_matches_the_eager_table_entry_by_entry(
    make_prior, basis, mixture, reference, rule
) -> None:
    prior = make_prior(basis, reference, mixture=mixture, widths=(3, 20), num_nodes=60).float()
    fused, eager = _fused_and_eager_tables(prior, rule)
    assert fused is not None, "the fused kernel did not run"
    tol_z, tol_density, tol_cdf = FUSED_TABLE_TOLERANCE.get(basis, FUSED_TABLE_TOLERANCE["default"])
    for name in ("log_normaliser", "log_density", "cdf"):
        assert getattr(fused, name).dtype == torch.float32
        assert getattr(fused, name).shape == getattr(eager, name).shape, name
    assert _relative_error(fused.log_normaliser, eager.log_normaliser) <= tol_z
    # Off the uniform reference's support the density is 0 in both tables (log-density -inf).
    finite = torch.isfinite(eager.log_density)
    assert torch.equal(torch.isfinite(fused.log_density), finite)
    assert _relative_error(fused.log_density[finite], eager.log_density[finite]) <= tol_density
    density, eager_density = fused.log_density.exp(), eager.log_density.exp()
    scale = max(1.0, float(eager_density.max()))
    assert float((density - eager_density).abs().max()) <= tol_density * scale
    assert float((fused.cdf.double() - eager.cdf.double()).abs().max()) <= tol_cdf
    assert torch.equal(fused.cdf[..., -1], torch.ones_like(fused.cdf[..., -1]))
