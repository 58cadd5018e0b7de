"""Models are compositions of a prior, a generator and a likelihood (T-KAM and the baselines)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tests.helpers import tiny_config
from tkam.baselines import VAE, EnergyPrior, LatentEBM
from tkam.build import MODELS, build_model
from tkam.config.schema import MODEL_KINDS
from tkam.generator.likelihood import GaussianLikelihood
from tkam.model import TKAM, LatentModel
from tkam.prior import GaussianPrior, UnivariatePrior

SHAPE = (1, 8, 8)


def test_every_model_kind_is_built_from_parts() -> None:
    assert set(MODELS) == set(MODEL_KINDS)
    expected = {"tkam": (TKAM, UnivariatePrior), "vae": (VAE, GaussianPrior)}
    expected["lebm"] = (LatentEBM, EnergyPrior)
    for kind, (cls, prior_type) in expected.items():
        model = build_model(tiny_config(model={"kind": kind}), SHAPE)
        assert type(model) is cls and isinstance(model, LatentModel)
        # Siblings: no baseline is a T-KAM.
        assert isinstance(model, TKAM) == (kind == "tkam")
        assert type(model.prior) is prior_type
        assert isinstance(model.likelihood, GaussianLikelihood)
        assert model.image_shape == SHAPE
        # The same generator architecture under every prior.
        assert model.generator.layers[0].coef.shape[:2] == (7, 16)
    vae = build_model(tiny_config(model={"kind": "vae"}), SHAPE)
    assert vae.has_encoder and {k.split(".")[0] for k in vae.state_dict()} == {
        "generator",
        "encoder",
    }


def test_build_model_is_seeded_by_train_seed() -> None:
    a = build_model(tiny_config(), SHAPE).state_dict()
    b = build_model(tiny_config(), SHAPE).state_dict()
    c = build_model(tiny_config(train={"seed": 7}), SHAPE).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_a_model_of_any_parts() -> None:
    # A linear decoder under a standard normal prior: generation and the tempered target work
    # through the same interface the losses and samplers use.
    decoder = nn.Linear(3, 5)
    model = TKAM(GaussianPrior(3), decoder, GaussianLikelihood(0.5, 0.1, "none"), (5,))
    x = torch.randn(4, 5)
    samples = model.sample(4, torch.Generator().manual_seed(0))
    assert samples.shape == (4, 5)
    target = model.tempered_target(x)
    z = torch.randn(4, 3)
    t = torch.tensor([0.0, 0.25, 0.5, 1.0])
    log_lik, output = target.log_likelihood(z)
    torch.testing.assert_close(output, decoder(z))
    torch.testing.assert_close(log_lik, -(x - decoder(z)).square().sum(-1) / (2 * 0.25))
    expected = model.prior.log_prior(z) + t * log_lik
    torch.testing.assert_close(target.log_density(t)(z), expected)
    # The exchange likelihood adds fresh output noise (sigma_n = 0.1) to the generator output.
    rng = torch.Generator().manual_seed(5)
    noise = torch.randn(4, 5, generator=torch.Generator().manual_seed(5))
    exchange = target.exchange_log_likelihood(output, rng)
    torch.testing.assert_close(exchange, -(x - output - 0.1 * noise).square().sum(-1) / 0.5)
    with pytest.raises(TypeError, match="Prior protocol"):
        TKAM(nn.Linear(3, 3), decoder, GaussianLikelihood(0.5, 0.0, "none"), (5,))


def test_the_latent_model_interface_is_abstract() -> None:
    # A latent model must say how a config builds it; T-KAM and the baselines each do.
    with pytest.raises(TypeError, match="abstract"):
        LatentModel(GaussianPrior(3), nn.Linear(3, 5), GaussianLikelihood(0.5, 0.0, "none"), (5,))
    for cls in (TKAM, VAE, LatentEBM):
        assert issubclass(cls, LatentModel) and cls.__bases__ == (LatentModel,)


def test_parameter_groups() -> None:
    model = build_model(tiny_config(), SHAPE)
    (group,) = model.parameter_groups(1e-3)
    assert len(group["params"]) == len(list(model.parameters()))
    prior_rate = build_model(tiny_config(prior={"learning_rate": 3e-4}), SHAPE)
    rest, prior = prior_rate.parameter_groups(1e-3)
    assert prior["lr"] == 3e-4 and "lr" not in rest
    assert {id(p) for p in prior["params"]} == {id(p) for p in prior_rate.prior.parameters()}
    (vae_group,) = build_model(tiny_config(model={"kind": "vae"}), SHAPE).parameter_groups(1e-3)
    assert "lr" not in vae_group
    ebm = build_model(tiny_config(model={"kind": "lebm", "energy_learning_rate": 2e-5}), SHAPE)
    rest, energy = ebm.parameter_groups(1e-3)
    assert energy["lr"] == 2e-5 and "lr" not in rest
    assert {id(p) for p in energy["params"]} == {id(p) for p in ebm.prior.parameters()}
    assert len(rest["params"]) + len(energy["params"]) == len(list(ebm.parameters()))


def test_prior_learning_rate_gives_the_prior_its_own_group() -> None:
    model = build_model(tiny_config(prior={"learning_rate": 1e-2}), SHAPE)
    rest, prior = model.parameter_groups(1e-3)
    assert prior["lr"] == 1e-2 and "lr" not in rest
    assert {id(p) for p in prior["params"]} == {id(p) for p in model.prior.parameters()}
    assert len(rest["params"]) + len(prior["params"]) == len(list(model.parameters()))
