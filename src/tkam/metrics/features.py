"""Feature networks for FID/KID (design 6): Inception-v3, a tkam classifier or a tkam
autoencoder.

Pretrained Inception weights cannot be downloaded here, so the default features come from a
small classifier that tkam trains per labelled data set (LeNet-5 style for 28x28 images, a small
CNN for other sizes; its penultimate layer is the feature vector), or, for data sets without
labels (CelebA, Darcy), from a small convolutional autoencoder whose bottleneck is the feature
vector. Trained weights are cached under
``<cache>/features/<dataset>-<CxHxW>-<recipe hash>.safetensors``. Every feature network has a
``name`` that metric files record: numbers from different feature networks are not comparable.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol, TypeVar

import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

try:  # optional: only the Inception features need it
    from torchvision.models import inception_v3
except ImportError:
    inception_v3 = None

from tkam.files import atomic_path, cache_root

__all__ = [
    "AUTOENCODER_VERSION",
    "AutoencoderRecipe",
    "ClassifierNetwork",
    "ClassifierRecipe",
    "ConvAutoencoder",
    "classifier_features",
    "train_classifier",
    "FeatureError",
    "FeatureNetwork",
    "autoencoder_features",
    "class_entropy",
    "default_cache_dir",
    "extract_features",
    "inception_features",
    "present_inception_weights",
    "quantise",
    "train_autoencoder",
]

#: Bumped whenever the architecture or the training procedure changes (part of the cache key).
AUTOENCODER_VERSION = 1
CLASSIFIER_VERSION = 1

_Built = TypeVar("_Built", bound=nn.Module)


class FeatureError(RuntimeError):
    """A feature network cannot be built (missing package or weights file)."""


class FeatureNetwork(Protocol):
    """Images ``(N, C, H, W)`` in ``[0, 1]`` -> features ``(N, d)``, with a recorded ``name``."""

    name: str

    def __call__(self, images: Tensor) -> Tensor: ...


class ClassifierNetwork(FeatureNetwork, Protocol):
    """A :class:`FeatureNetwork` with the held-out ``accuracy`` of its classifier."""

    accuracy: float


def quantise(images: Tensor) -> Tensor:
    """What writing PNGs does (maths 7): ``floor(255 x) / 255`` of ``x`` clamped to [0, 1]."""
    return torch.floor(images.clamp(0.0, 1.0) * 255.0) / 255.0


@torch.no_grad()
def extract_features(network: FeatureNetwork, images: Tensor, batch_size: int = 500) -> Tensor:
    """Features ``(N, d)`` float64 of quantised images ``(N, C, H, W)``, in batches."""
    chunks = [
        network(quantise(images[i : i + batch_size].float())).double()
        for i in range(0, images.shape[0], batch_size)
    ]
    return torch.cat(chunks)


class _Recipe:
    """A training recipe (a frozen dataclass) whose hash names the cached weights."""

    _version: ClassVar[int]
    # Set by @dataclass on every recipe (what dataclasses.asdict needs).
    __dataclass_fields__: ClassVar[dict[str, dataclasses.Field[Any]]]

    def digest(self, num_images: int) -> str:
        """Ten hex digits identifying this recipe, the architecture version and the image count."""
        payload = {
            **dataclasses.asdict(self),
            "version": self._version,
            "num_images": int(num_images),
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:10]


def _seeded(seed: int, build: Callable[[], _Built]) -> _Built:
    """``build()`` with the global stream at ``seed`` (nn.Module initialisers draw from it),
    leaving the caller's global stream as it was."""
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        return build()
    finally:
        torch.random.set_rng_state(state)


