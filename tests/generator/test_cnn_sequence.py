"""CNN and sequence generators, categorical likelihood (maths 1.3-1.4)."""

from __future__ import annotations

import pytest
import torch

from tkam.config import ConfigError, GeneratorConfig
from tkam.generator import CategoricalLikelihood, CNNGenerator, SequenceGenerator


def _cnn(**changes) -> GeneratorConfig:
    values = dict(
        kind="cnn",
        widths=(10, 20),
        hidden_channels=(16, 8, 4),
        kernel_sizes=(4, 4, 4, 4),
        strides=(1, 2, 2, 2),
        paddings=(0, 1, 1, 1),
    )
    values.update(changes)
    return GeneratorConfig(**values)


@pytest.mark.parametrize("latent_concat", [False, True])
@pytest.mark.parametrize("activation", ["none", "leakyrelu"])
def test_cnn_output_shape_and_options(latent_concat: bool, activation: str) -> None:
    config = _cnn(latent_concat=latent_concat, cnn_activation=activation)
    gen = CNNGenerator(config, (3, 32, 32), rng=torch.Generator().manual_seed(0))
    out = gen(torch.randn(5, 10))
    assert out.shape == (5, 3, 32, 32) and torch.isfinite(out).all()
    in_channels = [layer.in_channels for layer in gen.layers]
    assert in_channels == ([10, 26, 18, 14] if latent_concat else [10, 16, 8, 4])


def test_cnn_without_activation_is_affine_in_the_latent() -> None:
    # The reference's CNN has no nonlinearity between layers (departures A11):
    # g(a + b) - g(b) = g(a) - g(0).
    gen = CNNGenerator(_cnn(), (3, 32, 32), rng=torch.Generator().manual_seed(0)).double()
    a, b = torch.randn(2, 1, 10, dtype=torch.float64)
    zero = torch.zeros(1, 10, dtype=torch.float64)
    torch.testing.assert_close(gen(a + b) - gen(b), gen(a) - gen(zero))


def test_cnn_geometry_mismatch_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"\[1, 4, 8, 16, 32\].*28x28"):
        CNNGenerator(_cnn(), (1, 28, 28))
    with pytest.raises(ConfigError, match="strides"):
        _cnn(strides=(1, 2))


def test_sequence_generator_shapes_and_causality() -> None:
    config = GeneratorConfig(kind="sequence", widths=(6,), d_model=8)
    gen = SequenceGenerator(config, (11, 5), rng=torch.Generator().manual_seed(0))
    logits = gen(torch.randn(3, 6))
    assert logits.shape == (3, 11, 5) and torch.isfinite(logits).all()
    # A shorter generator with the same weights produces the same first positions.
    short = SequenceGenerator(config, (11, 3), rng=torch.Generator().manual_seed(0))
    h = torch.randn(2, 6)
    torch.testing.assert_close(short(h), gen(h)[..., :3])


def test_categorical_likelihood_matrix_equals_pairs() -> None:
    lik = CategoricalLikelihood(std=0.1, noise=0.0)
    tokens = torch.randint(0, 7, (4, 5))
    x = torch.nn.functional.one_hot(tokens, 7).transpose(1, 2).double()  # (B, n_v, L)
    probs = torch.softmax(torch.randn(6, 7, 5, dtype=torch.float64), dim=1)
    matrix = lik.log_likelihood_matrix(x, probs)
    assert matrix.shape == (4, 6)
    for b in range(4):
        paired = lik.log_likelihood(x[b : b + 1].expand(6, -1, -1), probs)
        torch.testing.assert_close(matrix[b], paired)
    expected = torch.log(probs[0] + 1e-4).gather(0, tokens[0][None]).sum() / (7 * 2 * 0.01)
    torch.testing.assert_close(matrix[0, 0], expected)
