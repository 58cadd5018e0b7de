"""The MLP generator and the Bernoulli likelihood: the textbook VAE's decoder."""

from __future__ import annotations

import math

import pytest
import torch

from tkam.config import ConfigError, GeneratorConfig
from tkam.generator import BernoulliLikelihood, MLPGenerator, build_generator, build_likelihood


def test_mlp_generator_is_linear_relu_linear() -> None:
    config = GeneratorConfig(kind="mlp", widths=(20, 400))
    gen = build_generator(config, (1, 28, 28), rng=torch.Generator().manual_seed(0))
    assert isinstance(gen, MLPGenerator)
    assert [tuple(layer.weight.shape) for layer in gen.layers] == [(400, 20), (784, 400)]
    h = torch.randn(5, 20)
    first, second = gen.layers
    expected = second(torch.relu(first(h))).view(5, 1, 28, 28)
    torch.testing.assert_close(gen(h), expected)
    # Seeded initialisation: the same stream gives the same weights, another stream others.
    again = build_generator(config, (1, 28, 28), rng=torch.Generator().manual_seed(0))
    other = build_generator(config, (1, 28, 28), rng=torch.Generator().manual_seed(1))
    assert torch.equal(again.layers[0].weight, first.weight)
    assert not torch.equal(other.layers[0].weight, first.weight)


def test_bernoulli_log_likelihood_is_the_binary_cross_entropy() -> None:
    torch.manual_seed(0)
    lik = BernoulliLikelihood(noise=0.0)
    x = torch.rand(4, 1, 3, 3, dtype=torch.float64)
    logits = torch.randn(4, 1, 3, 3, dtype=torch.float64)
    got = lik.log_likelihood(x, lik.mean(logits))
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="none")
    torch.testing.assert_close(got, -bce.flatten(1).sum(-1))


def test_bernoulli_matrix_equals_pairwise_and_is_a_probability() -> None:
    lik = BernoulliLikelihood(noise=0.0)
    x = (torch.rand(5, 1, 2, 2, dtype=torch.float64) > 0.5).double()
    predictions = torch.rand(7, 1, 2, 2, dtype=torch.float64)
    matrix = lik.log_likelihood_matrix(x, predictions)
    for b in range(5):
        pairwise = lik.log_likelihood(x[b : b + 1].expand(7, -1, -1, -1), predictions)
        torch.testing.assert_close(matrix[b], pairwise)
    # Summed over all 16 binary images of 4 pixels, p(x | z) is 1 for every prediction.
    bits = torch.tensor([[(i >> k) & 1 for k in range(4)] for i in range(16)], dtype=torch.float64)
    total = lik.log_likelihood_matrix(bits.view(16, 1, 2, 2), predictions).exp().sum(0)
    torch.testing.assert_close(total, torch.ones(7, dtype=torch.float64))
    assert lik.normalised and lik.constant(4) == 0.0


def test_bernoulli_stays_finite_at_saturated_probabilities() -> None:
    lik = BernoulliLikelihood(noise=0.0)
    x = torch.tensor([[1.0, 0.0]])
    value = lik.log_likelihood(x, torch.tensor([[0.0, 1.0]]))
    assert torch.isfinite(value).all() and value.item() < -20


def test_build_likelihood_follows_the_config() -> None:
    bern = build_likelihood(GeneratorConfig(likelihood="bernoulli", noise=0.0))
    assert isinstance(bern, BernoulliLikelihood)
    gauss = build_likelihood(GeneratorConfig())
    assert gauss.normalised
    assert gauss.constant(10) == pytest.approx(-5 * math.log(2 * math.pi * 0.01))


def test_bernoulli_needs_the_sigmoid() -> None:
    with pytest.raises(ConfigError, match="likelihood.*sigmoid"):
        GeneratorConfig(likelihood="bernoulli", output_activation="tanh")
    with pytest.raises(ConfigError, match="likelihood"):
        GeneratorConfig(likelihood="poisson")
