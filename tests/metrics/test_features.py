"""Feature networks: the cached autoencoder and the Inception error path."""

from __future__ import annotations

import pytest
import torch

from tkam.metrics import (
    AutoencoderRecipe,
    ConvAutoencoder,
    FeatureError,
    autoencoder_features,
    extract_features,
    inception_features,
    quantise,
    train_autoencoder,
)


@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 28, 28), (3, 32, 32), (3, 64, 64)])
def test_autoencoder_shapes(shape):
    model = ConvAutoencoder(shape, bottleneck=16)
    x = torch.rand(2, *shape)
    assert model.encode(x).shape == (2, 16)
    assert model(x).shape == x.shape


def test_training_reduces_reconstruction_error():
    gen = torch.Generator().manual_seed(0)
    # Smooth two-parameter images: a learnable structure (random pixels are incompressible).
    weights = torch.rand(64, 2, generator=gen)
    basis = torch.linspace(-2, 2, 64).view(2, 32).repeat(1, 2)
    images = torch.sigmoid(4 * (weights - 0.5) @ basis).view(64, 1, 8, 8)
    before = train_autoencoder(images, AutoencoderRecipe(steps=0, bottleneck=8))
    after = train_autoencoder(images, AutoencoderRecipe(steps=60, batch_size=32, bottleneck=8))
    with torch.no_grad():
        error_before = torch.mean((before(images) - images) ** 2)
        error_after = torch.mean((after(images) - images) ** 2)
    assert error_after < 0.5 * error_before, (error_before, error_after)


def test_cache_is_written_and_reused(tmp_path):
    gen = torch.Generator().manual_seed(0)
    images = torch.rand(64, 1, 8, 8, generator=gen).round()
    recipe = AutoencoderRecipe(steps=3, batch_size=16, bottleneck=8)
    first = autoencoder_features("toy", images, tmp_path, recipe, log=None)
    cached = list((tmp_path / "features").glob("toy-1x8x8-*.safetensors"))
    assert len(cached) == 1
    assert first.name.startswith("tkam-autoencoder-toy-1x8x8-v1-")
    second = autoencoder_features("toy", images, tmp_path, recipe, log=None)
    assert second.name == first.name
    torch.testing.assert_close(extract_features(first, images), extract_features(second, images))
    other = autoencoder_features(
        "toy", images, tmp_path, AutoencoderRecipe(steps=4, batch_size=16, bottleneck=8), log=None
    )
    assert other.name != first.name


def test_quantise_truncates_like_png():
    x = torch.tensor([-0.5, 0.0, 0.5, 0.999, 1.0, 2.0])
    expected = torch.tensor([0.0, 0.0, 127.0, 254.0, 255.0, 255.0]) / 255
    torch.testing.assert_close(quantise(x), expected)


def test_inception_without_torchvision_raises_a_clear_error(tmp_path):
    try:
        import torchvision  # noqa: F401
    except ImportError:
        with pytest.raises(FeatureError, match="torchvision"):
            inception_features(tmp_path / "inception.pth")
    else:
        with pytest.raises(FeatureError, match="no such weights file"):
            inception_features(tmp_path / "missing.pth")