def _train(
    model: _Built,
    recipe,  # noqa: ANN001
    num_rows: int,
    loss_of_rows,  # noqa: ANN001
    log: Callable[[str], None] | None = None,
) -> _Built:
    """``recipe.steps`` Adam steps on ``loss_of_rows(rows)`` for random batches of row indices
    (the recipe's seed fixes their order); returns the model in eval mode. ``log`` gets a
    progress line at every tenth of the steps (feature networks train for minutes)."""
    rng = torch.Generator().manual_seed(recipe.seed)
    optimiser = torch.optim.Adam(model.parameters(), lr=recipe.learning_rate)
    every, start = max(1, recipe.steps // 10), time.perf_counter()
    for step in range(1, recipe.steps + 1):
        rows = torch.randint(num_rows, (min(recipe.batch_size, num_rows),), generator=rng)
        loss = loss_of_rows(rows)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        if log and step % every == 0 and step < recipe.steps:
            log(f"  step {step}/{recipe.steps}, {time.perf_counter() - start:.0f} s")
    return model.eval()


def _save_weights(model: nn.Module, path: Path, metadata: dict[str, str]) -> None:
    """Write ``model``'s weights to ``path`` atomically: a concurrent reader never sees half a
    file."""
    with atomic_path(path) as temporary:
        save_file(model.state_dict(), str(temporary), metadata=metadata)


# ------------------------------------------------------------------------------------------------
# The tkam autoencoder


def _conv_stack(channels: int) -> list[nn.Module]:
    """Three 3x3 convolutions (32, 64, 128 channels) with ReLU, the first two followed by 2x2
    max pooling: the trunk of the autoencoder's encoder and of the small classifier."""
    return [
        nn.Conv2d(channels, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2, ceil_mode=True),
        nn.Conv2d(32, 64, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2, ceil_mode=True),
        nn.Conv2d(64, 128, 3, padding=1),
        nn.ReLU(),
    ]


class ConvAutoencoder(nn.Module):
    """A small convolutional autoencoder for ``(C, H, W)`` images of any size.

    Encoder: three 3x3 convolutions (32, 64, 128 channels; the first two followed by 2x2 max
    pooling, LeNet style), adaptive average pooling to 4x4 (so any input size works) and a
    linear map to the ``bottleneck`` features. Decoder: a linear map to ``64 x 4 x 4`` and
    convolutions with bilinear upsampling to ``(H / 2, W / 2)`` and ``(H, W)``, sigmoid output.
    """

    def __init__(self, image_shape: tuple[int, ...], bottleneck: int = 128) -> None:
        super().__init__()
        channels, height, width = image_shape
        self.image_shape = (int(channels), int(height), int(width))
        self.encoder = nn.Sequential(
            *_conv_stack(channels),
            nn.AdaptiveAvgPool2d(4),
            nn.Flatten(),
            nn.Linear(128 * 16, bottleneck),
        )
        self.expand = nn.Linear(bottleneck, 64 * 16)
        self.up1 = nn.Conv2d(64, 64, 3, padding=1)
        self.up2 = nn.Conv2d(64, 32, 3, padding=1)
        self.out = nn.Conv2d(32, channels, 3, padding=1)

    def encode(self, images: Tensor) -> Tensor:
        """``(N, C, H, W)`` -> ``(N, bottleneck)``."""
        return self.encoder(images)

    def decode(self, features: Tensor) -> Tensor:
        """``(N, bottleneck)`` -> ``(N, C, H, W)`` in ``(0, 1)``."""
        _, height, width = self.image_shape
        h = F.relu(self.expand(features)).view(-1, 64, 4, 4)
        h = F.interpolate(h, size=(max(height // 2, 1), max(width // 2, 1)), mode="bilinear")
        h = F.relu(self.up1(h))
        h = F.interpolate(h, size=(height, width), mode="bilinear")
        h = F.relu(self.up2(h))
        return torch.sigmoid(self.out(h))

    def forward(self, images: Tensor) -> Tensor:
        return self.decode(self.encode(images))


@dataclass(frozen=True, kw_only=True)
class AutoencoderRecipe(_Recipe):
    """How the feature autoencoder is trained; its hash names the cached weights.

    Attributes:
        bottleneck: feature dimension.
        steps: Adam steps on mean squared reconstruction error.
        batch_size: images per step.
        learning_rate: Adam learning rate.
        max_images: the first ``max_images`` training images are used.
        seed: seed of the initialisation and the batch order.
    """

    bottleneck: int = 128
    steps: int = 250
    batch_size: int = 64
    learning_rate: float = 2e-3
    max_images: int = 10000
    seed: int = 0

    _version: ClassVar[int] = AUTOENCODER_VERSION


def train_autoencoder(
    images: Tensor,
    recipe: AutoencoderRecipe = AutoencoderRecipe(),
    log: Callable[[str], None] | None = None,
) -> ConvAutoencoder:
    """Train a :class:`ConvAutoencoder` on ``images (N, C, H, W)`` in ``[0, 1]`` (eval mode);
    ``log`` gets progress lines."""
    data = images[: recipe.max_images].float().clamp(0.0, 1.0)
    model = _seeded(recipe.seed, lambda: ConvAutoencoder(tuple(data.shape[1:]), recipe.bottleneck))
    return _train(
        model, recipe, data.shape[0], lambda rows: F.mse_loss(model(data[rows]), data[rows]), log
    )


def default_cache_dir() -> Path:
    """``$TKAM_CACHE`` or ``~/.cache/tkam``."""
    return cache_root()


class _AutoencoderFeatures:
    def __init__(self, model: ConvAutoencoder, name: str) -> None:
        self.model = model
        self.name = name

    @torch.no_grad()
    def __call__(self, images: Tensor) -> Tensor:
        return self.model.encode(images)


def autoencoder_features(
    dataset: str,
    train_images: Tensor,
    cache_dir: str | Path | None = None,
    recipe: AutoencoderRecipe = AutoencoderRecipe(),
    log=print,
) -> FeatureNetwork:
    """The tkam autoencoder features of a data set, trained on first use and cached.

    Args:
        dataset: data set name (part of the cache key and of the feature network's name).
        train_images: ``(N, C, H, W)`` training images in ``[0, 1]``.
        cache_dir: cache root (default :func:`default_cache_dir`); weights go to
            ``<cache_dir>/features/``.
        recipe: the training recipe.
        log (Callable[[str], None] | None): where progress lines go (``None`` for silence).

    Returns:
        A feature network named ``tkam-autoencoder-<dataset>-<CxHxW>-v<version>-<hash>``.
    """
    shape = tuple(int(s) for s in train_images.shape[1:])
    if len(shape) != 3:
        raise FeatureError(f"autoencoder features need images (C, H, W), got items of {shape}")
    num_images = min(recipe.max_images, train_images.shape[0])
    digest = recipe.digest(num_images)
    shape_text = "x".join(str(s) for s in shape)
    stem = f"{dataset}-{shape_text}-{digest}"
    name = f"tkam-autoencoder-{dataset}-{shape_text}-v{AUTOENCODER_VERSION}-{digest}"
    path = Path(cache_dir or default_cache_dir()).expanduser() / "features" / f"{stem}.safetensors"
    model = ConvAutoencoder(shape, recipe.bottleneck)
    if path.is_file():
        model.load_state_dict(load_file(str(path)))
        return _AutoencoderFeatures(model.eval(), name)
    if log:
        log(f"training feature autoencoder for {dataset} ({recipe.steps} steps) -> {path}")
    start = time.perf_counter()
    model = train_autoencoder(train_images, recipe, log)
    metadata = {
        "name": name,
        "recipe": json.dumps(dataclasses.asdict(recipe), sort_keys=True),
        "num_images": str(num_images),
    }
    _save_weights(model, path, metadata)
    if log:
        log(f"feature autoencoder trained in {time.perf_counter() - start:.1f} s")
    return _AutoencoderFeatures(model, name)


# ------------------------------------------------------------------------------------------------
# The tkam classifier (labelled data sets)


class FeatureClassifier(nn.Module):
    """A small image classifier whose penultimate activations are the features.

    28x28 inputs get LeNet-5 (two 5x5 convolutions with 6 and 16 channels and 2x2 max pooling,
    then 120 and 84 units; 84 features). Any other size gets a small CNN: three 3x3
    convolutions (32, 64, 128 channels, the first two followed by 2x2 max pooling), global
    average pooling and 128 units (128 features).
    """

    def __init__(self, image_shape: tuple[int, ...], num_classes: int) -> None:
        super().__init__()
        channels, height, width = image_shape
        if (height, width) == (28, 28):
            self.body = nn.Sequential(
                nn.Conv2d(channels, 6, 5, padding=2),
                nn.ReLU(),
                nn.MaxPool2d(2),
                nn.Conv2d(6, 16, 5),
                nn.ReLU(),
                nn.MaxPool2d(2),
                nn.Flatten(),
                nn.Linear(16 * 5 * 5, 120),
                nn.ReLU(),
                nn.Linear(120, 84),
                nn.ReLU(),
            )
            width_out = 84
        else:
            self.body = nn.Sequential(
                *_conv_stack(channels),
                nn.AdaptiveAvgPool2d(1),
                nn.Flatten(),
                nn.Linear(128, 128),
                nn.ReLU(),
            )
            width_out = 128
        self.head = nn.Linear(width_out, num_classes)

    def features(self, images: Tensor) -> Tensor:
        """``(N, C, H, W)`` -> ``(N, 84 or 128)``, the penultimate activations."""
        return self.body(images)

    def forward(self, images: Tensor) -> Tensor:
        return self.head(self.body(images))


@dataclass(frozen=True, kw_only=True)
class ClassifierRecipe(_Recipe):
    """How the feature classifier is trained; its hash names the cached weights.

    Attributes:
        steps: Adam steps on the cross-entropy.
        batch_size, learning_rate: of those steps.
        max_images: the first ``max_images`` labelled training images are used; the last tenth
            of them is held out to report the accuracy.
        seed: seed of the initialisation and the batch order.
    """

    steps: int = 1500
    batch_size: int = 128
    learning_rate: float = 1e-3
    max_images: int = 20000
    seed: int = 0

    _version: ClassVar[int] = CLASSIFIER_VERSION


def train_classifier(
    images: Tensor,
    labels: Tensor,
    recipe: ClassifierRecipe = ClassifierRecipe(),
    log: Callable[[str], None] | None = None,
) -> tuple[FeatureClassifier, float]:
    """Train a :class:`FeatureClassifier` on the first nine tenths of ``images (N, C, H, W)``;
    returns it (eval mode) and its accuracy on the held-out last tenth. ``log`` gets progress
    lines."""
    count = min(recipe.max_images, images.shape[0])
    data = quantise(images[:count].float())
    targets = labels[:count].long()
    held_out = max(count // 10, 1) if count > 1 else 0
    fit_x, fit_y = data[: count - held_out], targets[: count - held_out]
    num_classes = int(targets.max()) + 1
    model = _seeded(recipe.seed, lambda: FeatureClassifier(tuple(data.shape[1:]), num_classes))
    _train(
        model,
        recipe,
        fit_x.shape[0],
        lambda rows: F.cross_entropy(model(fit_x[rows]), fit_y[rows]),
        log,
    )
    with torch.no_grad():
        test_x, test_y = data[count - held_out :], targets[count - held_out :]
        accuracy = float((model(test_x).argmax(-1) == test_y).float().mean()) if held_out else 0.0
    return model, accuracy


class _ClassifierFeatures:
    def __init__(self, model: FeatureClassifier, name: str, accuracy: float) -> None:
        self.model = model
        self.name = name
        self.accuracy = accuracy

    @torch.no_grad()
    def __call__(self, images: Tensor) -> Tensor:
        return self.model.features(images.float())

    @torch.no_grad()
    def classify(self, images: Tensor, batch_size: int = 500) -> Tensor:
        """The classifier's predicted class of each image, ``(N, C, H, W) -> (N,)`` (quantised
        to 8 bits first, like the features)."""
        labels = [
            self.model(quantise(images[i : i + batch_size]).float()).argmax(-1)
            for i in range(0, images.shape[0], batch_size)
        ]
        return torch.cat(labels)


def class_entropy(labels: Tensor, num_classes: int) -> tuple[float, list[int]]:
    """Entropy (nats) of the histogram of predicted classes, and the histogram: ``log C`` when
    samples cover the ``C`` classes evenly, 0 when they are all one class."""
    counts = torch.bincount(labels.long(), minlength=num_classes).double()
    p = counts / counts.sum()
    entropy = float(-(p[p > 0] * p[p > 0].log()).sum())
    return entropy, [int(c) for c in counts]


def classifier_features(
    dataset: str,
    train_images: Tensor,
    labels: Tensor,
    cache_dir: str | Path | None = None,
    recipe: ClassifierRecipe = ClassifierRecipe(),
    log=print,
) -> ClassifierNetwork:
    """The tkam classifier features of a labelled data set, trained on first use and cached.

    Returns:
        A feature network named ``tkam-classifier-<dataset>-<CxHxW>-v<version>-<hash>``, with
        an ``accuracy`` attribute (held-out accuracy of the classifier).
    """
    shape = tuple(int(s) for s in train_images.shape[1:])
    if len(shape) != 3:
        raise FeatureError(f"classifier features need images (C, H, W), got items of {shape}")
    if labels.shape[0] < train_images.shape[0]:
        raise FeatureError(f"{labels.shape[0]} labels for {train_images.shape[0]} images")
    num_images = min(recipe.max_images, train_images.shape[0])
    num_classes = int(labels[:num_images].max()) + 1
    digest = recipe.digest(num_images)
    shape_text = "x".join(str(s) for s in shape)
    name = f"tkam-classifier-{dataset}-{shape_text}-v{CLASSIFIER_VERSION}-{digest}"
    path = (
        Path(cache_dir or default_cache_dir()).expanduser()
        / "features"
        / f"classifier-{dataset}-{shape_text}-{digest}.safetensors"
    )
    model = FeatureClassifier(shape, num_classes)
    if path.is_file():
        model.load_state_dict(load_file(str(path)))
        with safe_open(str(path), "pt") as handle:
            accuracy = float(handle.metadata().get("accuracy", "nan"))
        return _ClassifierFeatures(model.eval(), name, accuracy)
    if log:
        log(f"training feature classifier for {dataset} ({recipe.steps} steps) -> {path}")
    start = time.perf_counter()
    model, accuracy = train_classifier(train_images, labels, recipe, log)
    metadata = {
        "name": name,
        "recipe": json.dumps(dataclasses.asdict(recipe), sort_keys=True),
        "num_images": str(num_images),
        "accuracy": repr(accuracy),
    }
    _save_weights(model, path, metadata)
    if log:
        log(
            f"feature classifier trained in {time.perf_counter() - start:.1f} s, held-out "
            f"accuracy {accuracy:.3f}"
        )
    return _ClassifierFeatures(model, name, accuracy)


# ------------------------------------------------------------------------------------------------
# Inception-v3 (needs torchvision and a weights file)


class _InceptionFeatures:
    name = "inception-v3-torchvision"

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
        std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
        self.mean, self.std = mean, std

    @torch.no_grad()
    def __call__(self, images: Tensor) -> Tensor:
        if images.shape[1] == 1:
            images = images.expand(-1, 3, -1, -1)
        x = F.interpolate(images, size=(299, 299), mode="bilinear", align_corners=False)
        return self.model((x - self.mean) / self.std)


#: Where ``tkam evaluate`` looks for Inception-v3 weights when ``--inception`` is not given.
INCEPTION_FILE = "inception_v3.pth"


def present_inception_weights(cache_dir: str | Path | None = None) -> Path | None:
    """``<cache>/features/inception_v3.pth`` if that file exists, else ``None``.

    Placing a torchvision Inception-v3 state dict there makes it the default feature network.
    """
    path = Path(cache_dir or default_cache_dir()).expanduser() / "features" / INCEPTION_FILE
    return path if path.is_file() else None


def torchvision_available() -> bool:
    return inception_v3 is not None


def inception_features(weights_path: str | Path) -> FeatureNetwork:
    """Inception-v3 pool features (2048-d) from a torchvision-format state dict.

    These are torchvision's Inception-v3, not torch-fidelity's FID-compatible port: values are
    comparable between tkam runs using the same weights file, not with published FIDs.

    Raises:
        FeatureError: if torchvision is not installed or the weights file is missing/invalid.
    """
    path = Path(weights_path).expanduser()
    if inception_v3 is None:
        raise FeatureError(
            "--inception needs torchvision (pip install torchvision) and a torchvision "
            "Inception-v3 state dict file; torchvision is not installed. Without --inception, "
            "tkam uses its own per-data-set autoencoder features."
        )
    if not path.is_file():
        raise FeatureError(f"--inception {path}: no such weights file")
    model = inception_v3(weights=None, aux_logits=True, init_weights=False)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    except (RuntimeError, OSError, ValueError) as exc:
        raise FeatureError(
            f"--inception {path}: not a torchvision Inception-v3 state dict ({exc})"
        ) from None
    model.fc = nn.Identity()
    return _InceptionFeatures(model.eval())
