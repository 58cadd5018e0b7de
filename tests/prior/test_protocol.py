"""Every prior implements the Prior protocol and means what its declared capabilities say."""

from __future__ import annotations

import math

import pytest
import torch

from tkam.baselines import EnergyPrior
from tkam.config import PriorConfig
from tkam.prior import (
    DeepPrior,
    GaussianPrior,
    MixturePrior,
    Prior,
    PriorModule,
    UnivariatePrior,
    build_prior,
)


def _priors() -> dict[str, PriorModule]:
    rng = torch.Generator().manual_seed(0)
    small = {"widths": (2, 3), "basis": "rbf", "grid_size": 5, "num_nodes": 60}
    return {
        "univariate": build_prior(PriorConfig(**small), rng=rng),
        "mixture": build_prior(PriorConfig(**small, mixture=True), rng=rng),
        "deep": build_prior(
            PriorConfig(widths=(3, 4, 1), basis="rbf", grid_size=5, langevin_steps=3), rng=rng
        ),
        "gaussian": GaussianPrior(3),
        "energy": EnergyPrior(3, hidden=8, num_steps=3, rng=rng),
    }


CAPABILITIES = {  # (exact normaliser, univariate components)
    "univariate": (True, True),
    "mixture": (True, True),
    "deep": (False, False),
    "gaussian": (True, False),
    "energy": (False, False),
}
TYPES = {
    "univariate": UnivariatePrior,
    "mixture": MixturePrior,
    "deep": DeepPrior,
    "gaussian": GaussianPrior,
    "energy": EnergyPrior,
}


@pytest.mark.parametrize("name", sorted(CAPABILITIES))
def test_every_prior_implements_the_protocol(name: str) -> None:
    prior = _priors()[name]
    assert isinstance(prior, Prior) and isinstance(prior, TYPES[name])
    assert (prior.exact_normaliser, prior.has_components) == CAPABILITIES[name]
    z = prior.sample(5, torch.Generator().manual_seed(1))
    assert z.shape == (5, *prior.latent_shape) and not z.requires_grad
    log_p = prior.log_prior(z)
    assert log_p.shape == (5,) and torch.isfinite(log_p).all()
    h = prior.generator_input(z)
    assert h.shape[0] == 5 and h.dim() == 2
    # The generator input of fresh samples is that of the same draws.
    direct = prior.sample_generator_input(5, torch.Generator().manual_seed(1))
    torch.testing.assert_close(direct, h)
    # The weighted log-prior is the weighted sum of log-priors.
    weights = torch.tensor([0.5, -1.0, 2.0, 0.0, 0.25])
    expected = (weights * log_p).sum()
    torch.testing.assert_close(prior.weighted_log_prior(z, weights), expected, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("name", sorted(CAPABILITIES))
def test_normalise_is_exact_or_refused(name: str) -> None:
    prior = _priors()[name]
    z = prior.sample(4, torch.Generator().manual_seed(2))
    if not prior.exact_normaliser:
        with pytest.raises(ValueError, match="no tractable normalising constant"):
            prior.log_prior(z, normalise=True)
        with pytest.raises(ValueError, match="no tractable normalising constant"):
            prior.log_normaliser()
        with pytest.raises(ValueError, match="no tractable normalising constant"):
            prior.weighted_log_prior(z, torch.ones(4), normalise=True)
        return
    log_z = prior.log_normaliser()
    normalised = prior.log_prior(z, normalise=True)
    torch.testing.assert_close(prior.log_prior(z, normalise=True, log_normaliser=log_z), normalised)
    if name == "gaussian":  # normalised already: Z = 1
        assert float(log_z) == 0.0
        torch.testing.assert_close(normalised, prior.log_prior(z))
        expected = -0.5 * z.square().sum(-1) - 1.5 * math.log(2 * math.pi)
        torch.testing.assert_close(normalised, expected)
    else:  # the quadrature's log Z changes the value
        assert not torch.allclose(normalised, prior.log_prior(z))


@pytest.mark.parametrize("mixture", [False, True])
def test_normalised_kan_priors_integrate_to_one(mixture: bool) -> None:
    # One latent (Q = 1; univariate P = 1, mixture P = 2 components): the normalised density
    # integrates to 1 over the domain (a 4,001-point trapezoid, float64).
    config = PriorConfig(
        widths=(2 if mixture else 1, 1), basis="rbf", grid_size=5, mixture=mixture, num_nodes=80
    )
    prior = build_prior(config, rng=torch.Generator().manual_seed(3)).double()
    lo, hi = (float(v) for v in prior.layer.quadrature_domain()[0])
    points = torch.linspace(lo, hi, 4001, dtype=torch.float64)
    z = points.view(-1, 1) if mixture else points.view(-1, 1, 1)
    with torch.no_grad():
        density = prior.log_prior(z, normalise=True).exp()
        unnormalised = prior.log_prior(z).exp()
    assert abs(float(torch.trapezoid(density, points)) - 1.0) < 2e-3
    assert abs(float(torch.trapezoid(unnormalised, points)) - 1.0) > 0.05  # Z matters here


@pytest.mark.parametrize("name", sorted(CAPABILITIES))
def test_export_exists_exactly_for_priors_with_components(name: str) -> None:
    prior = _priors()[name]
    if prior.has_components:
        export = prior.export()
        assert {"nodes", "density", "cdf", "reference", "log_normaliser"} <= set(export)
        assert bool(export["rows_are_inputs"]) == prior.rows_are_inputs
    else:
        with pytest.raises(ValueError, match="no univariate components"):
            prior.export()


def test_has_grid_follows_the_layers() -> None:
    priors = _priors()
    assert priors["univariate"].has_grid and priors["deep"].has_grid
    assert not priors["gaussian"].has_grid and not priors["energy"].has_grid
    fourier = build_prior(PriorConfig(widths=(2, 3), basis="fft", grid_size=4))
    assert not fourier.has_grid
