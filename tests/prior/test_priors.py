"""The univariate and mixture Kolmogorov-Arnold priors (maths 1.2, 3 and 10 item 5).

Statistical tests are seeded; each states its sample size, seed and critical value, and prints
its statistics (``pytest -s``). The KS critical value ``1.95 / sqrt(n)`` is the asymptotic one for
alpha = 0.001: a correct sampler fails a given check with probability 0.001 for a fresh seed.
Changing how the samplers consume random numbers re-rolls every statistic; with about 60
independent statistics here, roughly 6 % of such re-rolls trip one check by chance. A D just above
the critical value on one component is then likely chance; the off-by-one samplers below give D
three to six times the critical value on every component.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import stats

from tests.helpers import requires_native
from tkam.config import PriorConfig, config_from_dict
from tkam.config.schema import ineffective_settings
from tkam.kan import native_calls
from tkam.prior import MixturePrior, UnivariatePrior, build_prior, gauss_legendre
from tkam.prior.inverse_transform import invert_batched, invert_components
from tkam.prior.reference import ReferenceDensity

ALL_BASES = ("bspline", "rbf", "rswaf", "fourier", "chebyshev")
REFERENCES = ("uniform", "gaussian", "lognormal", "learnable_gaussian", "ebm")

N_KS = 20_000
KS_CRITICAL_0001 = 1.95 / math.sqrt(N_KS)  # asymptotic KS critical value, alpha = 0.001


# ------------------------------------------------------------------------------------------------
# KS checks against the quadrature CDF the sampler is meant to invert


def univariate_ks(prior: UnivariatePrior, z: torch.Tensor) -> np.ndarray:
    """KS statistic ``(Q, P)`` of every component's samples ``z[:, q, p]`` against the exported
    CDF of component (q, p) (piecewise linear over the nodes of row p)."""
    exported = prior.export()
    Q, P = prior.latent_shape
    out = np.empty((Q, P))
    for q in range(Q):
        for p in range(P):
            nodes, cdf = exported["nodes"][p], exported["cdf"][q, p]
            out[q, p] = stats.kstest(
                z[:, q, p].double().numpy(),
                lambda x, nodes=nodes, cdf=cdf: np.interp(x, nodes, cdf),
            ).statistic
    return out


def mixture_ks(prior: MixturePrior, z: torch.Tensor) -> np.ndarray:
    """KS statistic ``(Q,)`` of each latent's samples against the alpha-weighted mixture of its
    components' exported CDFs (all on the nodes of row q)."""
    exported = prior.export()
    weights = prior.weights().detach().double().numpy()  # (Q, P)
    out = np.empty(prior.num_outputs)
    for q in range(prior.num_outputs):
        nodes, cdfs = exported["nodes"][q], exported["cdf"][q]  # (n,), (P, n)

        def mixture_cdf(x, nodes=nodes, cdfs=cdfs, alpha=weights[q]):
            return sum(a * np.interp(x, nodes, c) for a, c in zip(alpha, cdfs, strict=True))

        out[q] = stats.kstest(z[:, q].double().numpy(), mixture_cdf).statistic
    return out


def log_density_variation(prior, q: int, p: int) -> float:
    """Range of ``f_qp - log Z`` (log density over reference) where pi_0 > 0: how far from flat."""
    exported = prior.export()
    row = p if prior.rows_are_inputs else q
    support = exported["reference"][row] > 0
    ratio = np.log(exported["density"][q, p][support] / exported["reference"][row][support])
    return float(np.ptp(ratio))


# ------------------------------------------------------------------------------------------------
# Spec 10 item 5: shapes, finiteness and gradients for every reference and both priors


@pytest.mark.parametrize("mixture", [False, True], ids=["univariate", "mixture"])
@pytest.mark.parametrize("reference", REFERENCES)
@pytest.mark.parametrize("basis", ALL_BASES)
def test_prior_shapes_finiteness_and_gradients(basis: str, reference: str, mixture: bool) -> None:
    P, Q, S = 5, 10, 16
    config = PriorConfig(
        basis=basis,
        reference=reference,
        widths=(P, Q),
        mixture=mixture,
        grid_size=5,
        init_tau=1.1 if basis == "chebyshev" else 1.0,
        train_proportions=mixture,
    )
    prior = build_prior(config, rng=torch.Generator().manual_seed(0))  # float32
    assert isinstance(prior, MixturePrior if mixture else UnivariatePrior)
    assert (prior.num_inputs, prior.num_outputs) == (P, Q)
    z = prior.sample(S, torch.Generator().manual_seed(1))
    assert z.shape == ((S, Q) if mixture else (S, Q, P))
    assert z.dtype == torch.float32 and not z.requires_grad
    assert torch.isfinite(z).all()
    assert prior.generator_input(z).shape == (S, Q)
    for normalise in (False, True):
        value = prior.log_prior(z, normalise=normalise)
        assert value.shape == (S,)
        assert torch.isfinite(value).all()
    prior.zero_grad()
    prior.log_prior(z, normalise=True).sum().backward()
    grads = {name: p.grad for name, p in prior.named_parameters() if p.requires_grad}
    assert grads, "the prior has trainable parameters"
    for name, grad in grads.items():
        assert grad is not None and torch.isfinite(grad).all(), name
    assert any(grad.abs().sum() > 0 for grad in grads.values())
    if reference == "learnable_gaussian":
        assert grads["reference.mean"].abs().sum() > 0


@settings(max_examples=30, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    basis=st.sampled_from(ALL_BASES),
    reference=st.sampled_from(REFERENCES),
    mixture=st.booleans(),
    P=st.integers(1, 4),
    Q=st.integers(1, 4),
    S=st.integers(0, 5),
)
def test_shapes_for_any_widths_and_sample_count(make_prior, basis, reference, mixture, P, Q, S):
    prior = make_prior(basis, reference, mixture=mixture, widths=(P, Q), num_nodes=20)
    z = prior.sample(S, torch.Generator().manual_seed(0))
    assert z.shape == ((S, Q) if mixture else (S, Q, P))
    assert torch.isfinite(z).all()
    value = prior.log_prior(z, normalise=True)
    assert value.shape == (S,) and torch.isfinite(value).all()
    assert prior.log_normaliser().shape == (Q, P)
    assert prior.generator_input(z).shape == (S, Q)


