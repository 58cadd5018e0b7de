"""KAN generator and Gaussian likelihood (maths 1.3-1.4 and 10 item 3)."""

from __future__ import annotations

import pytest
import torch

from tkam.config import GeneratorConfig
from tkam.generator import GaussianLikelihood, KANGenerator


def _reference_kan_forward(gen: KANGenerator, h: torch.Tensor) -> torch.Tensor:
    # The unsummed layer output summed over inputs: the definition y_o = sum_i phi_io(x_i).
    x = h
    for layer in gen.layers:
        x = layer(x).sum(dim=1)
    return x


@pytest.mark.parametrize("basis", ["rbf", "bspline", "rswaf", "fourier", "chebyshev"])
def test_kan_generator_shapes_and_summed_layers(basis: str) -> None:
    tau = 1.1 if basis == "chebyshev" else 1.0
    config = GeneratorConfig(widths=(10, 10), basis=basis, grid_size=5, init_tau=tau)
    gen = KANGenerator(config, (1, 32, 32), rng=torch.Generator().manual_seed(0))
    h = torch.randn(6, 10)
    out = gen(h)
    assert out.shape == (6, 1, 32, 32)
    assert torch.isfinite(out).all()
    expected = _reference_kan_forward(gen, h).view(6, 1, 32, 32)
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-5)


def test_generator_grid_update_keeps_shapes_and_output() -> None:
    config = GeneratorConfig(widths=(4, 8), basis="rbf", grid_size=8)
    gen = KANGenerator(config, (1, 4, 4), rng=torch.Generator().manual_seed(1))
    h = torch.randn(500, 4) * 0.5
    before = gen(h)
    shapes = [layer.grid.shape for layer in gen.layers]
    gen.update_grid(h)
    assert [layer.grid.shape for layer in gen.layers] == shapes
    after = gen(h)
    assert torch.isfinite(after).all()
    # The refit keeps the curve on the data it was refit on (small relative change).
    assert (after - before).norm() / before.norm() < 0.05


def test_likelihood_matrix_equals_pairwise_definition() -> None:
    lik = GaussianLikelihood(std=0.3, noise=0.0, activation="sigmoid")
    x = torch.rand(5, 1, 4, 4, dtype=torch.float64)
    predictions = torch.rand(7, 1, 4, 4, dtype=torch.float64)
    matrix = lik.log_likelihood_matrix(x, predictions)
    assert matrix.shape == (5, 7)
    direct = -((x[:, None] - predictions[None]) ** 2).flatten(2).sum(-1) / (2 * 0.3**2)
    torch.testing.assert_close(matrix, direct)
    paired = lik.log_likelihood(x, predictions[:5])
    torch.testing.assert_close(paired, direct.diagonal())


def test_noised_prediction_uses_noise_inside_the_activation() -> None:
    lik = GaussianLikelihood(std=0.1, noise=0.5, activation="sigmoid")
    pre = torch.zeros(20000, 1)
    out = lik.noised(pre, torch.Generator().manual_seed(0))
    assert 0.0 < float(out.min()) and float(out.max()) < 1.0
    # sigmoid(0.5 xi) has standard deviation about 0.12 (>0): the noise is applied.
    assert 0.1 < float(out.std()) < 0.14
    assert torch.equal(lik.mean(pre), torch.full_like(pre, 0.5))
