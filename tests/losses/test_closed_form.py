"""Loss gradients against closed forms on a conjugate linear-Gaussian T-KAM (maths 4.1-4.3).

The model (:mod:`tests.losses.conjugate`): ``z in R^2``, a learnable prior ``N(mu, diag(s^2))``
whose ``log_prior`` is unnormalised unless asked (so the contrastive negative phase carries the
gradient of ``log Z``), generator ``nn.Linear(2, 4)``, ``sigma = 1``, no output noise, float64;
model seed 7, four data items drawn from it with seed 5. The log-evidence, the power posteriors
and every expectation of ``grad_theta l(x | z)`` and ``grad_theta log p~(z)`` under them are
closed forms, differentiated by autograd.

Each statistical test averages ``R`` independent loss gradients (``loss.backward()``, fixed seeds)
and requires, for every parameter entry, ``|mean - expected| <= k SE + allowance`` where ``SE`` is
the standard error over the replicates and the allowance is the estimator's or the sampler's own
bias, computed in closed form (stated per test). Seeds and tolerances are in each docstring.
Mistakes in the losses (sign errors, dropped terms, wrong populations or temperatures, chains that
ignore the likelihood, stale replica-exchange caches) move some entry by 14 to over 1000 SE.
"""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from tests.helpers import requires_native, tiny_config
from tests.losses.conjugate import (
    Gaussians,
    conjugate_model,
    expected_log_likelihood,
    expected_log_prior,
    gradient,
    log_evidence,
    power_posterior,
    replicate_gradients,
    rule_weights,
    snis_bias,
    ula_law,
)
from tkam.config import PosteriorConfig, ThermodynamicConfig
from tkam.kan.layer import UnivariateLayer
from tkam.losses import compute_loss, importance_loss, langevin_loss, thermodynamic_loss
from tkam.model import TKAM
from tkam.posterior.tempering import TemperedRun

pytestmark = pytest.mark.usefixtures("one_thread")

MODEL_SEED, DATA_SEED = 7, 5
LATENT, OBSERVED, SIGMA, PRIOR_SCALE = 2, 4, 1.0, 0.8


def _model_and_data() -> tuple[TKAM, Tensor]:
    """The conjugate model and four data items drawn from it (seed 5)."""
    model = conjugate_model(LATENT, OBSERVED, SIGMA, MODEL_SEED, PRIOR_SCALE)
    g = torch.Generator().manual_seed(DATA_SEED)
    with torch.no_grad():
        z = model.prior.sample(4, g)
        x = model.decode(z) + SIGMA * torch.randn(4, OBSERVED, generator=g, dtype=torch.float64)
    return model, x


def _names(model: TKAM) -> list[str]:
    return [f"{name}[{i}]" for name, p in model.named_parameters() for i in range(p.numel())]


def _assert_within(
    model: TKAM, mean: Tensor, se: Tensor, expected: Tensor, allowance: Tensor, k: float
) -> None:
    """Every entry within ``k SE + allowance`` of the expected gradient."""
    assert (se > 0).all(), "replicates must vary"
    deviation = (mean - expected).abs()
    bad = deviation > k * se + allowance
    order = torch.argsort((deviation - allowance) / se, descending=True).tolist()
    names = _names(model)
    lines = [
        f"{names[i]}: mean {mean[i]:+.4f} expected {expected[i]:+.4f} "
        f"({(mean[i] - expected[i]) / se[i]:+.1f} SE, allowance {allowance[i]:.4f})"
        for i in order
        if bad[i]
    ]
    assert not lines, f"{len(lines)} of {len(names)} entries outside: " + "; ".join(lines)


def _minus_evidence_gradient(model: TKAM, x: Tensor) -> Tensor:
    """``-grad mean_b log p(x_b)``: the exact gradient every maximum-likelihood loss estimates."""
    return -gradient(model, log_evidence(model, x).mean())


def _prior_law(model: TKAM, x: Tensor) -> Gaussians:
    return power_posterior(model, x, 0.0)


