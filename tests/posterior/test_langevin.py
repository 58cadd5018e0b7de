"""ULA, MALA and autoMALA against closed forms (maths 4.2, departures A12; design 7).

Statistical checks use independent chains' final states (no autocorrelation to account for) and
compare moments with their Monte-Carlo standard errors: mean ``sqrt(var / n)``, variance
``var * sqrt(2 / (n - 1))`` for Gaussian targets (the empirical fourth moment otherwise). Each test
states its seed and its bound in standard errors (SE).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import pytest
import torch
from scipy.special import digamma, polygamma
from torch import Tensor

from tkam.posterior import (
    AutoMALAState,
    LangevinState,
    Support,
    automala,
    automala_init,
    automala_step,
    init_state,
    langevin_proposal,
    mala,
    mala_step,
    mixed_preconditioner,
    reflect,
    refresh_state,
    ula,
)

pytestmark = pytest.mark.usefixtures("one_thread")


# The conjugate model is fixed (its own seed); each test seeds its sampler separately.
MODEL_SEED = 7

# Two-sided bound on |error| / SE for every moment check below (p ~ 7e-6 per comparison).
SE_BOUND = 4.5


class Conjugate(NamedTuple):
    """``z ~ N(0, I_d)``, ``x | z ~ N(A z, s^2 I_D)``: the posterior is Gaussian in closed form."""

    A: Tensor
    x: Tensor
    s: float
    mean: Tensor  # (d,) posterior mean
    cov: Tensor  # (d, d) posterior covariance


def conjugate(d: int, seed: int = MODEL_SEED, num_obs: int = 5, s: float = 1.0) -> Conjugate:
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(num_obs, d, generator=g, dtype=torch.float64)
    x = A @ torch.randn(d, generator=g, dtype=torch.float64)
    x = x + s * torch.randn(num_obs, generator=g, dtype=torch.float64)
    cov = torch.linalg.inv(torch.eye(d, dtype=torch.float64) + A.T @ A / s**2)
    return Conjugate(A, x, s, cov @ A.T @ x / s**2, cov)


def conjugate_log_posterior(model: Conjugate):
    """Unnormalised log-posterior over chains of any event shape with ``d`` elements."""

    def log_density(z: Tensor) -> Tensor:
        flat = z.flatten(1)  # (chains, d)
        residual = model.x - flat @ model.A.T  # (chains, D)
        return -0.5 * flat.square().sum(1) - 0.5 * residual.square().sum(1) / model.s**2

    return log_density


def moment_errors(samples: Tensor, mean: Tensor, var: Tensor, gaussian: bool = True):
    """Errors of the sample mean and variance in SE units, per coordinate ``(n, k) -> (k,)``."""
    n = samples.shape[0]
    mean_error = (samples.mean(0) - mean) / (var / n).sqrt()
    if gaussian:
        var_se = var * math.sqrt(2.0 / (n - 1))
    else:
        var_se = (samples - samples.mean(0)).square().std(0) / math.sqrt(n)
    var_error = (samples.var(0) - var) / var_se
    return mean_error, var_error


def assert_moments(samples: Tensor, mean: Tensor, var: Tensor, gaussian: bool = True) -> None:
    mean_error, var_error = moment_errors(samples, mean, var, gaussian)
    assert mean_error.abs().max() < SE_BOUND, f"mean off by {mean_error.tolist()} SE"
    assert var_error.abs().max() < SE_BOUND, f"variance off by {var_error.tolist()} SE"


def gaussian_log_density(mu: float, s: float):
    def log_density(z: Tensor) -> Tensor:
        return -0.5 * ((z - mu) / s).square().flatten(1).sum(1)

    return log_density


# ---------------------------------------------------------------------------------------------
# state and proposal


def test_init_state_scores_z_only_and_leaves_parameters_alone() -> None:
    weight = torch.nn.Parameter(torch.tensor([1.5, -0.5, 2.0]))
    z = torch.randn(4, 2, 3)

    def log_density(z: Tensor) -> Tensor:
        return -(weight * z.square()).sum(dim=(1, 2)) + weight.sum()

    state = init_state(z, log_density)
    assert weight.grad is None
    assert not z.requires_grad and z.grad is None
    assert not state.z.requires_grad and not state.grad.requires_grad
    assert not state.log_density.requires_grad
    torch.testing.assert_close(state.grad, -2.0 * weight.detach() * z)
    torch.testing.assert_close(state.log_density, log_density(z).detach())
    with torch.no_grad():  # callers may sit inside no_grad; the score is still computed
        torch.testing.assert_close(init_state(z, log_density).grad, state.grad)
    assert weight.grad is None


def test_init_state_rejects_wrong_output_shape() -> None:
    with pytest.raises(ValueError, match="must return shape"):
        init_state(torch.randn(4, 3), lambda z: z.sum())


@pytest.mark.statistical
def test_proposal_mean_and_per_chain_step_sizes() -> None:
    """``z + eta grad + sqrt(2 eta) xi``; a ``(chains,)`` step broadcasts over ``(Q, P)``; a
    diagonal preconditioner ``D`` scales the drift by ``D^2`` and the noise by ``D``.

    Seed 1; 5,000 chains of event (2, 3) from one point; the proposals' mean and variance per
    group within 4.5 SE of the Gaussian they should follow.
    """
    g = torch.Generator().manual_seed(1)
    chains = 5000
    z = torch.full((chains, 2, 3), 1.0, dtype=torch.float64)
    state = LangevinState(z, torch.zeros(chains, dtype=torch.float64), torch.full_like(z, -2.0))
    step = torch.where(torch.arange(chains) < chains // 2, 0.01, 0.09).double()
    proposal = langevin_proposal(state, step, g)
    assert proposal.shape == z.shape
    for half, eta in ((slice(0, chains // 2), 0.01), (slice(chains // 2, None), 0.09)):
        values = proposal[half].reshape(-1, 1)
        assert_moments(values, torch.tensor([1.0 - 2.0 * eta]), torch.tensor([2.0 * eta]))
    scale = torch.tensor([1.0, 3.0], dtype=torch.float64).view(2, 1)  # per Q row
    proposal = langevin_proposal(state, 0.01, g, preconditioner=scale)
    for row, d in ((0, 1.0), (1, 3.0)):
        values = proposal[:, row].reshape(-1, 1)
        mean, var = 1.0 - 2.0 * 0.01 * d**2, 2.0 * 0.01 * d**2
        assert_moments(values, torch.tensor([mean]), torch.tensor([var]))


# ---------------------------------------------------------------------------------------------
# ULA


# Chains and snapshots of the ULA checks: 5,000 chains x (2, 3) keeps every tensor under torch's
# intra-op parallel grain (32,768 elements), which makes the test immune to thread contention on
# a shared machine; 25 snapshots 10 steps apart (AR(1) coefficient <= 0.7, so lag-10 correlation
# <= 0.03, ignored in the SEs) give 375,000 values per step size.
OU_CHAINS, OU_BURN_IN, OU_STEPS, OU_EVERY = 5000, 50, 300, 10


def _snapshots(collected: list[Tensor]):
    def callback(i: int, state: LangevinState) -> LangevinState:
        if i + 1 > OU_BURN_IN and (i + 1) % OU_EVERY == 0:
            collected.append(state.z)
        return state

    return callback


@pytest.mark.statistical
def test_ula_stationary_variance_is_the_discretised_ou_formula(float64) -> None:
    """ULA on ``N(mu, s^2)`` with step ``h`` is an AR(1) chain with stationary variance
    ``s^2 / (1 - h / (2 s^2))``, not ``s^2``.

    Seed 11; 5,000 chains of event shape (2, 3), half with ``h / (2 s^2) = 0.15`` and half with
    ``0.3`` (one per-chain step tensor), started from the stationary law; mean and variance
    within 4.5 SE of the formula, which itself differs from ``s^2`` by over 60 SE (by 17.6% and
    42.9% of ``s^2``, against an SE of 0.23% of the target).
    """
    g = torch.Generator().manual_seed(11)
    mu, s, chains = 1.5, 0.8, OU_CHAINS
    ratios = torch.where(torch.arange(chains) < chains // 2, 0.15, 0.3)  # h / (2 s^2)
    step = 2 * s**2 * ratios  # (chains,)
    stationary = s**2 / (1 - ratios)  # (chains,)
    z0 = mu + stationary.sqrt().view(-1, 1, 1) * torch.randn(chains, 2, 3, generator=g)
    collected: list[Tensor] = []
    state = ula(z0, gaussian_log_density(mu, s), step, OU_STEPS, g, callback=_snapshots(collected))
    assert state.z.shape == (chains, 2, 3)
    samples = torch.stack(collected, dim=1)  # (chains, snapshots, 2, 3)
    for half in (slice(0, chains // 2), slice(chains // 2, None)):
        values = samples[half].reshape(-1, 1)
        target = stationary[half][0].view(1)
        se = target.item() * math.sqrt(2.0 / (values.shape[0] - 1))
        assert abs(target.item() - s**2) > 60 * se  # the check has power against "exact" ULA
        assert_moments(values, torch.tensor([mu]), target)


@pytest.mark.statistical
def test_ula_with_wrong_noise_scale_fails_the_same_check(float64) -> None:
    """Power: ULA with noise ``sqrt(h) xi`` instead of ``sqrt(2 h) xi`` fails the check above.

    Seed 12; same sizes, ``h / (2 s^2) = 0.15``; the variance is off by more than 10 x 4.5 SE.
    """
    g = torch.Generator().manual_seed(12)
    mu, s, ratio = 1.5, 0.8, 0.15
    step = 2 * s**2 * ratio
    stationary = s**2 / (1 - ratio)
    f = gaussian_log_density(mu, s)
    z0 = mu + math.sqrt(stationary) * torch.randn(OU_CHAINS, 2, 3, generator=g)
    state = init_state(z0, f)
    collected: list[Tensor] = []
    record = _snapshots(collected)
    for i in range(OU_STEPS):
        noise = math.sqrt(step) * torch.randn(state.z.shape, generator=g)  # should be sqrt(2 h)
        state = record(i, init_state(state.z + step * state.grad + noise, f))
    values = torch.stack(collected, dim=1).reshape(-1, 1)
    mean_error, var_error = moment_errors(values, torch.tensor([mu]), torch.tensor([stationary]))
    assert mean_error.abs().max() < SE_BOUND
    assert var_error.abs().max() > 10 * SE_BOUND


def test_ula_callback_and_failure_modes() -> None:
    g = torch.Generator().manual_seed(13)
    f = gaussian_log_density(0.0, 1.0)
    seen = []

    def callback(i: int, state: LangevinState) -> LangevinState:
        seen.append(i)
        return refresh_state(state, state.z.flip(0), f)  # a permutation of the chains

    state = ula(torch.randn(8, 3, generator=g), f, 0.1, 5, g, callback=callback)
    assert seen == [0, 1, 2, 3, 4]
    torch.testing.assert_close(state.grad, -state.z)
    with pytest.raises(RuntimeError, match="zero"):
        ula(torch.randn(8, 3), lambda z: z.sum(1) * 0.0, 0.1, 3, g)
    with pytest.raises(FloatingPointError):
        ula(torch.randn(8, 3), lambda z: z.pow(4).sum(1) * 1e6, 1.0, 20, g)


# ---------------------------------------------------------------------------------------------
# MALA


@pytest.mark.statistical
def test_mala_recovers_the_conjugate_posterior(float64) -> None:
    """Seed 21 (model seed 7); d = 4 latent (event (4,)), D = 5, s = 1; 4,000 chains from the prior, 300 steps
    of eta = 0.05; posterior means and variances within 4.5 SE."""
    g = torch.Generator().manual_seed(21)
    model = conjugate(d=4)
    state, acceptance = mala(
        torch.randn(4000, 4, generator=g), conjugate_log_posterior(model), 0.05, 300, g
    )
    assert state.z.shape == (4000, 4)
    assert 0.5 < acceptance.mean() < 1.0
    assert_moments(state.z, model.mean, model.cov.diagonal())


def test_mala_step_moves_exactly_the_accepted_chains(float64) -> None:
    g = torch.Generator().manual_seed(22)
    f = gaussian_log_density(0.0, 1.0)
    state = init_state(torch.randn(500, 2, 3, generator=g), f)
    new, info = mala_step(state, f, 1.5, g)  # a large step: many rejections
    moved = (new.z != state.z).flatten(1).any(1)
    assert torch.equal(moved, info.accepted)
    assert 0 < info.accepted.sum() < 500
    assert ((info.acceptance_probability >= 0) & (info.acceptance_probability <= 1)).all()
    torch.testing.assert_close(new.grad, -new.z)
    torch.testing.assert_close(new.log_density, f(new.z))


def test_mala_acceptance_ratio_matches_hand_computation(float64) -> None:
    """One 1-D chain, Gaussian target: recompute the MH ratio from the drawn proposal."""
    f = gaussian_log_density(0.3, 0.7)
    state = init_state(torch.tensor([[1.2]]), f)
    eta = 0.4
    proposal = langevin_proposal(state, eta, torch.Generator().manual_seed(5))
    _, info = mala_step(state, f, eta, torch.Generator().manual_seed(5))
    z, y = state.z.item(), proposal.item()
    score = lambda v: -(v - 0.3) / 0.7**2
    log_q = lambda to, frm: -((to - frm - eta * score(frm)) ** 2) / (4 * eta)
    log_alpha = f(proposal).item() - f(state.z).item() + log_q(z, y) - log_q(y, z)
    assert info.acceptance_probability.item() == pytest.approx(min(1.0, math.exp(log_alpha)))


@pytest.mark.statistical
def test_mala_without_proposal_correction_fails_on_a_skewed_target(float64) -> None:
    """Power: on ``log pi(y) = a y - exp(y)`` (log of a Gamma(2) variable; mean digamma(2),
    variance trigamma(2)) MALA passes and a Metropolis step that drops ``q(z | z') / q(z' | z)``
    fails. Seed 23; 20,000 chains, 150 steps of eta = 0.3; bound 4.5 SE (variance SE from the
    empirical fourth moment)."""
    g = torch.Generator().manual_seed(23)
    a, chains, eta = 2.0, 20_000, 0.3
    mean, var = torch.tensor([float(digamma(a))]), torch.tensor([float(polygamma(1, a))])

    def f(y: Tensor) -> Tensor:
        return (a * y - torch.exp(y)).sum(1)

    z0 = mean + 0.5 * torch.randn(chains, 1, generator=g)
    state, _ = mala(z0, f, eta, 150, g)
    assert_moments(state.z, mean, var, gaussian=False)

    wrong = init_state(z0, f)
    for _ in range(150):
        proposal = init_state(langevin_proposal(wrong, eta, g), f)
        log_ratio = proposal.log_density - wrong.log_density  # correction dropped
        accept = torch.log(torch.rand(chains, generator=g)) < log_ratio
        wrong = LangevinState(
            torch.where(accept[:, None], proposal.z, wrong.z),
            torch.where(accept, proposal.log_density, wrong.log_density),
            torch.where(accept[:, None], proposal.grad, wrong.grad),
        )
    mean_error, var_error = moment_errors(wrong.z, mean, var, gaussian=False)
    assert max(mean_error.abs().max(), var_error.abs().max()) > 2 * SE_BOUND


# ---------------------------------------------------------------------------------------------
# autoMALA


@pytest.mark.statistical
def test_automala_recovers_the_conjugate_posterior(float64) -> None:
    """Seed 31 (model seed 7); d = 4 latent as event (2, 2), 4,000 chains from the prior, one call of 150
    iterations (the first 10 unadjusted, as a burn-in) from eta = 0.2, then a second call from the persisted step sizes;
    posterior means and variances within 4.5 SE."""
    g = torch.Generator().manual_seed(31)
    model = conjugate(d=4)
    f = conjugate_log_posterior(model)
    state = automala(torch.randn(4000, 2, 2, generator=g), f, 0.2, 150, g, num_unadjusted=10)
    assert isinstance(state, AutoMALAState) and state.z.shape == (4000, 2, 2)
    state = automala(state, f, state.step_size, 30, g)
    assert_moments(state.z.flatten(1), model.mean, model.cov.diagonal())


@pytest.mark.statistical
def test_automala_step_sizes_adapt_within_bounds(float64) -> None:
    """Seed 32; 500 chains near the posterior mode of the d = 4 model (optimal steps ~0.2-0.8).
    Selected and adapted step sizes stay in bounds; from 1e-3 the selected steps have median
    > 0.05 and one call's adaptation moves the median above 0.03; from 8 it falls below 2."""
    g = torch.Generator().manual_seed(32)
    model = conjugate(d=4)
    f = conjugate_log_posterior(model)
    z0 = model.mean + 0.3 * torch.randn(500, 4, generator=g)
    bounds = (1e-4, 10.0)

    # Too small a start: the search grows every step and the persisted step follows.
    state = automala_init(z0, f, 1e-3)
    selected = []
    for _ in range(10):
        state, info = automala_step(state, f, g, step_size_bounds=bounds)
        selected.append(info.step_size)
        assert (info.accepted <= info.reversible).all()
    selected = torch.stack(selected)
    assert (selected >= bounds[0]).all() and (selected <= bounds[1]).all()
    assert selected.median() > 0.05
    torch.testing.assert_close(state.step_size, torch.full((500,), 1e-3))  # a step never adapts

    small = automala(z0, f, 1e-3, 12, g, step_size_bounds=bounds)
    large = automala(z0, f, 8.0, 12, g, step_size_bounds=bounds)
    for adapted in (small.step_size, large.step_size):
        assert (adapted >= bounds[0]).all() and (adapted <= bounds[1]).all()
    assert small.step_size.median() > 0.03  # from 1e-3
    assert large.step_size.median() < 2.0  # from 8
    assert small.step_size.unique().numel() > 1  # per chain

    tight = automala(z0, f, 1e-3, 6, g, step_size_bounds=(1e-3, 4e-3))
    assert ((tight.step_size >= 1e-3) & (tight.step_size <= 4e-3)).all()


