"""The deep (Pang-style) KAN energy prior (maths 1.2, 3.8, departures A10, A24, A26)."""

from __future__ import annotations

import pytest
import torch

from tkam.config import PriorConfig
from tkam.prior import DeepPrior, build_prior


def _config(**changes) -> PriorConfig:
    values = dict(
        widths=(4, 8, 1),
        basis="fourier",
        grid_size=3,
        reference="ebm",
        langevin_steps=20,
        langevin_step_size=0.1,
    )
    values.update(changes)
    return PriorConfig(**values)


def test_deep_prior_honours_the_sample_count_and_shapes() -> None:
    prior = build_prior(_config(), rng=torch.Generator().manual_seed(0))
    assert isinstance(prior, DeepPrior)
    z = prior.sample(7, torch.Generator().manual_seed(1))
    # Exactly the requested count (departures A26).
    assert z.shape == (7, 4) and torch.isfinite(z).all()
    value = prior.log_prior(z)
    assert value.shape == (7,)
    value.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in prior.parameters() if p.grad is not None)


def test_deep_prior_mixture_flag_is_ignored_with_a_warning() -> None:
    with pytest.warns(UserWarning, match="A24"):
        prior = build_prior(_config(mixture=True))
    assert isinstance(prior, DeepPrior)


def _zero_energy(prior: DeepPrior) -> DeepPrior:
    with torch.no_grad():
        for layer in prior.layers:
            layer.coef.zero_()
            if hasattr(layer, "w_base"):
                layer.w_base.zero_()
    return prior


@pytest.mark.statistical
def test_prior_langevin_with_zero_energy_samples_the_gaussian_base() -> None:
    # With E = 0 the target is the Gaussian base (departures A10), its exact log-density whatever
    # eps (the former log(phi + 1e-4) was flat beyond |z| ~ 4.5); ULA with step h on N(0, 1) has
    # stationary variance 1 / (1 - h / 2). Seed 3, 4,000 chains x 4 coordinates, 300 steps;
    # tolerance 5 SE.
    prior = _zero_energy(build_prior(_config(langevin_steps=300, langevin_step_size=0.1)))
    z = prior.sample(4000, torch.Generator().manual_seed(3))
    variance = float(z.var())
    expected = 1.0 / (1.0 - 0.1 / 2.0)
    standard_error = expected * (2.0 / z.numel()) ** 0.5
    assert abs(variance - expected) < 5 * standard_error, (variance, expected)
    assert abs(float(z.mean())) < 5 * (expected / z.numel()) ** 0.5


@pytest.mark.statistical
@pytest.mark.parametrize("steps", [60, 1000])
def test_the_gaussian_base_keeps_its_tails(steps) -> None:
    # The *-pang setting: P = 100 latents, step 0.16 (the packaged configs' prior Langevin); seed
    # 5, 200 chains (20,000 coordinates). N(0, 1.087) puts 2e-5 of its mass beyond 4.5, so the
    # bound 0.1% (20 coordinates) leaves room for chance; the leaky base put 5% there after 60
    # steps and reached variance 3.5 after 2,000. Variance within 5 SE of 1 / (1 - h / 2).
    config = _config(widths=(100, 8, 1), langevin_steps=steps, langevin_step_size=0.16)
    prior = _zero_energy(build_prior(config))
    z = prior.sample(200, torch.Generator().manual_seed(5))
    assert float((z.abs() > 4.5).float().mean()) < 1e-3
    expected = 1.0 / (1.0 - 0.16 / 2.0)
    assert abs(float(z.var()) - expected) < 5 * expected * (2.0 / z.numel()) ** 0.5
    assert float(z.abs().max()) < 6.5


def test_deep_prior_declares_no_components_nor_normaliser() -> None:
    prior = build_prior(_config())
    assert not prior.has_components and not prior.exact_normaliser
    with pytest.raises(ValueError, match="no univariate components"):
        prior.export()
    z = prior.sample(4)
    with pytest.raises(ValueError, match="no tractable normalising constant"):
        prior.log_prior(z, normalise=True)
    with pytest.raises(ValueError, match="no tractable normalising constant"):
        prior.log_normaliser()