@pytest.mark.parametrize("mixture", [False, True], ids=["univariate", "mixture"])
@pytest.mark.parametrize(
    "basis",
    [
        "bspline",
        "rbf",
        "rswaf",
        "fourier",
        "chebyshev",
    ],
)
def test_priors_built_under_a_float64_default_dtype(float64, basis, mixture) -> None:
    config = PriorConfig(
        basis=basis, reference="gaussian", widths=(2, 3), mixture=mixture, init_tau=1.1
    )
    prior = build_prior(config, rng=torch.Generator().manual_seed(0))
    z = prior.sample(8, torch.Generator().manual_seed(1))
    assert z.dtype == torch.float64
    value = prior.log_prior(z, normalise=True)
    assert value.dtype == torch.float64 and torch.isfinite(value).all()
    for name, tensor in prior.named_parameters():
        assert tensor.dtype == torch.float64, name


# ------------------------------------------------------------------------------------------------
# Spec 10 "ITS histogram of a random e^f pi_0 passes KS against the quadrature CDF"


@pytest.mark.statistical
@pytest.mark.parametrize("reference", REFERENCES)
@pytest.mark.parametrize("basis", ALL_BASES)
def test_univariate_samples_follow_the_quadrature_cdf(make_prior, basis, reference) -> None:
    # Seeds: prior 1000 + 10 * basis index + reference index; samples that + 1.
    seed = 1000 + 10 * ALL_BASES.index(basis) + REFERENCES.index(reference)
    prior = make_prior(basis, reference, seed=seed)  # widths (P, Q) = (2, 3), G = 8, 100 nodes
    variation = max(log_density_variation(prior, q, p) for q in range(3) for p in range(2))
    assert variation > 1.0, f"component densities are nearly flat ({variation:.2f})"
    z = prior.sample(N_KS, torch.Generator().manual_seed(seed + 1))
    assert z.shape == (N_KS, 3, 2) and torch.isfinite(z).all()
    d = univariate_ks(prior, z)
    print(
        f"KS univariate {basis}-{reference} seed={seed}: max D = {d.max():.4f} "
        f"(critical {KS_CRITICAL_0001:.4f}, log-density range {variation:.2f})"
    )
    assert d.max() < KS_CRITICAL_0001, (
        f"max KS D = {d.max():.4f} >= {KS_CRITICAL_0001:.4f} (n={N_KS}, seed={seed}); per "
        f"component:\n{np.array2string(d, precision=4)}"
    )


@pytest.mark.statistical
@pytest.mark.parametrize(
    ("basis", "reference"),
    [
        ("rbf", "gaussian"),
        ("bspline", "uniform"),
        ("fourier", "ebm"),
        ("chebyshev", "lognormal"),
        ("rswaf", "learnable_gaussian"),
    ],
)
def test_mixture_samples_follow_the_weighted_quadrature_cdf(make_prior, basis, reference) -> None:
    seed = 2000 + 10 * ALL_BASES.index(basis) + REFERENCES.index(reference)
    prior = make_prior(basis, reference, mixture=True, seed=seed)  # Q = 3 latents, P = 2 comps
    weights = prior.weights()
    assert (weights.max(-1).values - weights.min(-1).values).max() > 0.1  # non-uniform alpha
    z = prior.sample(N_KS, torch.Generator().manual_seed(seed + 1))
    assert z.shape == (N_KS, 3) and torch.isfinite(z).all()
    d = mixture_ks(prior, z)
    print(
        f"KS mixture {basis}-{reference} seed={seed}: max D = {d.max():.4f} "
        f"(critical {KS_CRITICAL_0001:.4f})"
    )
    assert d.max() < KS_CRITICAL_0001, f"max KS D = {d.max():.4f} (n={N_KS}, seed={seed}): {d}"


@pytest.mark.statistical
@pytest.mark.parametrize("mixture", [False, True], ids=["univariate", "mixture"])
@pytest.mark.parametrize("rule", ["midpoint", "left"])
def test_float32_priors_and_both_cdf_rules_sample_their_cdf(make_prior, mixture, rule) -> None:
    seed = 3000 + 2 * int(mixture) + int(rule == "left")
    prior = make_prior("rbf", "gaussian", mixture=mixture, seed=seed, cdf=rule).float()
    z = prior.sample(N_KS, torch.Generator().manual_seed(seed + 1))
    assert z.dtype == torch.float32
    d = mixture_ks(prior, z) if mixture else univariate_ks(prior, z)
    print(
        f"KS float32 {'mixture' if mixture else 'univariate'} cdf={rule} seed={seed}: "
        f"max D = {d.max():.4f}"
    )
    assert d.max() < KS_CRITICAL_0001, f"max KS D = {d.max():.4f} (seed={seed})"


# ------------------------------------------------------------------------------------------------
# The KS check has power: deliberately wrong samplers fail it


def wrong_univariate_sample(prior: UnivariatePrior, n: int, g: torch.Generator) -> torch.Tensor:
    """``UnivariatePrior.sample`` with an off-by-one error: interpolating towards knot ``j + 1``
    instead of knot ``j`` for CDF index ``j``."""
    table = prior.quadrature()
    knots = table.knots.expand_as(table.cdf)
    knots = torch.cat([knots[..., 1:], knots[..., -1:]], dim=-1)
    Q, P = prior.latent_shape
    u = torch.rand(P, n, generator=g, dtype=table.cdf.dtype)
    return invert_batched(knots, table.cdf, u.expand(Q, P, n)).permute(2, 0, 1)