def _langevin_target(model: TKAM, x: Tensor, law: Gaussians, exact: bool) -> Tensor:
    """``E[L]`` of the Langevin loss with chains of law ``law``, differentiable with the laws
    held fixed: ``-(E[log p~] + E[l] - E_p[log p~])``, or ``-(E[log p~] - log Z + E[l])``."""
    positive = expected_log_prior(model, law) + expected_log_likelihood(model, x, law)
    if exact:
        return -(positive.mean() - model.prior.log_normaliser())
    return -(positive.mean() - expected_log_prior(model, _prior_law(model, x)).mean())


# ---------------------------------------------------------------------------------------------
# 4.1 importance sampling


@pytest.mark.statistical
@pytest.mark.parametrize(
    ("contrastive", "negatives", "threshold"),
    [(True, "fresh", 0.5), (True, "proposals", 0.5), (False, "fresh", 0.5), (True, "fresh", 0.0)],
    ids=["fresh", "proposals", "exact", "fresh-no-resampling"],
)
def test_importance_loss_gradient_is_minus_the_evidence_gradient(
    float64, contrastive, negatives, threshold
) -> None:
    """``E[grad L_IS] = -grad mean_b log p(x_b)`` (contrastive, fresh or proposal negatives;
    exact ``log Z``), up to the self-normalised estimator's bias.

    R = 64 replicates (seeds 1000-1063) of N = 4000 prior proposals; threshold 0.5 resamples
    every row (residual; ESS/N is 0.25-0.47 here) and 0.0 none. Resampling adds no bias (residual
    copies have expectation ``N w``). The self-normalised bias is ``(Z_2 / Z_1^2)(mu_1 - mu_2) /
    N + O(1/N^2)`` (:func:`~tests.losses.conjugate.snis_bias`, closed form, < 0.2 SE here); the
    allowance is twice it, covering the ``O(1/N^2)`` rest (measured 1.2x the leading term at
    N = 20, so far smaller at N = 4000). Tolerance: 4.5 SE + allowance per entry.
    """
    model, x = _model_and_data()
    num_samples = 4000
    expected = _minus_evidence_gradient(model, x)
    bias = snis_bias(model, x, num_samples).abs()

    def loss(rng: torch.Generator) -> Tensor:
        out = importance_loss(
            model,
            x,
            num_samples,
            rng,
            threshold=threshold,
            contrastive=contrastive,
            negatives=negatives,
        )
        return out.loss

    result = replicate_gradients(model, loss, range(1000, 1064))
    assert (bias < 0.5 * result.se).all()  # the bias is well below the tolerance
    _assert_within(model, result.mean, result.se, expected, 2 * bias, 4.5)


# ---------------------------------------------------------------------------------------------
# 4.2 Langevin maximum likelihood


@pytest.mark.statistical
@pytest.mark.parametrize("contrastive", [True, False], ids=["contrastive", "exact"])
def test_ula_langevin_loss_gradient_is_minus_the_evidence_gradient(float64, contrastive) -> None:
    """Fisher's identity: ``E[grad L_LMC] = -grad mean_b log p(x_b)`` when the chains sample the
    posterior; and ``E[L_LMC]`` equals its closed form.

    The four data items are repeated 128 times (512 chains per call); ULA with h = 0.005 for 600
    steps from prior draws; R = 16 replicates (seeds 2000-2015). ULA on a Gaussian target is a
    linear recursion, so the chains' law after 600 steps is Gaussian in closed form
    (:func:`~tests.losses.conjugate.ula_law`): the expected gradient under it differs from the
    exact one by the ULA bias (O(h) covariance, ``(1 - h P/2)^-1``) plus the burn-in; that
    difference, exact here, is the allowance and is asserted below 1 SE. Tolerance 4.5 SE +
    allowance per entry; the value likewise (its allowance from the same law).
    """
    model, x = _model_and_data()
    step_size, steps, copies = 0.005, 600, 128
    config = PosteriorConfig(sampler="ula", step_size=step_size, steps=steps)
    exact_law = power_posterior(model, x, 1.0)
    chain_law = ula_law(model, x, 1.0, step_size, steps)
    exact_value = _langevin_target(model, x, exact_law, not contrastive)
    expected = gradient(model, exact_value)
    # The same expectation under the chains' actual law, minus the exact: ULA bias + burn-in.
    chain_value = _langevin_target(model, x, chain_law, not contrastive)
    allowance = (gradient(model, chain_value) - expected).abs()
    value_allowance = abs((chain_value - exact_value).item())
    # Fisher's identity: the expectation under the exact posterior is -grad log p(x).
    torch.testing.assert_close(expected, _minus_evidence_gradient(model, x))

    xs = x.repeat(copies, 1)
    result = replicate_gradients(
        model,
        lambda rng: langevin_loss(model, xs, config, rng, contrastive).loss,
        range(2000, 2016),
    )
    assert (allowance < result.se).all()
    _assert_within(model, result.mean, result.se, expected, allowance, 4.5)
    assert abs(result.value - exact_value.item()) < 4.5 * result.value_se + value_allowance


