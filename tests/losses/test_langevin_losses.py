"""Langevin and thermodynamic losses (maths 4.2-4.3 and 10 items 4 and 8)."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
import torch

from tests.helpers import tiny_config
from tkam.config import PosteriorConfig
from tkam.losses import compute_loss, posterior_sampler
from tkam.losses.chains import chain_target
from tkam.model import TKAM
from tkam.posterior import ULA, AutoMALA, StepSizeMemory, on_rows, tempered_init


@pytest.mark.parametrize(
    "changes",
    [
        {"posterior": {"sampler": "ula", "steps": 3}},
        {"posterior": {"sampler": "automala", "steps": 4}},
        {"posterior": {"sampler": "ula", "steps": 3}, "train": {"contrastive": False}},
        {"posterior": {"sampler": "ula", "steps": 3}, "thermodynamic": {"num_temps": 4}},
        {
            "posterior": {"sampler": "ula", "steps": 3},
            "thermodynamic": {"num_temps": 4, "integral": "trapezoid", "swap_per_chain": False},
        },
        {"prior": {"mixture": True}, "posterior": {"sampler": "ula", "steps": 3}},
        {"posterior": {"sampler": "ula", "steps": 3, "space": "noise"}},
        {
            "prior": {"independent_uniforms": False},
            "posterior": {"sampler": "automala", "steps": 4, "space": "noise"},
        },
        {
            "posterior": {"sampler": "ula", "steps": 3, "space": "noise"},
            "thermodynamic": {"num_temps": 4},
        },
    ],
)
def test_langevin_and_thermodynamic_losses_give_gradients(changes) -> None:
    config = tiny_config(**changes)
    assert config.train.loss == ("thermodynamic" if "thermodynamic" in changes else "langevin")
    model = TKAM.from_config(config, (1, 8, 8), rng=torch.Generator().manual_seed(0))
    x = torch.rand(6, 1, 8, 8)
    out = compute_loss(model, x, config, torch.Generator().manual_seed(1), step=3, total_steps=10)
    assert torch.isfinite(out.loss)
    out.loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(float(g.abs().sum()) > 0 for g in grads)
    if "thermodynamic" in changes:
        assert 0.0 <= out.metrics["swap_rate"] <= 1.0
        assert out.metrics["power"] > 0


def test_deep_prior_model_trains_with_langevin() -> None:
    config = tiny_config(
        prior={
            "widths": [5, 6, 1],
            "basis": "fourier",
            "grid_size": 3,
            "reference": "ebm",
            "langevin_steps": 3,
        },
        generator={"widths": [5, 16]},
        posterior={"sampler": "ula", "steps": 2},
    )
    assert config.train.loss == "langevin"
    model = TKAM.from_config(config, (1, 8, 8), rng=torch.Generator().manual_seed(0))
    out = compute_loss(model, torch.rand(4, 1, 8, 8), config, torch.Generator().manual_seed(1))
    out.loss.backward()
    assert torch.isfinite(out.loss)


def test_tempered_state_permutation_equals_reevaluation() -> None:
    # Replica exchange swaps chains of the same datum between temperatures; with the prior and
    # likelihood parts cached apart, permuting the cache must equal evaluating at the new places.
    config = tiny_config()
    model = TKAM.from_config(config, (1, 8, 8), rng=torch.Generator().manual_seed(0)).double()
    batch, temps = 3, 2
    x = torch.rand(batch, 1, 8, 8, dtype=torch.float64).repeat(temps, 1, 1, 1)
    z = model.prior.sample(batch * temps, torch.Generator().manual_seed(1)).double()
    index = torch.tensor([3, 1, 5, 0, 4, 2])  # data points 0 and 2 swap temperatures
    target = model.tempered_target(x)
    permuted = tempered_init(z, target).permute(index)
    direct = tempered_init(z[index], target)
    for name, a, b in zip(permuted._fields, permuted, direct):
        torch.testing.assert_close(a, b, msg=name)


class _StepSpy:
    """Wraps tempered_langevin, recording the step sizes each call starts from."""

    def __init__(self, function) -> None:
        self.function, self.starts, self.adapted = function, [], []

    def __call__(self, *args, **kwargs):
        self.starts.append(kwargs["step_size"])
        run = self.function(*args, **kwargs)
        self.adapted.append(run.step_size)
        return run


@pytest.mark.parametrize("changes", [{}, {"thermodynamic": {"num_temps": 3}}])
def test_automala_step_sizes_persist_across_calls(monkeypatch, changes) -> None:
    # Spec 4.2: the second call's chains start from the step sizes the first call adapted (not
    # from posterior.step_size again); without a memory every call starts afresh.
    config = tiny_config(posterior={"sampler": "automala", "steps": 3}, **changes)
    model = TKAM.from_config(config, (1, 8, 8), rng=torch.Generator().manual_seed(0))
    spy = _StepSpy(importlib.import_module("tkam.losses.chains").tempered_langevin)
    monkeypatch.setattr("tkam.losses.chains.tempered_langevin", spy)
    x, rng = torch.rand(6, 1, 8, 8), torch.Generator().manual_seed(1)
    memory = StepSizeMemory()
    for _ in range(3):
        compute_loss(model, x, config, rng, step=1, total_steps=10, memory=memory)
    chains = 6 * (3 if changes else 1)
    assert spy.starts[0] == config.posterior.step_size
    for start, previous in zip(spy.starts[1:], spy.adapted):
        assert start.shape == (chains,) and torch.equal(start, previous)
    assert not torch.equal(spy.adapted[0], torch.full((chains,), config.posterior.step_size))
    compute_loss(model, x, config, rng, step=1, total_steps=10)
    assert spy.starts[-1] == config.posterior.step_size


def test_posterior_sampler_maps_each_config_name_to_its_sampler() -> None:
    # The one place that turns posterior.sampler into the sampler tempered_langevin takes.
    settings = {"step_size_bounds": (1e-3, 2.0), "change_rate": 1.5, "num_unadjusted": 3}
    assert posterior_sampler(PosteriorConfig(sampler="ula")) == ULA()
    # importance: the deep prior's Langevin loss runs ULA.
    assert posterior_sampler(PosteriorConfig(sampler="importance")) == ULA()
    automala = posterior_sampler(PosteriorConfig(sampler="automala", **settings))
    assert automala == AutoMALA(**settings) and automala.exchange_from == 3


@pytest.mark.parametrize("sampler", ["ula", "automala"])
@pytest.mark.parametrize("temps", [1, 3])
def test_posterior_chains_stay_on_the_priors_support_unless_told_otherwise(sampler, temps) -> None:
    """``ebm`` reference: nothing in the log-prior holds the chains on the domain, and steps of
    0.05 carry them off it within 10 steps when ``posterior.reflect = false``."""
    from tkam.losses.chains import run_chains
    from tkam.posterior import temperatures

    changes = {"prior": {"reference": "ebm"}, "posterior": {"sampler": sampler, "steps": 10}}
    config = tiny_config(**changes)
    model = TKAM.from_config(config, (1, 8, 8), rng=torch.Generator().manual_seed(0))
    x = torch.rand(4 * temps, 1, 8, 8)
    t = temperatures(temps, 1.0)[1:]
    box = model.prior.support()
    for reflect in (True, False):
        settings = PosteriorConfig(sampler=sampler, steps=10, step_size=0.05, reflect=reflect)
        z0 = model.prior.chain_start(len(x), torch.Generator().manual_seed(2))
        target = model.tempered_target(x)
        z = run_chains(z0, target, t, torch.Generator().manual_seed(3), settings).z
        inside = bool(((z >= box.lower) & (z <= box.upper)).all())
        assert inside == reflect, f"reflect={reflect}"


def test_importance_start_draws_each_datum_a_proposal_by_its_likelihood() -> None:
    from tkam.losses.langevin import importance_start

    config = tiny_config(posterior={"sampler": "ula", "steps": 2})
    model = TKAM.from_config(config, (1, 8, 8), rng=torch.Generator().manual_seed(0))
    x = torch.rand(5, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    proposals = model.prior.sample(64, torch.Generator().manual_seed(2))
    with torch.no_grad():
        log_lik = model.likelihood.log_likelihood_matrix(
            x, model.likelihood.mean(model.decode(proposals))
        )
    # A sharp likelihood: every datum starts at its most likely proposal.
    model.likelihood.std = 1e-4
    z0 = importance_start(model, x, 64, torch.Generator().manual_seed(2))
    torch.testing.assert_close(z0, proposals[log_lik.argmax(dim=1)], rtol=0, atol=0)
    # A flat likelihood: the starts are uniform over the proposals (seed 3, one datum repeated
    # 4,000 times, 8 proposals: every count within 4.5 binomial SE of 500; a start drawn by
    # the likelihood of a sharp model would pile onto one proposal).
    model.likelihood.std = 1e6
    drawn = model.prior.sample(8, torch.Generator().manual_seed(3))
    starts = importance_start(
        model, x[:1].expand(4000, -1, -1, -1), 8, torch.Generator().manual_seed(3)
    )
    match = (starts.flatten(1)[:, None] == drawn.flatten(1)[None]).all(dim=2)  # (4000, 8)
    assert bool((match.sum(dim=1) == 1).all())
    counts = match.sum(dim=0).float()
    se = (4000 * (1 / 8) * (7 / 8)) ** 0.5
    assert float((counts - 500).abs().max()) < 4.5 * se, counts


def test_langevin_loss_starts_chains_by_resampling_when_asked(monkeypatch) -> None:
    import tkam.losses.langevin as langevin

    calls = []
    original = langevin.importance_start

    def counting(model, x, num_samples, rng, chains=None):  # noqa: ANN001, ANN202
        calls.append(num_samples)
        return original(model, x, num_samples, rng, chains)

    monkeypatch.setattr(langevin, "importance_start", counting)
    for init, expected in ((0, []), (16, [16])):
        calls.clear()
        config = tiny_config(posterior={"sampler": "ula", "steps": 2, "init_samples": init})
        model = TKAM.from_config(config, (1, 8, 8), rng=torch.Generator().manual_seed(0))
        x = torch.rand(4, 1, 8, 8)
        out = compute_loss(model, x, config, torch.Generator().manual_seed(1), step=1)
        assert torch.isfinite(out.loss) and calls == expected


@pytest.mark.parametrize("loss", ["langevin", "thermodynamic"])
def test_noise_space_chains_end_on_latents_the_prior_draws(monkeypatch, loss) -> None:
    """``posterior.space = "noise"`` with shared uniforms: the chains move (the ends differ from
    the standard normal starts) and every positive is ``F^{-1}(Phi(e))`` of its chain's noise, so
    column p of every q comes from one uniform (sorting q = 0 sorts all q), which chains on the
    latents break after one step."""
    import tkam.losses.chains as chains_module

    runs = []
    original = chains_module.run_chains

    def recording(z0, target, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        run = original(z0, target, *args, **kwargs)
        runs.append((z0.clone(), run.z.clone()))
        return run

    module = importlib.import_module(f"tkam.losses.{loss}")
    monkeypatch.setattr(module, "run_chains", recording)
    changes = {
        "prior": {"independent_uniforms": False},
        "posterior": {"sampler": "ula", "steps": 5, "space": "noise"},
    }
    if loss == "thermodynamic":
        changes["thermodynamic"] = {"num_temps": 3}
    config = tiny_config(**changes)
    model = TKAM.from_config(config, (1, 8, 8), rng=torch.Generator().manual_seed(0))
    x = torch.rand(6, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    out = compute_loss(model, x, config, torch.Generator().manual_seed(2), step=1, total_steps=4)
    assert torch.isfinite(out.loss)
    ((start, end),) = runs
    P = model.prior.num_inputs
    assert start.shape == end.shape == (len(end), P)
    assert float((end - start).abs().min()) > 0
    z = model.prior.latents_from_noise(end)
    for p in range(P):
        order = torch.argsort(z[:, 0, p])
        assert bool((z[order, :, p].diff(dim=0) >= 0).all()), f"column {p}"


@pytest.mark.statistical
def test_noise_space_ula_without_likelihood_samples_the_prior() -> None:
    """At t = 0 the noise target is N(0, I): 2,000 ULA chains started at e = 3, 150 steps of 0.05
    (seed 11), end with mean within 0.1 of 0 and variance within 0.1 of ULA's 1 / (1 - 0.025)
    per coordinate (standard errors 0.022 and 0.032; a target without its 1/2 gives variance
    0.5), and their latents pass the KS test against the prior at alpha = 0.001
    (1.95 / sqrt(2000) = 0.044)."""
    from scipy import stats

    from tkam.losses.chains import chain_target, run_chains

    config = tiny_config(
        prior={"independent_uniforms": False},
        posterior={"sampler": "ula", "steps": 150, "step_size": 0.05, "space": "noise"},
    )
    model = TKAM.from_config(config, (1, 8, 8), rng=torch.Generator().manual_seed(0))
    x = torch.rand(2000, 1, 8, 8, generator=torch.Generator().manual_seed(10))
    chains = chain_target(model, x, config.posterior)
    assert chains.on_noise
    z0 = torch.full((2000, model.prior.num_inputs), 3.0)
    zero = torch.zeros(1)
    end = run_chains(z0, chains.target, zero, torch.Generator().manual_seed(11), config.posterior).z
    assert float(end.mean(0).abs().max()) < 0.1, end.mean(0)
    assert float((end.var(0) - 1 / (1 - 0.025)).abs().max()) < 0.1, end.var(0)
    z = chains.latents(end)
    exported = model.prior.export()
    for q in range(z.shape[1]):
        for p in range(z.shape[2]):
            nodes, cdf = exported["nodes"][p], exported["cdf"][q, p]
            d = stats.kstest(
                z[:, q, p].double().numpy(), lambda v, n=nodes, c=cdf: np.interp(v, n, c)
            ).statistic
            assert d < 1.95 / 2000**0.5, (q, p, d)


def test_noise_space_is_flagged_where_unused() -> None:
    from tkam.config import ConfigError, config_from_dict
    from tkam.config.schema import ineffective_settings

    with pytest.raises(ConfigError, match="space"):
        PosteriorConfig(space="uniform")
    flagged = {
        "importance": {"posterior": {"space": "noise"}},
        "mixture": {"prior": {"mixture": True}, "posterior": {"sampler": "ula", "space": "noise"}},
    }
    for name, data in flagged.items():
        found = ineffective_settings(config_from_dict(data))
        assert any(s.startswith("posterior.space") for s in found), name
    used = config_from_dict({"posterior": {"sampler": "ula", "space": "noise"}})
    assert not ineffective_settings(used)


def test_importance_start_on_the_noise_picks_noise_by_the_likelihood_of_its_latents() -> None:
    """Resampled starts for chains on the prior's noise: the proposals are the chains' own
    standard normal starts, weighed by the likelihood of the latents they map to, and the picked
    noise is returned (with a sharp likelihood, each datum's most likely proposal's noise)."""
    from tkam.losses.langevin import importance_start

    config = tiny_config(posterior={"sampler": "ula", "space": "noise", "init_samples": 32})
    model = TKAM.from_config(config, (1, 8, 8), rng=torch.Generator().manual_seed(0))
    x = torch.rand(5, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    chains = chain_target(model, x, config.posterior)
    noise = chains.start(32, torch.Generator().manual_seed(2))
    latents = chains.latents(noise)
    with torch.no_grad():
        log_lik = model.likelihood.log_likelihood_matrix(
            x, model.likelihood.mean(model.decode(latents))
        )
    model.likelihood.std = 1e-4
    e0 = importance_start(model, x, 32, torch.Generator().manual_seed(2), chains)
    assert e0.shape == (5, *model.prior.noise_shape)
    torch.testing.assert_close(e0, noise[log_lik.argmax(dim=1)], rtol=0, atol=0)
    # The loss runs its noise chains from these starts.
    model.likelihood.std = config.generator.variance
    out = compute_loss(model, x, config, torch.Generator().manual_seed(3), step=1)
    assert torch.isfinite(out.loss)


@pytest.mark.parametrize("space", ["latent", "noise"])
def test_chain_targets_restrict_to_some_chains(space) -> None:
    """The chains' tempered log-density restricted to some chains (what autoMALA's search
    evaluates) equals those chains' entries of the whole batch's, each chain at its own data
    point and temperature."""
    config = tiny_config(posterior={"sampler": "automala", "space": space})
    model = TKAM.from_config(config, (1, 8, 8), rng=torch.Generator().manual_seed(0))
    x = torch.rand(6, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    chains = chain_target(model, x, config.posterior)
    assert chains.on_noise == (space == "noise")
    z = chains.start(6, torch.Generator().manual_seed(2))
    t = torch.linspace(0.1, 1.0, 6)
    whole = chains.target.log_density(t)
    rows = torch.tensor([4, 1])
    part = on_rows(whole, rows)
    assert part is not None
    torch.testing.assert_close(part(z[rows]), whole(z)[rows])
    plain = chains.target._replace(on_rows=None).log_density(t)
    assert on_rows(plain, rows) is None