@pytest.mark.statistical
@pytest.mark.parametrize("bug", ["knot_index_plus_one", "left_cdf_rule"])
def test_ks_check_rejects_a_wrong_sampler(make_prior, bug) -> None:
    # 20 nodes, so one node (or half a node's mass) is a large shift.
    seed = 4000
    prior = make_prior("rbf", "gaussian", seed=seed, num_nodes=20)
    right = prior.sample(N_KS, torch.Generator().manual_seed(seed + 1))
    if bug == "knot_index_plus_one":
        wrong = wrong_univariate_sample(prior, N_KS, torch.Generator().manual_seed(seed + 1))
    else:  # CDF "mass before the node" (departures A18) inverted while the table says "midpoint"
        same_but_left = make_prior("rbf", "gaussian", seed=seed, num_nodes=20, cdf="left")
        wrong = same_but_left.sample(N_KS, torch.Generator().manual_seed(seed + 1))
    d_right, d_wrong = univariate_ks(prior, right).max(), univariate_ks(prior, wrong).min()
    print(
        f"KS power {bug}: correct sampler max D = {d_right:.4f}, wrong sampler min D = "
        f"{d_wrong:.4f} (critical {KS_CRITICAL_0001:.4f})"
    )
    assert d_right < KS_CRITICAL_0001
    # Every component of the wrong sampler is rejected, by a wide margin.
    assert d_wrong > 2 * KS_CRITICAL_0001, f"wrong sampler not rejected: min D = {d_wrong:.4f}"


@pytest.mark.statistical
def test_ks_check_rejects_a_mixture_sampler_that_ignores_the_weights(make_prior) -> None:
    seed = 4100
    prior = make_prior("rbf", "ebm", mixture=True, seed=seed, num_nodes=40)
    with torch.no_grad():
        prior.logits.copy_(torch.tensor([[2.0, -2.0], [-2.0, 2.0], [1.5, -1.0]]))
        prior.layer.coef.mul_(3.0)  # well separated components
    right = prior.sample(N_KS, torch.Generator().manual_seed(seed + 1))
    with torch.no_grad():
        saved = prior.logits.clone()
        prior.logits.zero_()  # the wrong sampler draws components uniformly
        wrong = prior.sample(N_KS, torch.Generator().manual_seed(seed + 1))
        prior.logits.copy_(saved)
    d_right, d_wrong = mixture_ks(prior, right).max(), mixture_ks(prior, wrong).min()
    print(f"KS power mixture weights: correct max D = {d_right:.4f}, wrong min D = {d_wrong:.4f}")
    assert d_right < KS_CRITICAL_0001
    assert d_wrong > 2 * KS_CRITICAL_0001


# ------------------------------------------------------------------------------------------------
# Mixture weights


@pytest.mark.statistical
def test_mixture_component_frequencies_match_the_weights(make_prior) -> None:
    seed, n = 5000, 20_000
    prior = make_prior("rbf", "gaussian", mixture=True, seed=seed, widths=(4, 3))
    weights = prior.weights().detach()  # (Q, P) = (3, 4)
    assert weights.shape == (3, 4)
    torch.testing.assert_close(weights.sum(-1), torch.ones(3, dtype=weights.dtype))
    assert (weights.max(-1).values / weights.min(-1).values).min() > 1.5  # clearly non-uniform
    components = prior.sample_components(n, torch.Generator().manual_seed(seed + 1))
    assert components.shape == (n, 3) and components.dtype == torch.long
    p_values = []
    for q in range(3):
        counts = torch.bincount(components[:, q], minlength=4).numpy()
        expected = n * weights[q].double().numpy()
        p_values.append(stats.chisquare(counts, expected / expected.sum() * n).pvalue)
    print(f"chi-square mixture frequencies seed={seed}: min p = {min(p_values):.3g}")
    assert min(p_values) > 1e-3, f"p-values {p_values}"


def test_uniform_proportions_are_fixed_without_train_proportions(make_prior) -> None:
    prior = make_prior("rbf", "gaussian", mixture=True, train_proportions=False, widths=(4, 3))
    assert "logits" not in dict(prior.named_parameters())
    torch.testing.assert_close(prior.weights(), torch.full((3, 4), 0.25, dtype=torch.float64))


# ------------------------------------------------------------------------------------------------
# Univariate structure: shared uniforms (departures A25) and the transpose of departures A2


def test_univariate_columns_are_comonotone_across_outputs(make_prior) -> None:
    prior = make_prior("rbf", "gaussian", seed=6, widths=(3, 4))
    z = prior.sample(2000, torch.Generator().manual_seed(7))  # (S, Q, P)
    for p in range(3):
        order = torch.argsort(z[:, 0, p])
        for q in range(1, 4):
            # Same uniform u_p for every q: sorting one output sorts all of them.
            assert (z[order, q, p].diff() >= 0).all(), f"column p={p}, q={q}"
    # Different columns use independent uniforms.
    rho = stats.spearmanr(z[:, 0, 0].numpy(), z[:, 0, 1].numpy()).statistic
    assert abs(rho) < 0.1


# Independent uniforms (prior.independent_uniforms): the same marginals, no dependence over q.
# Spearman's rho of independent samples has standard error 1 / sqrt(S - 1).
S_RANK = 20_000
RHO_TOLERANCE = 4.0 / math.sqrt(S_RANK - 1)  # four standard errors


def rank_correlations(z: torch.Tensor) -> np.ndarray:
    """Spearman's rho of ``z[:, q, p]`` and ``z[:, q', p]`` for every ``p`` and ``q < q'``."""
    _, Q, P = z.shape
    return np.array(
        [
            stats.spearmanr(z[:, q, p].numpy(), z[:, r, p].numpy()).statistic
            for p in range(P)
            for q in range(Q)
            for r in range(q + 1, Q)
        ]
    )


