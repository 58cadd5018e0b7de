"""Feature networks: the cached classifier and autoencoder, and the Inception error path."""

from __future__ import annotations

import pytest
import torch

from tkam.config import DataConfig
from tkam.data import training_labels
from tkam.metrics import (
    AutoencoderRecipe,
    ClassifierRecipe,
    ConvAutoencoder,
    FeatureError,
    autoencoder_features,
    classifier_features,
    extract_features,
    inception_features,
    quantise,
    train_autoencoder,
)
from tkam.metrics.features import FeatureClassifier, train_classifier


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


@pytest.mark.parametrize(
    ("shape", "width"),
    [((1, 28, 28), 84), ((1, 8, 8), 128), ((3, 32, 32), 128), ((3, 64, 64), 128)],
)
def test_classifier_is_lenet_for_28x28_and_a_small_cnn_otherwise(shape, width):
    model = FeatureClassifier(shape, num_classes=10)
    x = torch.rand(3, *shape)
    assert model.features(x).shape == (3, width)
    assert model(x).shape == (3, 10)
    lenet = any(getattr(m, "kernel_size", None) == (5, 5) for m in model.modules())
    assert lenet == (shape[1:] == (28, 28))


def test_digits_classifier_learns_and_is_cached_with_its_accuracy(tmp_path):
    """Seed 0 recipe, 300 steps on the 1,797 bundled digits (last tenth held out): held-out
    accuracy above 0.8 (chance is 0.1; measured about 0.9); a reload gives the same features."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = torch.as_tensor(digits.images[:, None] / 16.0, dtype=torch.float32)
    labels = torch.as_tensor(digits.target)
    recipe = ClassifierRecipe(steps=300, batch_size=64)
    _, untrained = train_classifier(images, labels, ClassifierRecipe(steps=0))
    first = classifier_features("digits", images, labels, tmp_path, recipe, log=None)
    assert first.accuracy > 0.8 and untrained < 0.3, (first.accuracy, untrained)
    assert first.name.startswith("tkam-classifier-digits-1x8x8-v1-")
    second = classifier_features("digits", images, labels, tmp_path, recipe, log=None)
    assert second.name == first.name and second.accuracy == pytest.approx(first.accuracy)
    torch.testing.assert_close(extract_features(first, images), extract_features(second, images))
    with pytest.raises(FeatureError, match="labels for"):
        classifier_features("digits", images, labels[:10], tmp_path, recipe, log=None)


def test_training_labels_follow_the_loaders_order(tmp_path):
    from sklearn.datasets import load_digits

    labels = training_labels(DataConfig(name="digits", num_train=50, num_test=10), 50)
    assert labels.tolist() == load_digits().target[:50].tolist()
    assert training_labels(DataConfig(name="celeba"), 5) is None
    assert training_labels(DataConfig(name="mnist", root=str(tmp_path)), 5) is None
    # An IDX label file next to the images.
    import gzip

    import numpy as np

    header = bytes([0, 0, 8, 1]) + (6).to_bytes(4, "big")
    with gzip.open(tmp_path / "train-labels-idx1-ubyte.gz", "wb") as handle:
        handle.write(header + bytes([3, 1, 4, 1, 5, 9]))
    found = training_labels(DataConfig(name="mnist", root=str(tmp_path)), 4)
    assert found.dtype == np.int64 and found.tolist() == [3, 1, 4, 1]
    assert training_labels(DataConfig(name="mnist", root=str(tmp_path)), 7) is None


def test_feature_training_reports_progress(tmp_path):
    images = torch.rand(64, 1, 8, 8, generator=torch.Generator().manual_seed(0)).round()
    lines: list[str] = []
    recipe = AutoencoderRecipe(steps=20, batch_size=16, bottleneck=8)
    autoencoder_features("toy", images, tmp_path, recipe, log=lines.append)
    progress = [line for line in lines if line.strip().startswith("step ")]
    assert [line.split()[1] for line in progress] == [f"{k}/20," for k in range(2, 20, 2)]
    assert lines[0].startswith("training feature autoencoder") and "trained in" in lines[-1]
