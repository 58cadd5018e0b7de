"""The importance-sampling loss (maths 4.1 and 10 items 3-4)."""

from __future__ import annotations

import math

import pytest
import torch

from tkam.config import config_from_dict, config_to_dict
from tkam.losses import compute_loss, importance_loss
from tkam.model import TKAM
from tkam.posterior import importance_resample


def _spec_test_config(mixture: bool, contrastive: bool = True):
    # Spec section 10: P=5, Q=10, Chebyshev prior (degree 3, tau=1.1 fixed, ebm on (0, 1)),
    # RBF KAN generator widths (10, 10), B=10, N=5, 32x32 data.
    return config_from_dict(
        {
            "prior": {
                "widths": [5, 10],
                "basis": "chebyshev",
                "spline_degree": 3,
                "init_tau": 1.1,
                "tau_trainable": False,
                "reference": "ebm",
                "grid_range": [0.0, 1.0],
                "mixture": mixture,
            },
            "generator": {"widths": [10, 10], "basis": "rbf", "grid_size": 5},
            "train": {"batch_size": 10, "importance_samples": 5, "contrastive": contrastive},
        }
    )


@pytest.mark.parametrize("mixture", [False, True])
@pytest.mark.parametrize("contrastive", [True, False])
def test_loss_gradients_are_finite_and_nonzero(mixture: bool, contrastive: bool) -> None:
    config = _spec_test_config(mixture, contrastive)
    model = TKAM.from_config(config, (1, 32, 32), rng=torch.Generator().manual_seed(0))
    x = torch.rand(10, 1, 32, 32)
    out = importance_loss(model, x, 5, torch.Generator().manual_seed(1), contrastive=contrastive)
    assert out.loss.shape == () and torch.isfinite(out.loss)
    out.loss.backward()
    for part in (model.prior, model.generator):
        grads = [p.grad for p in part.parameters() if p.requires_grad]
        assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)
        assert any(g.abs().sum() > 0 for g in grads)
    assert 1.0 <= out.metrics["ess"] <= 5.0


def test_log_likelihood_matrix_shape_on_prior_samples() -> None:
    model = TKAM.from_config(
        _spec_test_config(False), (1, 32, 32), rng=torch.Generator().manual_seed(0)
    )
    z = model.prior.sample(5, torch.Generator().manual_seed(2))
    images = model.decode(z)
    assert images.shape == (5, 1, 32, 32)
    matrix = model.likelihood.log_likelihood_matrix(torch.rand(10, 1, 32, 32), images)
    assert matrix.shape == (10, 5) and torch.isfinite(matrix).all()


def test_loss_value_matches_the_formula_without_resampling() -> None:
    # With threshold -> 0 nothing is resampled, so the loss is
    # -1/B sum_b sum_n w_bn [log p(z_n) + l_bn] + 1/N sum_n log p(z^_n), recomputed here.
    torch.manual_seed(0)
    config = _spec_test_config(False)
    model = TKAM.from_config(config, (1, 8, 8), rng=torch.Generator().manual_seed(0)).double()
    x = torch.rand(4, 1, 8, 8, dtype=torch.float64)
    out = importance_loss(model, x, 6, torch.Generator().manual_seed(5), threshold=1e-9)
    g = torch.Generator().manual_seed(5)
    z = model.prior.sample(6, g)
    pred = model.likelihood.noised(model.decode(z), g)
    ll = model.likelihood.log_likelihood_matrix(x, pred)
    sir = importance_resample(ll, 1e-9, "residual", g)  # draws from g like the loss does
    assert not sir.resampled.any()
    w = torch.softmax(ll, dim=1)
    neg = model.prior.sample(6, g)
    expected = -(w * (model.prior.log_prior(z)[None] + ll)).sum(1).mean()
    expected = expected + model.prior.log_prior(neg).mean()
    torch.testing.assert_close(out.loss, expected)