@pytest.mark.statistical
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["eager", "fused"])
@pytest.mark.parametrize(("basis", "reference"), [("rbf", "gaussian"), ("bspline", "ebm")])
def test_independent_uniforms_keep_the_marginals_and_decouple_outputs(
    make_prior, basis, reference, dtype
) -> None:
    # Seeds: prior 6100 + 10 * basis index (+1 for float32 is not needed: same prior, cast);
    # samples that + 1. Tolerances: KS at alpha = 0.001; rho within four standard errors.
    seed = 6100 + 10 * ALL_BASES.index(basis)
    prior = make_prior(basis, reference, seed=seed, widths=(2, 3), independent_uniforms=True)
    prior = prior.to(dtype)
    z = prior.sample(S_RANK, torch.Generator().manual_seed(seed + 1))
    assert z.shape == (S_RANK, 3, 2) and z.dtype == dtype and torch.isfinite(z).all()
    d = univariate_ks(prior, z)
    rho = rank_correlations(z)
    print(
        f"independent uniforms {basis}-{reference} {dtype}: max KS D = {d.max():.4f} "
        f"(critical {KS_CRITICAL_0001:.4f}), max |rho| = {np.abs(rho).max():.4f} "
        f"(tolerance {RHO_TOLERANCE:.4f})"
    )
    assert d.max() < KS_CRITICAL_0001, f"per component KS D:\n{d}"
    assert np.abs(rho).max() < RHO_TOLERANCE, f"rank correlations over q: {rho}"
    # The shared-uniform default gives rho = 1 on the same prior: the check has power.
    shared = make_prior(basis, reference, seed=seed, widths=(2, 3)).to(dtype)
    z_shared = shared.sample(2000, torch.Generator().manual_seed(seed + 1))
    assert rank_correlations(z_shared).min() > 0.999
    h = prior.sample_generator_input(S_RANK, torch.Generator().manual_seed(seed + 1))
    torch.testing.assert_close(h, z.sum(-1))


def test_independent_uniforms_fused_and_eager_samples_agree(make_prior) -> None:
    """The fused kernel inverts the float32 table at the eager path's points (same uniforms)."""
    prior = make_prior("rbf", "gaussian", seed=6200, widths=(4, 5), independent_uniforms=True)
    prior = prior.float()
    table = prior.sampling_table()
    u = torch.rand(300, 5, 4, generator=torch.Generator().manual_seed(6201))
    component = torch.arange(20).reshape(5, 4).expand(300, 5, 4)
    knot_rows = torch.arange(4).expand(300, 5, 4)
    cdf = table.cdf.reshape(20, -1)
    fused = invert_components(table.knots[0], cdf, component, u, None, knot_rows)
    eager = invert_batched(
        table.knots[0].expand_as(table.cdf), table.cdf, u.permute(1, 2, 0).contiguous()
    ).permute(2, 0, 1)
    torch.testing.assert_close(fused, eager, rtol=0, atol=1e-5)


def test_independent_uniforms_is_flagged_where_uniforms_are_not_shared() -> None:
    config = config_from_dict({"prior": {"mixture": True, "independent_uniforms": True}})
    assert any(s.startswith("prior.independent_uniforms") for s in ineffective_settings(config))
    assert not ineffective_settings(config_from_dict({"prior": {"independent_uniforms": True}}))


@pytest.mark.parametrize("basis", ALL_BASES)
def test_univariate_log_prior_is_the_transposed_sum_of_components(make_prior, basis) -> None:
    # Departures A2: f_qp = phi_{p->q} evaluated at z_qp on grid row p (P != Q catches reshapes).
    P, Q, S = 3, 4, 5
    prior = make_prior(basis, "gaussian", seed=8, widths=(P, Q))
    z = prior.sample(S, torch.Generator().manual_seed(9))
    explicit = torch.zeros(S, dtype=torch.float64)
    for q in range(Q):
        for p in range(P):
            x = torch.zeros(S, P, dtype=torch.float64)
            x[:, p] = z[:, q, p]
            explicit += prior.layer(x)[:, p, q]  # phi_{p->q}(z_qp)
    explicit += torch.log(torch.exp(-0.5 * z**2) / math.sqrt(2 * math.pi) + prior.eps).sum((1, 2))
    torch.testing.assert_close(prior.log_prior(z), explicit)
    log_z = prior.log_normaliser()
    assert log_z.shape == (Q, P)
    normalised = explicit - torch.log(log_z.exp() + prior.eps).sum()
    torch.testing.assert_close(prior.log_prior(z, normalise=True), normalised)


@pytest.mark.parametrize("normalised_mixture", [False, True])
def test_mixture_log_prior_is_a_sum_of_log_mixtures(make_prior, normalised_mixture) -> None:
    P, Q, S = 3, 4, 6
    prior = make_prior(
        "rswaf",
        "lognormal",
        mixture=True,
        seed=10,
        widths=(P, Q),
        normalised_mixture=normalised_mixture,
    )
    z = prior.sample(S, torch.Generator().manual_seed(11))
    alpha = prior.weights()
    log_z = prior.log_normaliser()
    reference = ReferenceDensity("lognormal", Q, (0.0, 4.0), prior.eps).double()
    for normalise in (False, True):
        divide = normalise or normalised_mixture
        expected = torch.zeros(S, dtype=torch.float64)
        for q in range(Q):
            mixture = torch.zeros(S, dtype=torch.float64)
            for p in range(P):
                x = torch.zeros(S, Q, dtype=torch.float64)
                x[:, q] = z[:, q]
                f = prior.layer(x)[:, q, p]  # phi_{q->p}(z_q)
                pi0 = reference.log_pdf(z[:, q : q + 1]).exp()[:, 0] + prior.eps
                term = alpha[q, p] * torch.exp(f) * pi0
                mixture += term / log_z[q, p].exp() if divide else term
            expected += torch.log(mixture)
        torch.testing.assert_close(prior.log_prior(z, normalise=normalise), expected)


@pytest.mark.parametrize("mixture", [False, True], ids=["univariate", "mixture"])
def test_normalised_log_prior_integrates_to_one(make_prior, mixture) -> None:
    # One latent (Q = P = 1 univariate; Q = 1 with two components for the mixture) and the ebm
    # reference (log pi_0 = 0 exactly): exp(log_prior(normalise=True)) is the sampled density.
    widths = (2, 1) if mixture else (1, 1)
    prior = make_prior("rbf", "ebm", mixture=mixture, seed=12, widths=widths)
    lo, hi = prior.layer.quadrature_domain()[0].tolist()
    z = torch.linspace(lo, hi, 20_001, dtype=torch.float64)
    z = z[:, None] if mixture else z[:, None, None]
    density = prior.log_prior(z, normalise=True).detach().exp()
    total = torch.trapezoid(density, z.flatten()).item()
    assert abs(total - 1) < 1e-3


