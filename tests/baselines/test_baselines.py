"""The VAE and latent-EBM baselines: losses, training through the trainer, sampling, IWAE."""

from __future__ import annotations

import csv
import math

import pytest
import torch

from tests.helpers import tiny_config
from tkam.baselines import VAE, LatentEBM
from tkam.build import build_model
from tkam.config import ConfigError, config_to_dict, load_config
from tkam.losses import compute_loss, posterior_samples, posterior_settings
from tkam.train import fit
from tkam.train.loop import make_optimizer, train_step

SHAPE = (1, 8, 8)
KINDS = ("vae", "lebm")


def _config(kind: str, **model):
    # Few Langevin steps keep the latent EBM quick; the structure is Pang's.
    extra = {"prior_steps": 5, "posterior_steps": 3} if kind == "lebm" else {}
    return tiny_config(model={"kind": kind, **extra, **model})


@pytest.mark.parametrize("kind", KINDS)
def test_loss_is_finite_with_finite_nonzero_gradients(kind: str) -> None:
    config = _config(kind)
    model = build_model(config, SHAPE)
    assert isinstance(model, VAE if kind == "vae" else LatentEBM)
    assert not hasattr(model.prior, "quadrature")
    x = torch.rand(6, *SHAPE)
    out = compute_loss(model, x, config, torch.Generator().manual_seed(0))
    assert out.loss.dim() == 0 and torch.isfinite(out.loss)
    out.loss.backward()
    named = {n: p.grad for n, p in model.named_parameters()}
    assert all(g is not None and torch.isfinite(g).all() for g in named.values())
    # Both the generator and the baseline's own part (encoder / energy) learn.
    own = "encoder" if kind == "vae" else "prior.energy_net"
    assert any(float(g.abs().sum()) > 0 for n, g in named.items() if n.startswith("generator"))
    assert any(float(g.abs().sum()) > 0 for n, g in named.items() if n.startswith(own))


def test_cnn_encoder_mirrors_the_generator() -> None:
    config = load_config(
        "svhn-head", ["model.kind=vae", "train.batch_size=4", "thermodynamic.num_temps=1"]
    )
    model = build_model(config, (3, 32, 32))
    convs = [m for m in model.encoder.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.kernel_size[0] for c in convs] == [4, 4, 4, 4]
    assert [c.stride[0] for c in convs] == [2, 2, 2, 1]
    assert [c.out_channels for c in convs] == [32, 64, 128, 128]
    mean, log_variance = model.encoder(torch.rand(2, 3, 32, 32))
    assert mean.shape == log_variance.shape == (2, 81)
    out = compute_loss(model, torch.rand(2, 3, 32, 32), config, torch.Generator().manual_seed(0))
    assert torch.isfinite(out.loss)


def test_lebm_prior_sampling_works_without_grad_and_moves_from_the_start() -> None:
    config = _config("lebm")
    model = build_model(config, SHAPE)
    with torch.no_grad():
        z = model.prior.sample(8, torch.Generator().manual_seed(0))
    z0 = model.prior.initial(8, torch.Generator().manual_seed(0))
    assert z.shape == (8, 7) and not z.requires_grad
    assert not torch.allclose(z, z0)
    assert model.update_grids(z) is True  # KAN generator grids update; the prior has none
    assert model.update_prior_grid is False