@pytest.mark.statistical
def test_automala_langevin_loss_gradient_is_minus_the_evidence_gradient(float64) -> None:
    """The Langevin loss with autoMALA chains (starting step 0.5, 50 iterations, two of them
    unadjusted; 1,024 chains = the four data items x 256): ``E[grad L] = -grad log p(x)``.

    autoMALA is exact at stationarity; its burn-in from prior draws was measured offline with
    this configuration and 64 replicates (seeds 5000-5063): every entry within 1.4 of their SEs
    of the exact gradient, so |bias| < 1.4 SE of this test (a 2-SE upper bound). R = 8
    replicates (seeds 3000-3007); tolerance 5 SE per entry (t with 7 degrees of freedom).
    """
    model, x = _model_and_data()
    config = PosteriorConfig(sampler="automala", step_size=0.5, steps=50)
    expected = _minus_evidence_gradient(model, x)
    xs = x.repeat(256, 1)
    result = replicate_gradients(
        model, lambda rng: langevin_loss(model, xs, config, rng).loss, range(3000, 3008)
    )
    _assert_within(model, result.mean, result.se, expected, torch.zeros_like(expected), 5.0)


# ---------------------------------------------------------------------------------------------
# 4.3 thermodynamic integration


def _thermodynamic_target(
    model: TKAM, x: Tensor, laws: list[Gaussians], temps: Tensor, rule: str, exact: bool
) -> Tensor:
    """``E[L_TI]`` with population laws ``laws[k]`` at ``temps[k]`` (``laws[0]`` the prior):
    ``-[sum_k w_k E_k[l] + E_{t=1}[log p~] - E_p[log p~]]`` (or ``- log Z`` for the last two)."""
    weights = rule_weights(temps, rule)
    integral = sum(w * expected_log_likelihood(model, x, law) for w, law in zip(weights, laws))
    positive = expected_log_prior(model, laws[-1])
    if exact:
        return -(integral + positive).mean() + model.prior.log_normaliser()
    return -(integral + positive - expected_log_prior(model, laws[0])).mean()