# ------------------------------------------------------------------------------------------------
# Reference densities (maths 3.1, departures A17)


def test_learnable_gaussian_is_the_proper_normal_density() -> None:
    reference = ReferenceDensity("learnable_gaussian", 3, (-1.2, 1.2)).double()
    with torch.no_grad():
        reference.mean.copy_(torch.tensor([0.3, -1.0, 2.0]))
        reference.raw_std.copy_(torch.tensor([-0.5, 0.0, 1.5]))
    std = F.softplus(reference.raw_std).detach().numpy()
    z = torch.randn(50, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(13)) * 2
    expected = stats.norm.logpdf(z.numpy(), loc=reference.mean.detach().numpy(), scale=std)
    np.testing.assert_allclose(reference.log_pdf(z).detach().numpy(), expected, rtol=1e-12)
    np.testing.assert_allclose(
        reference.log_density(z).detach().numpy(), np.log(np.exp(expected) + 1e-4), rtol=1e-12
    )
    # Starts at the standard normal (up to the float32 rounding of the initial raw std).
    fresh = ReferenceDensity("learnable_gaussian", 3, (-1.2, 1.2)).double()
    np.testing.assert_allclose(
        fresh.log_pdf(z).detach().numpy(), stats.norm.logpdf(z.numpy()), rtol=1e-7
    )


def test_fixed_reference_densities() -> None:
    z = torch.linspace(-0.5, 3.5, 81, dtype=torch.float64)[:, None]
    gaussian = ReferenceDensity("gaussian", 1, (0, 1))
    np.testing.assert_allclose(gaussian.log_pdf(z).numpy(), stats.norm.logpdf(z.numpy()))
    uniform = ReferenceDensity("uniform", 1, (0, 1))
    inside = (z >= 0) & (z <= 1)
    assert (uniform.log_pdf(z)[inside] == 0).all()
    assert torch.isneginf(uniform.log_pdf(z)[~inside]).all()
    torch.testing.assert_close(
        uniform.log_density(z), torch.where(inside, math.log(1 + 1e-4), math.log(1e-4)).double()
    )
    ebm = ReferenceDensity("ebm", 1, (-2, 2))
    assert (ebm.log_pdf(z) == 0).all() and (ebm.log_density(z) == 0).all()
    assert ebm.domain == (-2.0, 2.0) and uniform.domain == (-0.1, 1.1)
    lognormal = ReferenceDensity("lognormal", 1, (0, 1))
    assert lognormal.domain == (0.0, 4.0)
    positive = z > 0.2  # away from 0, the eps-stabilised form is the LogNormal(0, 1) density
    np.testing.assert_allclose(
        lognormal.log_pdf(z)[positive].numpy(),
        stats.lognorm.logpdf(z[positive].numpy(), s=1.0),
        rtol=0,
        atol=2e-3,
    )
    assert torch.isneginf(lognormal.log_pdf(z)[z < 0]).all()


def test_unknown_reference_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown reference"):
        ReferenceDensity("cauchy", 1, (0, 1))


# ------------------------------------------------------------------------------------------------
# Trapezium quadrature (departures A19: works for both priors)


@pytest.mark.statistical
@pytest.mark.parametrize("mixture", [False, True], ids=["univariate", "mixture"])
@pytest.mark.parametrize("basis", ["bspline", "rbf", "rswaf"])
def test_trapezium_quadrature_priors_sample_their_cdf(make_prior, basis, mixture) -> None:
    seed = 6000 + 10 * ALL_BASES.index(basis) + int(mixture)
    prior = make_prior(basis, "gaussian", mixture=mixture, seed=seed, quadrature="trapezium")
    table = prior.quadrature()
    grid = prior.layer.grid  # (R, K)
    K = grid.shape[1]
    assert table.cdf.shape == (3, 2, K)
    rows = table.knots[0] if not mixture else table.knots[:, 0]
    torch.testing.assert_close(rows, grid)
    z = prior.sample(N_KS, torch.Generator().manual_seed(seed + 1))
    assert torch.isfinite(z).all()
    if mixture:
        assert (z >= grid.min(1).values).all() and (z <= grid.max(1).values).all()
        d = mixture_ks(prior, z)
    else:
        assert (z >= grid.min(1).values).all() and (z <= grid.max(1).values).all()
        d = univariate_ks(prior, z)
    print(
        f"KS trapezium {'mixture' if mixture else 'univariate'} {basis} seed={seed}: "
        f"max D = {d.max():.4f}"
    )
    assert d.max() < KS_CRITICAL_0001, f"max KS D = {d.max():.4f} (seed={seed})"
    log_prior = prior.log_prior(z[:8], normalise=True)
    assert log_prior.shape == (8,) and torch.isfinite(log_prior).all()


# ------------------------------------------------------------------------------------------------
# Grid updates of the prior (maths 2.6: row p refit on {z_qp}, row q on {z_q})


@pytest.mark.parametrize("mixture", [False, True], ids=["univariate", "mixture"])
@pytest.mark.parametrize("basis", ALL_BASES)
def test_prior_grid_update_keeps_shapes_and_finite_parameters(make_prior, basis, mixture) -> None:
    prior = make_prior(basis, "gaussian", mixture=mixture, seed=14, widths=(3, 4))
    z = prior.sample(500, torch.Generator().manual_seed(15))
    state = {k: v.clone() for k, v in prior.state_dict().items()}
    prior.update_grid(z)
    new_state = prior.state_dict()
    for key, value in new_state.items():
        assert value.shape == state[key].shape, key
        assert torch.isfinite(value).all(), key
    if basis in ("bspline", "rbf", "rswaf"):
        values = z.reshape(-1, 3) if not mixture else z  # (n, R): row p over q, s / row q over s
        k = prior.layer.degree if basis == "bspline" else 0
        core = prior.layer.grid[:, k : prior.layer.grid.shape[1] - k]
        torch.testing.assert_close(core[:, 0], values.min(0).values)
        torch.testing.assert_close(core[:, -1], values.max(0).values)
    else:
        for key, value in new_state.items():
            assert torch.equal(value, state[key]), key
    table = prior.quadrature()
    assert (table.cdf.diff(dim=-1) >= 0).all() and torch.isfinite(table.log_normaliser).all()
    fresh = prior.sample(100, torch.Generator().manual_seed(16))
    assert torch.isfinite(fresh).all() and torch.isfinite(prior.log_prior(fresh, True)).all()


