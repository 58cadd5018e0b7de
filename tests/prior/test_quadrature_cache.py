"""One quadrature per parameter state (tkam.prior.base.KANPrior.quadrature).

Sampling, contrastive negatives and ``log Z`` share one table while the prior's parameters and
buffers are unchanged; any change (an optimiser step, fused Adam included, a grid update, a
state-dict load, a dtype change) makes the next use recompute it. A stale table would give other
samples than a freshly built prior in the same state: the tests compare against one.
"""

from __future__ import annotations

import copy

import pytest
import torch

from tests.helpers import tiny_config
from tkam.config import load_config
from tkam.losses import importance_loss
from tkam.model import TKAM
from tkam.prior import build_prior


def _prior(name: str = "digits", *overrides: str):
    config = load_config(name, list(overrides))
    return build_prior(config.prior, rng=torch.Generator().manual_seed(0))


def _fresh_samples(prior, num: int, seed: int) -> torch.Tensor:
    """Samples of an identical prior that has never computed a table."""
    twin = copy.deepcopy(prior)
    twin._table_cache = None
    return twin.sample(num, torch.Generator().manual_seed(seed))


def _step(prior, optimizer) -> None:
    optimizer.zero_grad()
    z = prior.sample(50, torch.Generator().manual_seed(3))
    (-prior.log_prior(z).mean() + prior.log_normaliser().sum()).backward()
    optimizer.step()


def test_sampling_and_normaliser_share_one_table_per_state() -> None:
    prior = _prior()
    prior.sample(10, torch.Generator().manual_seed(0))
    prior.sample(30, torch.Generator().manual_seed(1))
    with torch.no_grad():
        prior.log_normaliser()
        prior.export()
    assert prior.quadrature_evaluations == 1


@pytest.mark.parametrize("fused", [True, False])
def test_an_optimiser_step_is_never_served_a_stale_table(fused) -> None:
    # Fused Adam updates parameters without bumping their version counters.
    prior = _prior()
    optimizer = torch.optim.Adam(prior.parameters(), lr=0.05, fused=fused)
    before = prior.sample(200, torch.Generator().manual_seed(7))
    count = prior.quadrature_evaluations
    _step(prior, optimizer)
    after = prior.sample(200, torch.Generator().manual_seed(7))
    assert prior.quadrature_evaluations > count
    assert not torch.equal(before, after)  # the step changed the prior ...
    assert torch.equal(after, _fresh_samples(prior, 200, 7))  # ... and the table followed


def test_grid_updates_state_dict_loads_and_dtype_changes_invalidate_the_table() -> None:
    prior = _prior()
    prior.sample(20, torch.Generator().manual_seed(0))
    z = torch.randn(300, *prior.latent_shape, generator=torch.Generator().manual_seed(1)) * 0.5

    prior.update_grid(z)
    count = prior.quadrature_evaluations
    assert torch.equal(
        prior.sample(100, torch.Generator().manual_seed(2)), _fresh_samples(prior, 100, 2)
    )
    assert prior.quadrature_evaluations == count + 1

    other = _prior("digits", "train.seed=5")
    other.layer.update_grid(
        torch.randn(200, prior.num_inputs, generator=torch.Generator().manual_seed(3))
    )
    prior.load_state_dict(other.state_dict())
    assert torch.equal(
        prior.sample(100, torch.Generator().manual_seed(4)), _fresh_samples(other, 100, 4)
    )

    prior.double()
    table = prior.quadrature()
    assert table.cdf.dtype == torch.float64


def test_a_buffer_changed_in_place_without_a_version_bump_is_noticed() -> None:
    prior = _prior()
    prior.sample(5, torch.Generator().manual_seed(0))
    prior.layer.coef.data.mul_(1.5)  # ``.data`` has its own version counter
    assert torch.equal(
        prior.sample(100, torch.Generator().manual_seed(1)), _fresh_samples(prior, 100, 1)
    )


@pytest.mark.parametrize(
    ("contrastive", "negatives"), [(True, "fresh"), (True, "proposals"), (False, "fresh")]
)
def test_an_importance_sampling_step_computes_one_table(contrastive, negatives) -> None:
    config = tiny_config()
    model = TKAM.from_config(config, (1, 8, 8), rng=torch.Generator().manual_seed(0))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.rand(20, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    rng = torch.Generator().manual_seed(2)
    for step in range(3):
        count = model.prior.quadrature_evaluations
        out = importance_loss(model, x, 16, rng, contrastive=contrastive, negatives=negatives)
        out.loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        assert model.prior.quadrature_evaluations == count + 1, f"step {step}"


@pytest.mark.parametrize(
    ("name", "overrides"),
    [
        ("mnist", []),
        ("mnist", ["prior.reference=uniform"]),
        ("mnist", ["prior.reference=gaussian", "prior.cdf=left"]),
        ("mnist", ["prior.reference=lognormal", "prior.basis=fft"]),
        ("mnist", ["prior.base_activation=none", "prior.basis=bspline"]),
        ("svhn", []),
        ("svhn-head", []),
    ],
)
def test_the_fused_sampling_table_matches_the_differentiable_one(name, overrides) -> None:
    prior = _prior(name, *overrides)
    with torch.no_grad():
        fused = prior._compute_quadrature()
    reference = prior._compute_quadrature()  # with gradient: the torch code of quadrature.py
    finite = torch.isfinite(reference.log_density)
    assert torch.equal(torch.isfinite(fused.log_density), finite)
    torch.testing.assert_close(
        fused.log_normaliser, reference.log_normaliser.detach(), rtol=0, atol=2e-6
    )
    torch.testing.assert_close(
        fused.log_density[finite], reference.log_density.detach()[finite], rtol=1e-6, atol=3e-6
    )
    torch.testing.assert_close(fused.cdf, reference.cdf, rtol=0, atol=1e-6)
    if fused.cdf_by_row is not None:
        assert torch.equal(fused.cdf_by_row, fused.cdf.permute(1, 2, 0))