def test_automala_unadjusted_phase_and_callback(float64) -> None:
    g = torch.Generator().manual_seed(33)
    f = gaussian_log_density(0.0, 1.0)
    state = automala_init(torch.randn(64, 3, generator=g), f, 5.0)  # huge: MH would reject
    new, info = automala_step(state, f, g, adjusted=False)
    assert info.accepted.all() and (new.z != state.z).flatten(1).all(1).all()
    torch.testing.assert_close(new.step_size, state.step_size)
    torch.testing.assert_close(new.grad, -new.z)

    seen = []

    def callback(i: int, state: AutoMALAState) -> LangevinState:
        seen.append(i)
        return init_state(state.z, f)  # a plain LangevinState keeps the step sizes

    out = automala(
        torch.randn(64, 3, generator=g), f, 0.5, 6, g, num_unadjusted=2, callback=callback
    )
    assert seen == [2, 3, 4, 5]
    assert isinstance(out, AutoMALAState) and out.step_size.shape == (64,)


class RowwiseGaussian:
    """``log N(z_c; mu_c, I)`` with its own mean per chain, restricting to any chains; counts the
    chains it evaluates (and ``restrict=False`` hides the restriction)."""

    def __init__(self, mu: Tensor, restrict: bool = True, counter: list[int] | None = None):
        self.mu, self.restrict = mu, restrict
        self.counter = [] if counter is None else counter

    def __call__(self, z: Tensor) -> Tensor:
        self.counter.append(len(z))
        return -0.5 * (z - self.mu).square().flatten(1).sum(1)

    def __getattr__(self, name: str):
        if name == "on_rows" and self.restrict:
            return lambda rows: RowwiseGaussian(self.mu[rows], True, self.counter)
        raise AttributeError(name)