def test_prior_grid_update_on_repeated_latents_stays_finite(make_prior) -> None:
    prior = make_prior("bspline", "gaussian", seed=17, widths=(3, 4))
    z = prior.sample(200, torch.Generator().manual_seed(18))
    z[:150] = 0.25  # mostly one repeated value
    prior.update_grid(z)
    for name, tensor in prior.state_dict().items():
        assert torch.isfinite(tensor).all(), name
    assert torch.isfinite(prior.sample(50, torch.Generator().manual_seed(19))).all()


# ------------------------------------------------------------------------------------------------
# Export and reproducibility


@pytest.mark.parametrize("mixture", [False, True], ids=["univariate", "mixture"])
def test_export_shapes_and_normalised_densities(make_prior, mixture) -> None:
    prior = make_prior("chebyshev", "lognormal", mixture=mixture, seed=20, num_nodes=50)
    exported = prior.export()
    R = 3 if mixture else 2
    assert exported["nodes"].shape == (R, 50) and exported["reference"].shape == (R, 50)
    assert exported["density"].shape == exported["cdf"].shape == (3, 2, 50)
    assert exported["log_normaliser"].shape == (3, 2)
    _, weights = gauss_legendre(prior.layer.quadrature_domain(), 50)
    weights = weights.numpy()
    for q in range(3):
        for p in range(2):
            row = q if mixture else p
            total = (weights[row] * exported["density"][q, p]).sum()
            assert total == pytest.approx(1.0, abs=1e-10)


