"""What a prior learned (:mod:`tkam.prior.learned`): divergences of its components from pi_0 and the
effective dimension of the generator's input.

Tolerances, and why:

* Closed form (``f(z) = a z`` exactly, pi_0 uniform on [0, 1], float64): the KL integrand is
  analytic, so 100 Gauss-Legendre nodes integrate it to float64 rounding (1e-10 allowed); ``|p -
  pi_0|`` has a kink where the densities cross, where Gauss-Legendre converges at second order
  only (about ``0.2 / n^2``: 1.1e-5 measured at n = 100 for a = 2), so TV gets 1e-4.
* Against scipy's adaptive quadrature of the layer's own ``f`` (float64, rough random ``f``): KL
  to 1e-9 (measured at most 2e-11 for these bases, whose ``f`` is analytic), TV to 5e-4 (several
  kinks; measured at most 1.5e-4).
* ``f = 0``: the component is pi_0 itself, so both vanish up to float32 rounding (< 1e-6).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import integrate

from tests.helpers import tiny_config
from tests.prior.conftest import build_test_prior
from tkam.build import build_model
from tkam.config import PriorConfig
from tkam.prior import (
    GaussianPrior,
    KANPrior,
    build_prior,
    component_divergences,
    effective_dimension,
    largest_components,
    prior_report,
    summarise,
)
from tkam.prior.learned import DIVERGENCE_KEYS
from tkam.prior.protocol import PriorModule

H_KEYS = ("h_effective_dimension", "h_leading_share", "h_width")


def _flat_energy(prior: KANPrior) -> KANPrior:
    """``prior`` with ``f = 0``: no spline and no base branch."""
    with torch.no_grad():
        prior.layer.coef.zero_()
        if hasattr(prior.layer, "w_base"):
            prior.layer.w_base.zero_()
    return prior


# --- closed form ------------------------------------------------------------------------------


def _tilted_uniform(a: float) -> tuple[float, float]:
    """KL and TV of ``p(z) = a e^{a z} / (e^a - 1)`` on [0, 1] from the uniform density.

    ``KL = log(a / (e^a - 1)) + a E_p[z]`` with ``E_p[z] = e^a / (e^a - 1) - 1 / a``. The
    densities cross once, at ``z* = log((e^a - 1) / a) / a``; the mass that moves is
    ``TV = |z* - F(z*)|`` with ``F(z) = (e^{a z} - 1) / (e^a - 1)``.
    """
    scale = math.expm1(a)
    mean = math.exp(a) / scale - 1.0 / a
    kl = math.log(a / scale) + a * mean
    crossing = math.log(scale / a) / a
    return kl, abs(crossing - math.expm1(a * crossing) / scale)


@pytest.mark.parametrize("mixture", [False, True])
def test_an_exponential_tilt_of_the_uniform_has_its_closed_form_divergences(mixture) -> None:
    # ReLU base branch on the domain [0, 1] (ebm reference: pi_0 = 1 there) and no spline: every
    # component's energy is exactly f(z) = w_base * z at the (interior) nodes.
    config = PriorConfig(
        widths=(2, 3),
        reference="ebm",
        grid_range=(0.0, 1.0),
        base_activation="relu",
        basis="rbf",
        num_nodes=100,
        mixture=mixture,
    )
    prior = build_prior(config).double()
    slopes = torch.tensor([[2.0, -1.5, 0.5], [3.0, -3.0, 1.0]], dtype=torch.float64)
    if mixture:  # rows are the Q = 3 latents, the layer is (Q, P)
        slopes = slopes.T.contiguous()
    with torch.no_grad():
        prior.layer.coef.zero_()
        prior.layer.w_base.copy_(slopes)
    kl, tv = component_divergences(prior)
    assert kl.shape == tv.shape == (3, 2) and kl.dtype == tv.dtype == torch.float64
    for q in range(3):
        for p in range(2):
            a = float(slopes[q, p] if mixture else slopes[p, q])
            expected_kl, expected_tv = _tilted_uniform(a)
            assert abs(float(kl[q, p]) - expected_kl) < 1e-10, (q, p, a)
            assert abs(float(tv[q, p]) - expected_tv) < 1e-4, (q, p, a)


# --- against scipy's adaptive quadrature of the layer's own f ----------------------------------


def _row_divergences(prior: KANPrior, row: int) -> tuple[np.ndarray, np.ndarray]:
    """KL and TV of the components on ``row`` by ``scipy.integrate.quad_vec`` over the row's
    domain, evaluating ``f`` with the layer and pi_0 with the reference wherever it asks."""
    rows = prior.layer.in_dim
    lo, hi = prior.layer.quadrature_domain()[row].double().tolist()
    options = {"epsabs": 1e-12, "epsrel": 1e-11, "limit": 500}

    def logs(z: float) -> tuple[np.ndarray, float]:
        with torch.no_grad():
            x = torch.full((1, rows), z, dtype=torch.float64)
            log_reference = prior.reference.log_pdf(x)[0, row]
            return (prior.layer(x)[0, row] + log_reference).numpy(), float(log_reference)

    z_p = integrate.quad_vec(lambda z: np.exp(logs(z)[0]), lo, hi, **options)[0]
    z_q = integrate.quad_vec(lambda z: math.exp(logs(z)[1]), lo, hi, **options)[0]

    def kl_integrand(z: float) -> np.ndarray:
        log_u, log_r = logs(z)
        log_p, log_q = log_u - np.log(z_p), log_r - math.log(z_q)
        return np.exp(log_p) * (log_p - log_q)

    def tv_integrand(z: float) -> np.ndarray:
        log_u, log_r = logs(z)
        return 0.5 * np.abs(np.exp(log_u) / z_p - math.exp(log_r) / z_q)

    kl = integrate.quad_vec(kl_integrand, lo, hi, **options)[0]
    return kl, integrate.quad_vec(tv_integrand, lo, hi, **options)[0]


def _scipy_divergences(prior: KANPrior) -> tuple[np.ndarray, np.ndarray]:
    """KL and TV ``(Q, P)`` of every component by adaptive quadrature, row by row."""
    kl = np.zeros((prior.num_outputs, prior.num_inputs))
    tv = np.zeros_like(kl)
    for row in range(prior.layer.in_dim):
        row_kl, row_tv = _row_divergences(prior, row)
        if prior.rows_are_inputs:  # component (q, p) is phi_{p->q}: row p, output q
            kl[:, row], tv[:, row] = row_kl, row_tv
        else:  # component (q, p) is phi_{q->p}: row q, output p
            kl[row], tv[row] = row_kl, row_tv
    return kl, tv


@pytest.mark.parametrize(
    ("basis", "reference", "mixture"),
    [
        ("rbf", "gaussian", False),
        ("rbf", "lognormal", True),
        ("chebyshev", "ebm", False),
        ("chebyshev", "learnable_gaussian", True),
    ],
)
def test_divergences_match_adaptive_quadrature_of_the_layer(basis, reference, mixture) -> None:
    prior = build_test_prior(basis, reference, mixture=mixture, num_nodes=100)
    kl, tv = component_divergences(prior)
    expected_kl, expected_tv = _scipy_divergences(prior)
    assert expected_tv.max() > 0.1  # the components really moved away from pi_0
    np.testing.assert_allclose(kl.numpy(), expected_kl, rtol=0, atol=1e-9)
    np.testing.assert_allclose(tv.numpy(), expected_tv, rtol=0, atol=5e-4)


def test_the_trapezium_rule_is_the_trapezium_on_the_grid_points() -> None:
    prior = build_test_prior("bspline", "gaussian", quadrature="trapezium")
    kl, tv = component_divergences(prior)
    with torch.no_grad():
        knots = prior.layer.grid  # (P, K): row p's points
        f = prior.layer(knots.T.contiguous())  # (K, P, Q): phi_{p->q} at row p's points
        log_reference = prior.reference.log_pdf(knots.T).T  # (P, K)
    for p in range(prior.num_inputs):
        x = knots[p].numpy()
        q_density = np.exp(log_reference[p].numpy())
        q_density /= np.trapezoid(q_density, x)
        for q in range(prior.num_outputs):
            p_density = np.exp(f[:, p, q].numpy()) * q_density
            p_density /= np.trapezoid(p_density, x)
            expected_kl = np.trapezoid(p_density * np.log(p_density / q_density), x)
            expected_tv = 0.5 * np.trapezoid(np.abs(p_density - q_density), x)
            assert float(kl[q, p]) == pytest.approx(expected_kl, abs=1e-12)
            assert float(tv[q, p]) == pytest.approx(expected_tv, abs=1e-12)
    assert tv.max() > 0.05


@pytest.mark.parametrize("quadrature", ["gausslegendre", "trapezium"])
@pytest.mark.parametrize("mixture", [False, True])
def test_the_quadrature_rule_is_the_rule_of_the_normaliser(quadrature, mixture) -> None:
    prior = build_test_prior("bspline", "uniform", mixture=mixture, quadrature=quadrature)
    nodes, log_weights = prior.quadrature_rule()
    table = prior.quadrature()
    view = nodes.unsqueeze(0) if prior.rows_are_inputs else nodes.unsqueeze(1)
    assert torch.equal(table.knots, view)
    # The table's normalised densities integrate to one with these weights.
    log_w = log_weights.unsqueeze(0) if prior.rows_are_inputs else log_weights.unsqueeze(1)
    mass = torch.logsumexp(log_w + table.log_density, dim=-1)
    torch.testing.assert_close(mass, torch.zeros_like(mass), rtol=0, atol=1e-12)


# --- flat and freshly initialised priors ------------------------------------------------------


@pytest.mark.parametrize(
    ("basis", "reference", "mixture", "quadrature"),
    [
        ("rbf", "gaussian", False, "gausslegendre"),
        ("rbf", "uniform", True, "gausslegendre"),
        ("bspline", "lognormal", False, "trapezium"),
        ("fourier", "ebm", True, "gausslegendre"),
        ("chebyshev", "learnable_gaussian", False, "gausslegendre"),
        ("rswaf", "uniform", False, "trapezium"),
    ],
)
def test_a_flat_energy_is_its_reference(basis, reference, mixture, quadrature) -> None:
    options = {"basis": basis, "reference": reference, "mixture": mixture}
    options |= {"quadrature": quadrature, "widths": (3, 4), "grid_size": 6}
    if basis == "chebyshev":
        options["init_tau"] = 1.1
    prior = _flat_energy(build_prior(PriorConfig(**options), rng=torch.Generator().manual_seed(0)))
    kl, tv = component_divergences(prior)  # float32 prior: the fused table where it applies
    assert kl.shape == tv.shape == (4, 3)
    assert kl.abs().max() < 1e-6 and tv.max() < 1e-6


def test_a_freshly_initialised_prior_is_close_to_its_reference() -> None:
    prior = build_prior(tiny_config().prior, rng=torch.Generator().manual_seed(0))
    summary = summarise(*component_divergences(prior))
    # Initial spline values are uniform in +-eps_scale / (2G): small wiggles around pi_0.
    assert 0 < summary["tv_median"] < 0.1 and summary["tv_max"] < 0.5
    assert 0 < summary["kl_median"] < 0.02


def test_priors_without_components_have_no_divergences() -> None:
    with pytest.raises(ValueError, match="no univariate components"):
        component_divergences(GaussianPrior(3))


# --- summaries --------------------------------------------------------------------------------


def test_summarise_and_the_largest_components() -> None:
    tv = torch.tensor([[0.0, 0.05], [0.2, 0.1], [0.3, 0.01]], dtype=torch.float64)
    kl = tv.square()
    summary = summarise(kl, tv)
    assert set(summary) == set(DIVERGENCE_KEYS)
    assert summary["tv_median"] == pytest.approx(0.075)
    assert summary["tv_p90"] == pytest.approx(np.quantile(tv.numpy(), 0.9))
    assert summary["tv_max"] == pytest.approx(0.3)
    assert summary["kl_median"] == pytest.approx(np.median(kl.numpy()))
    assert summary["kl_p90"] == pytest.approx(np.quantile(kl.numpy(), 0.9))
    assert summary["share_tv_above_0.1"] == pytest.approx(2 / 6)  # 0.1 itself is not above
    assert summary["num_components"] == 6
    largest = largest_components(kl, tv, count=3)
    assert [(row["q"], row["p"]) for row in largest] == [(2, 0), (1, 0), (1, 1)]
    assert largest[0]["tv"] == pytest.approx(0.3) and largest[0]["kl"] == pytest.approx(0.09)
    assert len(largest_components(kl, tv, count=10)) == 6
    with pytest.raises(ValueError):
        summarise(kl[:0], tv[:0])


# --- effective dimension ----------------------------------------------------------------------


def _spectrum(variances: list[float], width: int, n: int = 4000, seed: int = 0) -> np.ndarray:
    """``n`` points in ``width`` dimensions whose sample covariance has exactly the eigenvalues
    ``variances`` (then zeros), along random orthogonal directions."""
    rng = np.random.default_rng(seed)
    k = len(variances)
    x = rng.standard_normal((n, k))
    x -= x.mean(axis=0)
    x = x @ np.linalg.inv(np.linalg.cholesky(np.cov(x, rowvar=False))).T  # identity covariance
    directions = np.linalg.qr(rng.standard_normal((width, k)))[0]  # (width, k) orthonormal
    return 5.0 + (x * np.sqrt(variances)) @ directions.T


def test_effective_dimension_of_a_known_spectrum() -> None:
    h = _spectrum([100.0, 10.0, 0.001], width=6)
    assert effective_dimension(h) == 2  # 100 / 110.001 < 0.99 <= 110 / 110.001
    assert effective_dimension(torch.from_numpy(h).float()) == 2
    assert effective_dimension(h, share=0.9) == 1
    assert effective_dimension(h, share=0.99999) == 2  # 110 / 110.001 = 0.999991
    assert effective_dimension(h, share=0.999995) == 3
    assert effective_dimension(h, share=1.0) == 3  # the zero directions never count
    assert effective_dimension(np.ones((10, 4))) == 0
    assert effective_dimension(_spectrum([1.0] * 5, width=5)) == 5
    for share in (0.0, 1.5, -0.1):
        with pytest.raises(ValueError, match="share"):
            effective_dimension(h, share=share)
    with pytest.raises(ValueError, match="non-finite"):
        effective_dimension(np.full((5, 2), np.nan))
    with pytest.raises(ValueError, match="n >= 2"):
        effective_dimension(h[:1])


# --- the report -------------------------------------------------------------------------------


def test_prior_report_of_a_kolmogorov_arnold_prior() -> None:
    prior = build_prior(tiny_config().prior, rng=torch.Generator().manual_seed(0))
    report = prior_report(prior, num_samples=500, rng=torch.Generator().manual_seed(1))
    assert set(report) == {*DIVERGENCE_KEYS, *H_KEYS}
    assert report["num_components"] == 21 and report["h_width"] == 7
    assert report == {**report, **summarise(*component_divergences(prior))}
    assert 1 <= report["h_effective_dimension"] <= 7
    assert 0 < report["h_leading_share"] <= 1
    again = prior_report(prior, num_samples=500, rng=torch.Generator().manual_seed(1))
    assert again == report
    with pytest.raises(ValueError, match="at least 2"):
        prior_report(prior, num_samples=1)


@pytest.mark.parametrize("kind", ["vae", "lebm"])
def test_prior_report_without_components_has_only_the_h_keys(kind) -> None:
    model = build_model(tiny_config(model={"kind": kind}), (1, 8, 8))
    assert not model.prior.has_components
    report = prior_report(model.prior, num_samples=500, rng=torch.Generator().manual_seed(0))
    assert all(report[key] is None for key in DIVERGENCE_KEYS)
    assert report["h_width"] == 7
    # Near-isotropic draws: every one of the 7 directions is needed for 99 % of the variance.
    assert report["h_effective_dimension"] == 7
    assert 1 / 7 <= report["h_leading_share"] < 0.5


class _Unsampleable(PriorModule):
    """A prior without components that cannot draw samples."""


def test_prior_report_of_a_prior_that_cannot_be_sampled() -> None:
    report = prior_report(_Unsampleable())
    assert all(value is None for value in report.values())
    assert set(report) == {*DIVERGENCE_KEYS, *H_KEYS}