def test_automala_search_evaluates_only_the_searching_chains(float64) -> None:
    # Seed 35: the same iterations with and without the restriction give the same chains and
    # step sizes, and the restricted search evaluates fewer chains (the batch waits for its
    # slowest chain only when the density cannot restrict).
    g = torch.Generator().manual_seed(35)
    mu = 3.0 * torch.randn(200, 3, generator=g)
    z0 = torch.randn(200, 3, generator=g)
    runs = {}
    for restrict in (True, False):
        f = RowwiseGaussian(mu, restrict)
        out = automala(z0, f, 0.05, 8, torch.Generator().manual_seed(36), num_unadjusted=2)
        runs[restrict] = (out, f.counter)
    (fast, fast_count), (plain, plain_count) = runs[True], runs[False]
    torch.testing.assert_close(fast.z, plain.z, rtol=1e-12, atol=1e-12)
    assert torch.equal(fast.step_size, plain.step_size)
    assert len(fast_count) == len(plain_count) and set(plain_count) == {200}
    assert min(fast_count) < 200 and sum(fast_count) < 0.9 * sum(plain_count)  # 0.82


@pytest.mark.statistical
def test_mixed_preconditioner_branches() -> None:
    """Seed 34; 3,000 draws; each branch's frequency within 0.04 (4.6 SE) of 1/3."""
    g = torch.Generator().manual_seed(34)
    z = torch.stack([torch.zeros(50), 4.0 * torch.randn(50, generator=g)], dim=1)  # (50, 2)
    sigma = z[:, 1].std(correction=0)
    kinds = {"inverse": 0, "ones": 0, "mixed": 0}
    for _ in range(3000):
        m = mixed_preconditioner(z, g)
        assert m.shape == (2,) and m[0] == 1.0  # sigma = 0 maps to 1 in every branch
        if torch.isclose(m[1], 1 / sigma):
            kinds["inverse"] += 1
        elif m[1] == 1.0:
            kinds["ones"] += 1
        else:
            assert 1 / sigma < m[1] < 1.0  # m + (1 - m) / sigma with m in (0, 1), sigma > 1
            kinds["mixed"] += 1
    for count in kinds.values():
        assert abs(count / 3000 - 1 / 3) < 0.04
    assert torch.equal(mixed_preconditioner(z[:1], g), torch.ones(2))  # one chain: sigma = 0


