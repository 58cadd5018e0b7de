"""The deep (Pang-style) KAN energy prior (spec 1.2, 3.8, A10, A24, A26)."""

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
    assert z.shape == (7, 4) and torch.isfinite(z).all()  # exactly the requested count (A26)
    value = prior.log_prior(z)
    assert value.shape == (7,)
    value.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in prior.parameters() if p.grad is not None)


def test_deep_prior_mixture_flag_is_ignored_with_a_warning() -> None:
    with pytest.warns(UserWarning, match="A24"):
        prior = build_prior(_config(mixture=True))
    assert isinstance(prior, DeepPrior)


@pytest.mark.statistical
def test_prior_langevin_with_zero_energy_samples_the_gaussian_base() -> None:
    # With E = 0 the target is the Gaussian base (A10); ULA with step h on N(0, 1) has stationary
    # variance 1 / (1 - h / 2). Seed 3, 4,000 chains x 4 coordinates, 300 steps; tolerance 5 SE.
    # eps ~ 0: log(pi_0 + eps) with the default eps = 1e-4 fattens the tails on purpose.
    prior = build_prior(_config(langevin_steps=300, langevin_step_size=0.1), eps=1e-30)
    with torch.no_grad():
        for layer in prior.layers:
            layer.coef.zero_()
            if hasattr(layer, "w_base"):
                layer.w_base.zero_()
    z = prior.sample(4000, torch.Generator().manual_seed(3))
    variance = float(z.var())
    expected = 1.0 / (1.0 - 0.1 / 2.0)
    standard_error = expected * (2.0 / z.numel()) ** 0.5
    assert abs(variance - expected) < 5 * standard_error, (variance, expected)
    assert abs(float(z.mean())) < 5 * (expected / z.numel()) ** 0.5


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