@pytest.mark.parametrize("mixture", [False, True], ids=["univariate", "mixture"])
def test_sampling_is_reproducible_with_a_generator(make_prior, mixture) -> None:
    prior = make_prior("rbf", "gaussian", mixture=mixture, seed=21)
    a = prior.sample(64, torch.Generator().manual_seed(5))
    b = prior.sample(64, torch.Generator().manual_seed(5))
    c = prior.sample(64, torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_zero_mass_quadrature_is_a_clear_error() -> None:
    # A uniform reference on [0, 1] with 2 B-spline intervals and few nodes: no node carries mass.
    config = PriorConfig(
        basis="bspline", reference="uniform", widths=(2, 3), grid_size=1, num_nodes=10
    )
    prior = build_prior(config, rng=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="no finite mass.*'uniform'.*10 nodes"):
        prior.sample(3, torch.Generator().manual_seed(1))


@pytest.mark.parametrize("normalise", [False, True])
@pytest.mark.parametrize("mixture", [False, True])
def test_weighted_log_prior_is_the_weighted_sum_of_log_priors(float64, normalise, mixture) -> None:
    # The losses' one-pass prior term against log_prior, values and parameter gradients.
    from tkam.config import load_config
    from tkam.prior import build_prior

    name = "svhn" if mixture else "digits"
    prior = build_prior(load_config(name).prior, rng=torch.Generator().manual_seed(0))
    z = prior.sample(9, torch.Generator().manual_seed(1))
    weights = torch.randn(9, generator=torch.Generator().manual_seed(2))
    params = [p for p in prior.parameters() if p.requires_grad]
    fused = prior.weighted_log_prior(z, weights, normalise=normalise)
    reference = (prior.log_prior(z, normalise=normalise) * weights).sum()
    torch.testing.assert_close(fused, reference, rtol=1e-10, atol=1e-10)
    for g, ref in zip(torch.autograd.grad(fused, params), torch.autograd.grad(reference, params)):
        torch.testing.assert_close(g, ref, rtol=1e-8, atol=1e-10)


def test_a_normaliser_of_e_to_the_200_stays_finite() -> None:
    # log Z = 200 per component: log(Z + eps) = 200 up to e^-209, so the normalised log-prior is
    # the unnormalised one minus 200 per component, in float32 and through the fused weighted sum.
    prior = build_prior(PriorConfig(widths=(3, 5), reference="gaussian", grid_size=6))
    z = prior.sample(4, torch.Generator().manual_seed(0))
    log_z = torch.full((5, 3), 200.0)
    value = prior.log_prior(z, normalise=True, log_normaliser=log_z)
    assert torch.isfinite(value).all()
    torch.testing.assert_close(value, prior.log_prior(z) - 15 * 200.0)
    weights = torch.full((4,), 0.25)
    weighted = prior.weighted_log_prior(z, weights, normalise=True, log_normaliser=log_z)
    torch.testing.assert_close(weighted, (prior.log_prior(z) * weights).sum() - 15 * 200.0)


def test_prior_compat_node_map_reaches_the_quadrature() -> None:
    config = PriorConfig(widths=(3, 5), reference="lognormal", grid_size=6, num_nodes=10)
    nodes = build_prior(config).export()["nodes"]
    compat = build_prior(replace_config(config, compat_node_map=True)).export()["nodes"]
    assert nodes.min() > 0.0 and compat.min() < 0.0
    np.testing.assert_allclose(compat[0], 4.0 * np.polynomial.legendre.leggauss(10)[0], rtol=1e-6)


def replace_config(config: PriorConfig, **changes) -> PriorConfig:
    return dataclasses.replace(config, **changes)


def _julia_reshape(array: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """The reference's ``reshape``: column-major order."""
    return np.reshape(array, shape, order="F")


@pytest.mark.parametrize("basis", ["rbf", "fourier"])
def test_compat_layout_reproduces_the_reference_reshapes(make_prior, basis) -> None:
    # Departures A2 with P = 3, Q = 5 (coprime, so no component keeps its place by accident).
    # The reference holds the layer output as a column-major (P, Q, S) array and reshapes it to
    # (Q, P, S); its log-prior feeds row q of the latents, z[q, :, :], to the layer and keeps
    # output slice q; its grid update reshapes the (Q, P, S) latents to (P, Q S).
    P, Q, S = 3, 5, 4
    prior = make_prior(basis, "gaussian", seed=11, widths=(P, Q), compat_layout=True)
    plain = make_prior(basis, "gaussian", seed=11, widths=(P, Q))
    z = prior.sample(S, torch.Generator().manual_seed(12))  # (S, Q, P)

    # Quadrature components: the reshaped layer output on each row's nodes.
    nodes = prior.sampling_table().knots[0]  # (P, N)
    values = prior.layer.at_nodes(nodes).detach().numpy()  # (N, P, Q)
    julia = _julia_reshape(np.transpose(values, (1, 2, 0)), (Q, P, values.shape[0]))
    log_pi0 = prior.reference.log_pdf(nodes.T).T.detach().numpy()  # (P, N)
    np.testing.assert_allclose(
        prior._log_unnormalised_at(nodes).detach().numpy(), julia + log_pi0[None]
    )
    # Different from the transposed layout, and every function used exactly once.
    assert not np.allclose(julia, np.transpose(values, (2, 1, 0)))
    assert sorted(julia[..., 0].ravel()) == sorted(values[0].ravel())

    # Log-prior: sum over q of slice q of the reshaped output at inputs z[q, :, :].
    expected = np.zeros(S)
    for q in range(Q):
        out = prior.layer(z[:, q, :]).detach().numpy()  # (S, P, Q)
        reshaped = _julia_reshape(np.transpose(out, (1, 2, 0)), (Q, P, S))
        expected += reshaped[q].sum(axis=0)
    expected += prior.reference.log_density(z).sum((1, 2)).detach().numpy()
    np.testing.assert_allclose(prior.log_prior(z).detach().numpy(), expected, rtol=1e-10)
    weights = torch.tensor([0.5, -1.0, 2.0, 0.25], dtype=torch.float64)
    np.testing.assert_allclose(
        prior.weighted_log_prior(z, weights).item(), (expected * weights.numpy()).sum()
    )
    with torch.no_grad():
        plain.load_state_dict(prior.state_dict())
    assert not torch.allclose(plain.log_prior(z), prior.log_prior(z))

    # Grid update inputs: row p of the reshaped (P, Q S) array.
    rows = _julia_reshape(np.transpose(z.numpy(), (1, 2, 0)), (P, Q * S))
    got = prior.grid_inputs(z).numpy()  # (Q S, P)
    for p in range(P):
        np.testing.assert_array_equal(np.sort(got[:, p]), np.sort(rows[p]))


def test_compat_layout_samples_follow_the_reshaped_densities(make_prior) -> None:
    # The sampler inverts slot (q, p)'s own (reshaped) table: KS distance at seed 13 below the
    # 1% critical value; against the transposed layout's tables the same samples fail.
    P, Q, S = 2, 3, 4000
    prior = make_prior("rbf", "gaussian", seed=14, widths=(P, Q), compat_layout=True)
    plain = make_prior("rbf", "gaussian", seed=14, widths=(P, Q))
    plain.load_state_dict(prior.state_dict())
    z = prior.sample(S, torch.Generator().manual_seed(13))
    empirical = np.arange(1, S + 1) / S

    def ks(model: UnivariatePrior) -> float:
        table = model.sampling_table()
        knots = table.knots.expand(Q, P, -1)
        return max(
            np.abs(
                np.interp(np.sort(z[:, q, p].numpy()), knots[q, p].numpy(), table.cdf[q, p].numpy())
                - empirical
            ).max()
            for q in range(Q)
            for p in range(P)
        )

    assert ks(prior) < 1.63 / math.sqrt(S)
    assert ks(plain) > 3 / math.sqrt(S)


# ------------------------------------------------------------------------------------------------
# kernel = "eager" is eager everywhere: no call into the compiled library, sampling included


@requires_native
@pytest.mark.parametrize(("mixture", "independent"), [(False, False), (False, True), (True, False)])
def test_the_eager_kernel_calls_no_native_code(monkeypatch, mixture, independent) -> None:
    calls: list[str] = []
    run = native_calls._run
    record = lambda name, *arguments: (calls.append(name), run(name, *arguments))[1]
    monkeypatch.setattr(native_calls, "_run", record)
    for kernel in ("fused", "eager"):
        options = {"mixture": mixture, "independent_uniforms": independent, "kernel": kernel}
        config = PriorConfig(widths=(3, 5), reference="gaussian", grid_size=6, **options)
        prior = build_prior(config, rng=torch.Generator().manual_seed(0))
        calls.clear()
        rng = torch.Generator().manual_seed(1)
        z = prior.sample(40, rng)
        if not mixture:
            prior.sample_generator_input(40, rng)
        prior.log_prior(z, normalise=True)
        prior.weighted_log_prior(z, torch.ones(40), normalise=True).backward()
        if kernel == "eager":
            assert calls == []
        else:  # the fused quadrature table, the sampler and the layer's operators
            assert "tkam_quadrature_table_f32" in calls
            assert any(name.startswith("tkam_invert") for name in calls)
            assert any(name.startswith(("tkam_eval", "tkam_features")) for name in calls)


# ------------------------------------------------------------------------------------------------
# Support: the box posterior Langevin chains are reflected into (maths 4.2)


@pytest.mark.parametrize(
    ("mixture", "independent"),
    [(False, False), (False, True), (True, False)],
    ids=["shared", "independent", "mixture"],
)
@pytest.mark.parametrize("basis", ["rbf", "fourier"])
def test_support_is_each_components_domain_and_holds_every_sample(
    make_prior, basis, mixture, independent
) -> None:
    prior = make_prior(
        basis, "ebm", mixture=mixture, seed=21, widths=(3, 4), independent_uniforms=independent
    )
    support = prior.support()
    domain = prior.layer.quadrature_domain()
    shape = prior.latent_shape
    lower = torch.broadcast_to(support.lower, shape)
    upper = torch.broadcast_to(support.upper, shape)
    if mixture:  # z_q lives on row q
        assert torch.equal(lower, domain[:, 0]) and torch.equal(upper, domain[:, 1])
    else:  # z_qp lives on row p, for every q
        assert torch.equal(lower, domain[:, 0].expand(shape))
        assert torch.equal(upper, domain[:, 1].expand(shape))
    z = prior.sample(3000, torch.Generator().manual_seed(22))
    assert ((z >= lower) & (z <= upper)).all()


def test_support_follows_grid_updates_and_is_absent_where_components_move_rows(make_prior) -> None:
    prior = make_prior("rbf", "ebm", seed=23, widths=(3, 4))
    before = prior.support().upper.clone()
    prior.update_grid(0.5 * prior.sample(500, torch.Generator().manual_seed(24)))
    assert (prior.support().upper < before).all()  # the refit grid is narrower
    assert make_prior("rbf", "ebm", seed=23, widths=(3, 4), compat_layout=True).support() is None
    deep = build_prior(PriorConfig(widths=(4, 8, 1)), rng=torch.Generator().manual_seed(25))
    assert deep.support() is None


# Noise-space chains (posterior.space = "noise"): z = F^{-1}(Phi(e)) must be the sampler's law and
# differentiable with the inverse CDF's slope.


@pytest.mark.parametrize("independent", [False, True], ids=["shared", "independent"])
def test_latents_from_noise_invert_each_cdf_at_the_normal_cdf_of_the_noise(
    make_prior, independent
) -> None:
    """Exact: F_qp(z_qp) = Phi(e) on the piecewise-linear CDF, one noise per column p for every q
    (shared uniforms) or per component; the shape is checked by name."""
    prior = make_prior("rbf", "ebm", seed=6300, widths=(3, 4), independent_uniforms=independent)
    assert prior.noise_shape == ((4, 3) if independent else (3,))
    noise = torch.randn(500, *prior.noise_shape, generator=torch.Generator().manual_seed(6301))
    z = prior.latents_from_noise(noise)
    assert z.shape == (500, 4, 3)
    exported = prior.export()
    u = torch.special.ndtr(noise).double().numpy()
    for q in range(4):
        for p in range(3):
            cdf_at_z = np.interp(
                z[:, q, p].double().numpy(), exported["nodes"][p], exported["cdf"][q, p]
            )
            target = u[:, q, p] if independent else u[:, p]
            np.testing.assert_allclose(cdf_at_z, target, atol=1e-6)
    with pytest.raises(ValueError, match=r"noise: expected shape \(S, "):
        prior.latents_from_noise(torch.randn(5, 4, 4))


@pytest.mark.statistical
def test_latents_from_standard_normal_noise_follow_the_prior(make_prior) -> None:
    """Seed 6312, 20,000 draws: every component's KS D below the alpha = 0.001 critical value
    against its exported CDF (seeds 6311-6316 give max D 0.0057-0.0130 against 0.0138, as the
    uniform sampler's own draws do, 0.0059-0.0087; noise drawn from N(0, 2^2) gives D of 0.1 and
    more)."""
    prior = make_prior("bspline", "gaussian", seed=6310, widths=(2, 3))
    noise = torch.randn(N_KS, *prior.noise_shape, generator=torch.Generator().manual_seed(6312))
    d = univariate_ks(prior, prior.latents_from_noise(noise))
    wide = univariate_ks(prior, prior.latents_from_noise(2.0 * noise))
    print(f"noise -> latents: max KS D = {d.max():.4f} (critical {KS_CRITICAL_0001:.4f})")
    assert d.max() < KS_CRITICAL_0001, d
    assert wide.min() > 5 * KS_CRITICAL_0001, wide


def test_latents_from_noise_have_the_slope_of_the_inverse_cdf(make_prior) -> None:
    """The gradient in the noise is phi(e) / density of the linear CDF's interval at z: central
    differences of 1e-6 in float64 agree to 1e-6 relative (seed 6321: no difference straddles a
    node, where the slope jumps)."""
    prior = make_prior("fourier", "uniform", seed=6320, widths=(2, 3), independent_uniforms=True)
    generator = torch.Generator().manual_seed(6321)
    noise = torch.randn(50, 3, 2, generator=generator, dtype=torch.float64).requires_grad_(True)
    (grad,) = torch.autograd.grad(prior.latents_from_noise(noise).sum(), noise)
    h = 1e-6
    with torch.no_grad():
        numeric = (prior.latents_from_noise(noise + h) - prior.latents_from_noise(noise - h)) / (
            2 * h
        )
    assert bool((grad > 0).all())
    torch.testing.assert_close(grad, numeric, rtol=1e-6, atol=1e-12)


@requires_native
def test_fused_noise_map_matches_autograd_through_the_reference_inversion(make_prior) -> None:
    """Independent uniforms in float32: the fused inversion (whose slopes give the backward)
    returns the latents of ``invert_batched`` at ``Phi(e)`` bit for bit, and the gradient in the
    noise that autograd takes through that reference (seed 6331, 400 draws, 1e-5 relative)."""
    from tkam.prior.inverse_transform import invert_batched

    prior = make_prior("rbf", "ebm", seed=6330, widths=(3, 4), independent_uniforms=True).float()
    noise = torch.randn(400, 4, 3, generator=torch.Generator().manual_seed(6331))
    weights = torch.linspace(-1, 2, 3)
    leaf = noise.clone().requires_grad_(True)
    z = prior.latents_from_noise(leaf)
    (grad,) = torch.autograd.grad((z * weights).sum(), leaf)
    table = prior.sampling_table()
    reference_leaf = noise.clone().requires_grad_(True)
    u = torch.special.ndtr(reference_leaf).clamp(max=1.0 - torch.finfo(torch.float32).eps)
    cdf = table.cdf
    reference = invert_batched(table.knots[0].expand_as(cdf), cdf, u.permute(1, 2, 0))
    reference = reference.permute(2, 0, 1)
    (reference_grad,) = torch.autograd.grad((reference * weights).sum(), reference_leaf)
    assert torch.equal(z.detach(), reference.detach())
    torch.testing.assert_close(grad, reference_grad, rtol=1e-5, atol=1e-7)
    assert bool((grad != 0).any())