def test_samplers_run_in_float32_on_both_event_shapes() -> None:
    g = torch.Generator().manual_seed(35)
    f = gaussian_log_density(0.5, 1.0)
    for shape in ((16, 3), (16, 3, 2)):
        z0 = torch.randn(shape, generator=g)
        assert ula(z0, f, 0.1, 3, g).z.shape == shape
        assert mala(z0, f, 0.1, 3, g)[0].z.dtype == torch.float32
        state = automala(z0, f, 0.1, 4, g)
        assert state.z.shape == shape and state.step_size.dtype == torch.float32


def test_automala_chains_started_at_the_origin_still_move(float64) -> None:
    """Chains started at the origin (``max|z| = 0``) still pass the reversibility check, whose
    position tolerance is floored at ``eps``."""
    g = torch.Generator().manual_seed(36)
    f = gaussian_log_density(1.0, 1.0)
    state = automala(torch.zeros(200, 3), f, 0.5, 5, g, num_unadjusted=0)
    assert (state.z != 0).flatten(1).any(1).float().mean() > 0.9


def test_automala_never_moves_into_non_finite_density(float64) -> None:
    """Outside ``z > 0`` this Gamma-like log-density is NaN: the search shrinks past such steps
    (a non-finite ratio counts as -inf), and unadjusted moves that still land there are refused."""
    g = torch.Generator().manual_seed(37)

    def f(z: Tensor) -> Tensor:
        return (2.0 * torch.log(z) - z).sum(1)

    state = automala_init(0.05 + 0.1 * torch.rand(300, 2, generator=g), f, 4.0)
    for adjusted in (False, False, True, True):
        state, info = automala_step(state, f, g, adjusted=adjusted)
        assert torch.isfinite(state.z).all() and (state.z > 0).all()
        assert torch.isfinite(state.log_density).all()
    final = automala(state, f, 4.0, 6, g, step_size_bounds=(1e-4, 10.0))
    assert (final.z > 0).all() and torch.isfinite(final.grad).all()