@pytest.mark.parametrize("kind", KINDS)
def test_trains_through_fit_and_samples_from_the_cli(kind: str, tmp_path) -> None:
    import numpy as np

    from tkam.cli import main

    run_dir = tmp_path / "run"
    config = _config(kind)
    config = tiny_config(
        model=config_to_dict(config.model),
        train={"max_steps": 4, "log_every": 2, "num_plot_samples": 4},
    )
    fit(config, run_dir, progress=False)
    with (run_dir / "loss.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert rows and all(math.isfinite(float(r["Train MLE Loss"])) for r in rows)
    assert "kind = " + f'"{kind}"' in (run_dir / "config.toml").read_text()
    assert not (run_dir / "prior.png").exists()
    out = tmp_path / "s.npz"
    assert main(["sample", str(run_dir), "--num", "4", "--out", str(out)]) == 0
    samples = np.load(out)["samples"]
    assert samples.shape == (4, *SHAPE) and np.isfinite(samples).all()


def test_iwae_with_one_sample_is_the_monte_carlo_elbo() -> None:
    torch.manual_seed(0)
    model = build_model(_config("vae"), SHAPE).double()
    x = torch.rand(5, *SHAPE, dtype=torch.float64)
    with torch.no_grad():
        iwae = model.iwae_bound(x, 1, torch.Generator().manual_seed(3))
        elbo = model.elbo(x, torch.Generator().manual_seed(3), analytic_kl=False, noised=False)
    torch.testing.assert_close(iwae, elbo, rtol=1e-12, atol=1e-10)
    # The running log-sum-exp over chunks (2 samples each here) is the log-mean-exp of all.
    with torch.no_grad():
        chunked = model.iwae_bound(x, 12, torch.Generator().manual_seed(4), chunk_size=10)
        rng = torch.Generator().manual_seed(4)
        weights = torch.cat([model._log_weights(x, 2, rng, noised=False) for _ in range(6)])
    torch.testing.assert_close(chunked, torch.logsumexp(weights, 0) - math.log(12))


def test_iwae_bound_increases_with_k_on_a_trained_vae() -> None:
    # KL weight 1: the decoder's own sigma, so the posterior is narrow and the bound's gaps wide.
    config = _config("vae", kl_weight=1.0)
    model = build_model(config, SHAPE)
    optimizer = make_optimizer(model, 1e-2)
    rng = torch.Generator().manual_seed(0)
    x = torch.rand(20, *SHAPE, generator=torch.Generator().manual_seed(1)).round()
    for step in range(1, 31):
        train_step(model, optimizer, x, config, rng, step)
    with torch.no_grad():
        bounds = [
            float(model.iwae_bound(x, k, torch.Generator().manual_seed(7)).mean())
            for k in (1, 10, 100)
        ]
        # The analytic-KL ELBO estimates the same K = 1 bound with less variance.
        elbo = float(model.elbo(x, torch.Generator().manual_seed(7), noised=False).mean())
    assert bounds[0] < bounds[1] < bounds[2], bounds
    assert abs(elbo - bounds[0]) < abs(bounds[2] - bounds[0]) + 1.0


def test_unknown_model_kind_is_a_config_error_naming_the_key() -> None:
    with pytest.raises(ConfigError, match=r"model\.kind"):
        tiny_config(model={"kind": "gan"})
    with pytest.raises(ConfigError, match=r"model\.energy_hidden"):
        tiny_config(model={"energy_hidden": 0})


def test_default_model_is_tkam_and_baselines_ignore_the_prior_width() -> None:
    assert tiny_config().model.kind == "tkam"
    with pytest.raises(ConfigError, match="generator.widths"):
        tiny_config(prior={"widths": [3, 5]})
    config = tiny_config(prior={"widths": [3, 5]}, model={"kind": "vae"})
    assert build_model(config, SHAPE).prior.latent_shape == (7,)


@pytest.mark.parametrize(("energy_rate", "expected"), [(2e-5, 2e-5), (0.0, 1e-3)])
def test_lebm_energy_net_has_its_own_adam_rate(energy_rate: float, expected: float) -> None:
    model = build_model(_config("lebm", energy_learning_rate=energy_rate), SHAPE)
    optimizer = make_optimizer(model, 1e-3)
    rates = {id(p): g["lr"] for g in optimizer.param_groups for p in g["params"]}
    assert len(rates) == len(list(model.parameters()))
    assert all(rates[id(p)] == expected for p in model.prior.parameters())
    assert all(rates[id(p)] == 1e-3 for p in model.generator.parameters())
    with pytest.raises(ConfigError, match=r"model\.energy_learning_rate"):
        tiny_config(model={"energy_learning_rate": -1.0})


def test_vae_kl_weight_scales_the_closed_form_kl() -> None:
    # beta-VAE: with the same noise, E_q log p(x|z) - beta KL is linear in beta; the slope is
    # minus the closed-form KL of N(mean, var) against N(0, I).
    model = build_model(_config("vae"), SHAPE).double()
    x = torch.rand(4, *SHAPE, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        values = {
            b: model.elbo(x, torch.Generator().manual_seed(6), kl_weight=b) for b in (0.25, 1)
        }
        mean, log_variance = model.encoder(x)
    kl = 0.5 * (mean.square() + log_variance.exp() - 1.0 - log_variance).sum(-1)
    torch.testing.assert_close(values[0.25] - values[1], 0.75 * kl)
    assert (kl > 0).all()
    with pytest.raises(ValueError, match="closed-form"):
        model.elbo(x, kl_weight=0.5, analytic_kl=False)
    assert _config("vae", kl_weight=0.5).model.kl_weight == 0.5
    with pytest.raises(ConfigError, match=r"model\.kl_weight"):
        tiny_config(model={"kind": "vae", "kl_weight": 0.0})


def test_adam_beta1_reaches_the_optimiser() -> None:
    # Pang et al.'s latent EBM trains with Adam beta1 = 0.5.
    config = _config("lebm")
    model = build_model(config, SHAPE)
    assert {g["betas"] for g in make_optimizer(model, 1e-3).param_groups} == {(0.9, 0.999)}
    assert {g["betas"] for g in make_optimizer(model, 1e-3, 0.5).param_groups} == {(0.5, 0.999)}
    assert tiny_config(train={"adam_beta1": 0.5}).train.adam_beta1 == 0.5
    with pytest.raises(ConfigError, match=r"train\.adam_beta1"):
        tiny_config(train={"adam_beta1": 1.0})


def test_vae_kl_weight_is_the_gaussian_decoders_scale() -> None:
    # beta * [E_q log N(x; g, beta sigma^2) - KL] = E_q log N(x; g, sigma^2) - beta KL (constants
    # dropped): the weighted bound of the config is the ELBO of the decoder with std sigma sqrt(beta).
    weighted = build_model(_config("vae", kl_weight=4.0), SHAPE).double()
    plain = build_model(_config("vae", kl_weight=1.0), SHAPE).double()
    assert weighted.likelihood.std == pytest.approx(2 * plain.likelihood.std)
    assert weighted.kl_weight == 1.0
    plain.load_state_dict(weighted.state_dict())
    x = torch.rand(4, *SHAPE, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        folded = weighted.elbo(x, torch.Generator().manual_seed(6))
        direct = plain.elbo(x, torch.Generator().manual_seed(6), kl_weight=4.0)
    torch.testing.assert_close(4.0 * folded, direct)


def test_lebm_posterior_chains_start_from_the_gaussian_base_not_from_prior_samples() -> None:
    # Pang et al. start both chains from N(0, I). An energy with a steep slope along z_1 moves the
    # short-run prior samples far out; posterior chains must still start at N(0, I), which one
    # tiny Langevin step barely moves (seed 0; the sample means' standard error is ~0.03).
    config = _config("lebm", prior_steps=20, posterior_steps=1, posterior_step_size=1e-4)
    model = build_model(config, SHAPE)
    with torch.no_grad():
        for layer in model.prior.energy_net:
            if isinstance(layer, torch.nn.Linear):
                layer.weight.zero_()
                layer.bias.zero_()
        model.prior.energy_net[0].weight[0, 0] = 1.0
        model.prior.energy_net[2].weight[0, 0] = 1.0
        model.prior.energy_net[-1].weight[0, 0] = 20.0  # E: slope 20 along z_1 > 0
    rng = torch.Generator().manual_seed(0)
    prior = model.prior.sample(1000, rng)
    assert prior[:, 0].mean() > 1.0  # the energy pushed the prior samples along z_1
    start = model.prior.chain_start(1000, rng)
    assert abs(float(start.mean())) < 0.1 and abs(float(start.std()) - 1.0) < 0.1
    x = torch.rand(1000, *SHAPE, generator=torch.Generator().manual_seed(1))
    posterior = posterior_samples(model, x, posterior_settings(config), rng)
    assert abs(float(posterior[:, 0].mean())) < 0.15
    # T-KAM's chains start from exact prior samples (maths 4.2): the same draws as sample().
    tkam = build_model(tiny_config(), SHAPE)
    a = tkam.prior.chain_start(5, torch.Generator().manual_seed(3))
    b = tkam.prior.sample(5, torch.Generator().manual_seed(3))
    torch.testing.assert_close(a, b)