@pytest.mark.statistical
@pytest.mark.parametrize(
    ("rule", "contrastive"),
    [("reference", True), ("trapezoid", True), ("trapezoid", False)],
    ids=["reference", "trapezoid", "trapezoid-exact"],
)
def test_thermodynamic_loss_at_fixed_temperatures(float64, rule, contrastive) -> None:
    """``E[grad L_TI] = -[sum_k w_k E_{t_k}[grad l] + E_{t=1}[grad log p~] - E_p[grad log p~]]``
    and ``E[L_TI]`` = the same without gradients, with the rule's weights ``w_k`` (written out
    independently of the library), ``t_k = k / 4`` (N_t = 4, p = 1) and ``E_0`` under the prior.

    Four populations of 320 chains (the four data items x 80), ULA h = 0.01 for 300 steps,
    replica exchange after every step (per datum); R = 12 replicates (seeds 4000-4011). The
    allowance is twice the closed-form bias of ULA without exchange (O(h) and burn-in, exact per
    population via :func:`~tests.losses.conjugate.ula_law`): exchanges move the populations'
    laws by the same order (measured at h = 0.02 with 150 steps and 32 replicates: the mean
    gradient was within 1.9 SE of the no-exchange law's, whose own bias reached 3.9 SE); the bias
    is asserted below 1.5 SE. 1280 = 4 x 320 chains is divisible by N_t + 1 = 5 as well, so a
    loss passing all N_t + 1 temperatures to the sampler runs (and fails here) instead of
    raising. Tolerance 4.5 SE + allowance per entry and for the value.
    """
    model, x = _model_and_data()
    num_temps, copies, step_size, steps = 4, 80, 0.01, 300
    temps = torch.arange(num_temps + 1, dtype=torch.float64) / num_temps
    exact = not contrastive
    exact_laws = [power_posterior(model, x, float(t)) for t in temps]
    chain_laws = [exact_laws[0]] + [
        ula_law(model, x, float(t), step_size, steps) for t in temps[1:]
    ]
    exact_value = _thermodynamic_target(model, x, exact_laws, temps, rule, exact)
    chain_value = _thermodynamic_target(model, x, chain_laws, temps, rule, exact)
    expected = gradient(model, exact_value)
    allowance = 2 * (gradient(model, chain_value) - expected).abs()
    value_allowance = 2 * abs((chain_value - exact_value).item())

    posterior = PosteriorConfig(sampler="ula", step_size=step_size, steps=steps)
    config = ThermodynamicConfig(
        num_temps=num_temps,
        p_start=1.0,
        p_end=1.0,
        integral=rule,
        replica_exchange_frequency=1,
        swap_per_chain=True,
    )
    xs = x.repeat(copies, 1)
    swap_rates = []

    def loss(rng: torch.Generator) -> Tensor:
        out = thermodynamic_loss(model, xs, posterior, config, 1, 10, rng, contrastive)
        swap_rates.append(out.metrics["swap_rate"])
        return out.loss

    result = replicate_gradients(model, loss, range(4000, 4012))
    assert 0.3 < sum(swap_rates) / len(swap_rates) < 1.0  # exchanges happen
    assert (allowance < 3 * result.se).all()
    _assert_within(model, result.mean, result.se, expected, allowance, 4.5)
    assert abs(result.value - exact_value.item()) < 4.5 * result.value_se + value_allowance


@pytest.mark.parametrize(
    ("rule", "power", "contrastive"),
    [("reference", 3.0, True), ("trapezoid", 8.0, True), ("reference", 10.0, False)],
    ids=["reference-p3", "trapezoid-p8", "reference-p10-exact"],
)
def test_thermodynamic_loss_value_with_unequally_spaced_temperatures(
    float64, monkeypatch, rule, power, contrastive
) -> None:
    """The loss's value and gradient with the packaged configs' powers (p != 1: temperatures
    ``t_k = (k / 4)^p`` packed near 0, intervals of unequal width), against the closed form
    ``E[L_TI]`` with the rule's weights for those intervals.

    The sampler is replaced by exact draws from each power posterior (closed-form Gaussians),
    so the expected value has no sampler bias: the test checks which temperatures the loss hands
    the sampler, which population meets which weight and the rule's interval widths. 24
    replicates (seeds 5000-5023) of 4 x 250 chains; tolerance 4.5 SE for the value and every gradient entry.
    The same draws scored with equally spaced temperatures (p = 1) are far outside.
    """
    model, x = _model_and_data()
    num_temps, copies = 4, 250
    temps = (torch.arange(num_temps + 1, dtype=torch.float64) / num_temps) ** power
    xs = x.repeat(copies, 1)
    handed: list[Tensor] = []

    def exact_draws(z0: Tensor, target, given: Tensor, rng: torch.Generator, **options):
        handed.append(given.detach().clone())
        draws = []
        for t in given.tolist():
            law = power_posterior(model, xs, t)
            noise = torch.randn(len(xs), LATENT, generator=rng, dtype=torch.float64)
            draws.append(law.mean + noise @ torch.linalg.cholesky(law.covariance).T)
        return TemperedRun(torch.cat(draws), 0.0, None)

    monkeypatch.setattr("tkam.losses.chains.tempered_langevin", exact_draws)
    exact = not contrastive
    laws = [power_posterior(model, x, float(t)) for t in temps]
    exact_value = _thermodynamic_target(model, x, laws, temps, rule, exact)
    expected = gradient(model, exact_value)

    posterior = PosteriorConfig(sampler="ula", step_size=0.01, steps=1)
    config = ThermodynamicConfig(num_temps=num_temps, p_start=power, p_end=power, integral=rule)

    def loss(rng: torch.Generator) -> Tensor:
        return thermodynamic_loss(model, xs, posterior, config, 3, 10, rng, contrastive).loss

    result = replicate_gradients(model, loss, range(5000, 5024))
    assert all(torch.allclose(given, temps[1:]) for given in handed)
    _assert_within(model, result.mean, result.se, expected, torch.zeros_like(expected), 4.5)
    assert abs(result.value - exact_value.item()) < 4.5 * result.value_se
    even = torch.arange(num_temps + 1, dtype=torch.float64) / num_temps
    even_value = _thermodynamic_target(model, x, laws, even, rule, exact).item()
    assert abs(result.value - even_value) > 20 * result.value_se