# ---------------------------------------------------------------------------------------------
# reflection at the prior's support


def test_reflect_leaves_inside_points_alone_and_mirrors_the_rest() -> None:
    box = Support(torch.tensor([0.0, -1.0]), torch.tensor([1.0, 3.0]))  # widths 1 and 4
    inside = torch.tensor([[0.0, -1.0], [0.3, 2.9999], [1.0, 3.0]])
    folded, mirrored = reflect(inside, box)
    assert torch.equal(folded, inside) and not mirrored.any()
    z = torch.tensor([[-0.25, 3.5], [1.25, -2.0], [2.25, 8.0], [-1.5, -9.5]])
    folded, mirrored = reflect(z, box)
    # -0.25 -> 0.25 (once); 1.25 -> 0.75 (once); 2.25 -> 0.25 (twice); -1.5 -> 0.5 (twice)
    # 3.5 -> 2.5 (once); -2 -> 0 (once); 8 -> -2 -> 0 (twice); -9.5 -> 7.5 -> -1.5 -> -0.5
    expected = torch.tensor([[0.25, 2.5], [0.75, 0.0], [0.25, 0.0], [0.5, -0.5]])
    torch.testing.assert_close(folded, expected)
    assert mirrored.tolist() == [[True, True], [True, True], [False, False], [False, True]]
    g = torch.Generator().manual_seed(3)
    wild = 20.0 * torch.randn(1000, 2, generator=g)
    folded, _ = reflect(wild, box)
    assert ((folded >= box.lower) & (folded <= box.upper)).all()