def test_proposal_negatives_reuse_the_proposals_exactly() -> None:
    # negatives="proposals": the loss is -1/B sum_b sum_n w_bn [log p(z_n) + l_bn]
    # + 1/N sum_n log p(z_n), the same proposals in both phases, and no second prior draw.
    config = _spec_test_config(False)
    model = TKAM.from_config(config, (1, 8, 8), rng=torch.Generator().manual_seed(0)).double()
    x = torch.rand(4, 1, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    rng = torch.Generator().manual_seed(5)
    out = importance_loss(model, x, 6, rng, threshold=1e-9, negatives="proposals")
    g = torch.Generator().manual_seed(5)
    z = model.prior.sample(6, g)
    ll = model.likelihood.log_likelihood_matrix(x, model.likelihood.noised(model.decode(z), g))
    importance_resample(ll, 1e-9, "residual", g)
    assert torch.equal(rng.get_state(), g.get_state())  # nothing more was drawn
    w = torch.softmax(ll, dim=1)
    log_prior = model.prior.log_prior(z)
    expected = -(w * (log_prior[None] + ll)).sum(1).mean() + log_prior.mean()
    torch.testing.assert_close(out.loss, expected)
    # The prior's gradient is sum_n (mean_b w_bn - 1/N) grad log p(z_n): zero when the
    # posterior weights are uniform, as the two phases then cancel exactly.
    out.loss.backward()
    assert any(p.grad.abs().sum() > 0 for p in model.prior.parameters() if p.requires_grad)
    uniform = TKAM.from_config(config, (1, 8, 8), rng=torch.Generator().manual_seed(0)).double()
    uniform.likelihood.std = 1e6  # flat likelihood: equal weights for every proposal
    out = importance_loss(
        uniform, x, 6, torch.Generator().manual_seed(5), threshold=1e-9, negatives="proposals"
    )
    out.loss.backward()
    for p in uniform.prior.parameters():
        if p.requires_grad:
            torch.testing.assert_close(p.grad, torch.zeros_like(p.grad), atol=1e-9, rtol=0)


def test_unknown_negatives_is_a_config_error_naming_the_key() -> None:
    from tests.helpers import tiny_config
    from tkam.config import ConfigError

    with pytest.raises(ConfigError, match=r"train\.negatives"):
        tiny_config(train={"negatives": "recycled"})
    assert tiny_config(train={"negatives": "proposals"}).train.negatives == "proposals"


def test_the_reference_compat_switches_reach_the_resampler(monkeypatch) -> None:
    # train.compat_weights (departures A3) and train.compat_residual (departures A8) from the
    # config to the SIR step.
    seen = []

    def spy(*args, **kwargs):
        seen.append(kwargs)
        return importance_resample(*args, **kwargs)

    monkeypatch.setattr("tkam.losses.importance.importance_resample", spy)
    for weights, residual in [(False, False), (True, False), (False, True)]:
        config = _spec_test_config(False)
        train = {"compat_weights": weights, "compat_residual": residual}
        config = config_from_dict(
            {**config_to_dict(config), "train": {**config_to_dict(config)["train"], **train}}
        )
        model = TKAM.from_config(config, (1, 32, 32), rng=torch.Generator().manual_seed(0))
        compute_loss(model, torch.rand(10, 1, 32, 32), config, torch.Generator().manual_seed(1))
        assert seen[-1] == {"compat": weights, "compat_residual": residual}


def test_compat_weights_on_a_fixed_example() -> None:
    # One row, no resampling (ESS 1.92 > 0.1 * 4): standard SIR keeps w = (0.7, 0.1, 0.1, 0.1);
    # the reference code's weights are softmax(w) = e^w / sum e^w.
    w = [0.7, 0.1, 0.1, 0.1]
    log_lik = torch.tensor([[math.log(v) for v in w]])
    rng = torch.Generator().manual_seed(0)
    standard = importance_resample(log_lik, 0.1, "residual", rng)
    compat = importance_resample(log_lik, 0.1, "residual", rng, compat=True)
    torch.testing.assert_close(standard.weights, torch.tensor([w]))
    total = sum(math.exp(v) for v in w)
    torch.testing.assert_close(compat.weights, torch.tensor([[math.exp(v) / total for v in w]]))


def test_generator_gradients_skip_unused_proposals_exactly(monkeypatch) -> None:
    # Proposals no datum uses get exactly zero loss weight; the generator's backward skips them
    # (ops.ActiveRowsMatmul). Its gradients equal the plain matmul's within float64 rounding.
    import tkam.kan.ops as ops

    config = _spec_test_config(False)
    x = torch.rand(6, 1, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(1))

    def gradients() -> tuple[list[torch.Tensor], float]:
        model = TKAM.from_config(config, (1, 8, 8), rng=torch.Generator().manual_seed(0))
        model = model.double()
        model.likelihood.std = 0.05  # sharp weights: most proposals unused
        out = importance_loss(model, x, 40, torch.Generator().manual_seed(4))
        out.loss.backward()
        return [p.grad.clone() for p in model.generator.parameters()], out.metrics["proposals_used"]

    active, used = gradients()
    assert used <= 0.5 * 40  # the active-row path runs
    monkeypatch.setattr(ops, "contract", lambda x, w: x @ w)
    plain, _ = gradients()
    for a, p in zip(active, plain):
        torch.testing.assert_close(a, p, rtol=1e-10, atol=1e-12)