# ---------------------------------------------------------------------------------------------
# fused kernels on a loss


@requires_native
@pytest.mark.parametrize("loss", ["importance", "langevin", "thermodynamic"])
def test_fused_kernels_give_the_eager_loss_and_gradients(loss) -> None:
    """The tiny T-KAM built with ``kernel = "fused"`` and ``"eager"`` (prior and generator) from
    the same seed: same parameters, and the same loss value (relative 1e-5) and parameter
    gradients (1e-4 of each tensor's largest entry) in float32 from the same random stream:
    the kernels differ by rounding only."""
    changes: dict = {}
    if loss == "langevin":
        changes["posterior"] = {"sampler": "ula", "steps": 5, "step_size": 0.01}
    elif loss == "thermodynamic":
        changes["posterior"] = {"sampler": "ula", "steps": 5, "step_size": 0.01}
        changes["thermodynamic"] = {"num_temps": 3}
    x = torch.rand(6, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    results = {}
    for kernel in ("fused", "eager"):
        config = tiny_config(prior={"kernel": kernel}, generator={"kernel": kernel}, **changes)
        assert config.train.loss == loss
        model = TKAM.from_config(config, (1, 8, 8), torch.Generator().manual_seed(0))
        layers = [m for m in model.modules() if isinstance(m, UnivariateLayer)]
        assert layers and all(layer.kernel == kernel for layer in layers)
        out = compute_loss(model, x, config, torch.Generator().manual_seed(2), 1, 10)
        out.loss.backward()
        params = dict(model.named_parameters())
        results[kernel] = (
            out.loss.detach(),
            {n: p.detach().clone() for n, p in params.items()},
            {n: p.grad for n, p in params.items() if p.grad is not None},
        )
    (fused_loss, fused_params, fused_grads), (eager_loss, eager_params, eager_grads) = (
        results["fused"],
        results["eager"],
    )
    assert fused_loss.dtype == torch.float32
    for name, value in fused_params.items():
        torch.testing.assert_close(value, eager_params[name], rtol=0, atol=0, msg=name)
    torch.testing.assert_close(fused_loss, eager_loss, rtol=1e-5, atol=0)
    assert fused_grads.keys() == eager_grads.keys() and len(fused_grads) > 0
    assert any(g.abs().max() > 0 for g in fused_grads.values())
    for name, grad in fused_grads.items():
        scale = float(eager_grads[name].abs().max().clamp(min=1e-6))
        torch.testing.assert_close(grad, eager_grads[name], rtol=0, atol=1e-4 * scale, msg=name)