def _truncated_gaussian():
    """``N(1.5, 1)`` restricted to ``[0, 1]``: its mode is outside the box, so chains press on a
    wall, and its exact mean and variance (scipy's truncnorm)."""
    from scipy.stats import truncnorm

    mu, lo, hi = 1.5, 0.0, 1.0
    box = Support(torch.tensor([lo], dtype=torch.float64), torch.tensor([hi], dtype=torch.float64))
    a, b = lo - mu, hi - mu
    mean = torch.tensor([truncnorm.mean(a, b, loc=mu)], dtype=torch.float64)
    var = torch.tensor([truncnorm.var(a, b, loc=mu)], dtype=torch.float64)
    return gaussian_log_density(mu, 1.0), box, mean, var


@pytest.mark.statistical
def test_reflected_ula_samples_a_truncated_target(float64) -> None:
    """Seed 41; 4,000 chains from U(0, 1), 1,500 ULA steps of 0.002 reflected into [0, 1]: mean
    and variance of N(1.5, 1) truncated to [0, 1] within 4.5 SE. Clamping at the walls instead
    (the same noise) piles mass on them and misses the variance by more than 4.5 SE, so the
    check tells the two apart; without the box the chains leave it."""
    f, box, mean, var = _truncated_gaussian()
    g = torch.Generator().manual_seed(41)
    z = ula(torch.rand(4000, 1, generator=g), f, 0.002, 1500, g, support=box).z
    assert ((z >= 0) & (z <= 1)).all()
    assert_moments(z, mean, var)

    g = torch.Generator().manual_seed(41)
    clamped = torch.rand(4000, 1, generator=g)
    for _ in range(1500):
        move = (
            clamped
            + 0.002 * (1.5 - clamped)
            + math.sqrt(0.004) * torch.randn(clamped.shape, generator=g, dtype=clamped.dtype)
        )
        clamped = move.clamp(0.0, 1.0)
    mean_error, var_error = moment_errors(clamped, mean, var)
    assert max(mean_error.abs().max(), var_error.abs().max()) > SE_BOUND

    g = torch.Generator().manual_seed(41)
    free = ula(torch.rand(4000, 1, generator=g), f, 0.002, 1500, g).z
    assert (free > 1).float().mean() > 0.3


@pytest.mark.statistical
def test_automala_with_a_hard_wall_samples_a_truncated_target(float64) -> None:
    """Seed 42; 4,000 chains from U(0, 1), autoMALA for 150 iterations (10 unadjusted) with its
    leapfrog reflected into [0, 1] (position mirrored, momentum reversed): mean and variance of
    N(1.5, 1) truncated to [0, 1] within 4.5 SE, every chain inside."""
    f, box, mean, var = _truncated_gaussian()
    g = torch.Generator().manual_seed(42)
    state = automala(
        torch.rand(4000, 1, generator=g), f, 0.2, 150, g, num_unadjusted=10, support=box
    )
    assert ((state.z >= 0) & (state.z <= 1)).all()
    assert_moments(state.z, mean, var)
