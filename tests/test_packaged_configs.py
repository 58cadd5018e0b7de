"""Every packaged config builds and its loss trains (maths 10 items 3, 4 and 8)."""

from __future__ import annotations

import pytest
import torch

from tests.helpers import PACKAGED_SHAPES
from tkam.config import load_config, packaged_configs
from tkam.generator import cnn_output_size
from tkam.losses import compute_loss
from tkam.model import TKAM

SHAPES = PACKAGED_SHAPES

# Spec section 1.3's table of layer geometries: spatial sizes after every ConvTranspose layer.
CNN_SIZES = {
    "svhn": [1, 4, 8, 16, 32],
    "cifar10": [1, 8, 16, 32, 32],
    "celeba": [1, 4, 8, 16, 32, 64],
}


def _shape(config) -> tuple[int, ...]:
    if config.data.name == "ptb":
        return (config.data.vocab_size + 2, 12)
    return SHAPES[config.data.name]


@pytest.mark.parametrize("name", packaged_configs())
def test_packaged_config_trains_one_batch(name: str) -> None:
    # Fewer Langevin steps and a small batch keep this quick; the structure is the config's own.
    overrides = ["posterior.steps=2", "train.importance_samples=8"]
    if load_config(name).prior.deep:
        overrides.append("prior.langevin_steps=2")
    if name == "ptb":  # the structure stays; a smaller vocabulary and width keep the test quick
        overrides += ["data.vocab_size=30", "generator.d_model=32"]
    config = load_config(name, overrides)
    shape = _shape(config)
    model = TKAM.from_config(config, shape, rng=torch.Generator().manual_seed(0))
    if config.generator.kind == "cnn":
        assert model.generator(torch.zeros(2, config.generator.widths[0])).shape == (2, *shape)
    x = torch.rand(3, *shape)
    if config.data.name == "ptb":
        x = torch.nn.functional.one_hot(torch.randint(0, shape[0], (3, shape[1])), shape[0])
        x = x.transpose(1, 2).float()
    out = compute_loss(model, x, config, torch.Generator().manual_seed(1), step=1, total_steps=10)
    assert torch.isfinite(out.loss)
    out.loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads), name
    assert any(float(g.abs().sum()) > 0 for g in grads), name


@pytest.mark.parametrize(
    "name", [n for n in packaged_configs() if "svhn" in n or "cifar" in n or "celeba" in n]
)
def test_cnn_geometry_matches_the_spec_table(name: str) -> None:
    config = load_config(name)
    gen = config.generator
    sizes = cnn_output_size(1, gen.kernel_sizes, gen.strides, gen.paddings)
    assert sizes == CNN_SIZES[config.data.name]
