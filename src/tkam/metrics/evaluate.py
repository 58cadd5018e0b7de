"""Evaluating a finished run: FID/KID (and their infinity extrapolations), test log-likelihood,
Darcy statistics (maths 7). :func:`evaluate_run` returns the metrics dictionary that
``tkam evaluate`` writes to ``metrics.json``; :func:`format_table` renders it for people.
"""

from __future__ import annotations

import dataclasses
import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from tkam.config import ExperimentConfig
from tkam.data import ImageData, load_dataset, training_labels
from tkam.data.registry import has_labels
from tkam.metrics.darcy import darcy_field_errors
from tkam.metrics.extrapolation import default_sample_sizes, infinity_metrics
from tkam.metrics.features import (
    AutoencoderRecipe,
    ClassifierRecipe,
    FeatureNetwork,
    autoencoder_features,
    class_entropy,
    classifier_features,
    extract_features,
    inception_features,
    present_inception_weights,
    torchvision_available,
)
from tkam.metrics.likelihood import (
    estimate_iwae_bound,
    estimate_log_likelihood,
    estimate_thermodynamic_log_likelihood,
)
from tkam.model import LatentModel
from tkam.runs import ModelInfo, load_run, model_info

__all__ = [
    "EvaluationOptions",
    "MIN_SAMPLE_SIZE",
    "RELIABLE_SAMPLE_SIZE",
    "evaluate_run",
    "format_table",
    "sample_size_problem",
]

#: The smallest FID/KID sample size ``tkam evaluate`` scores: a covariance from fewer items says
#: nothing (FID at n = 2 is the distance of two pairs of points).
MIN_SAMPLE_SIZE = 10
#: Sample sizes below this are scored but flagged (a note, a warning, ``small_sample_sizes``), by
#: :func:`evaluate_run` at any size.
RELIABLE_SAMPLE_SIZE = 100


def sample_size_problem(sizes: Sequence[int], num_generated: int) -> str | None:
    """Why FID/KID at ``sizes`` are refused (a size below :data:`MIN_SAMPLE_SIZE`), or None."""
    if min(sizes) >= MIN_SAMPLE_SIZE:
        return None
    return (
        f"FID/KID need at least {MIN_SAMPLE_SIZE} images per sample size, and --num "
        f"{num_generated} gives sample sizes {', '.join(map(str, sizes))}: use --num "
        f"{5 * MIN_SAMPLE_SIZE} or more (at least {RELIABLE_SAMPLE_SIZE} per size for scores worth "
        "comparing), or --sample-sizes of at least "
        f"{MIN_SAMPLE_SIZE}"
    )


def _is_image(shape: Sequence[int]) -> bool:
    return len(shape) == 3 and shape[0] in (1, 3)


@dataclass(frozen=True)
class EvaluationOptions:
    """What :func:`evaluate_run` computes and how (``tkam evaluate``'s options).

    Attributes:
        num_generated: generated images (the largest FID/KID sample size by default).
        importance_samples: prior samples ``K`` of the log-likelihood estimate (0: no
            log-likelihood, for sample metrics alone).
        sample_sizes: FID/KID sample sizes (default
            :func:`~tkam.metrics.extrapolation.default_sample_sizes` of ``num_generated``).
        seed: seed of the generated images, the draws, the KID subsets and the estimate.
        inception: torchvision Inception-v3 weights file; ``None``: the one in
            ``<feature_cache>/features/inception_v3.pth`` if present (and torchvision is
            installed) when ``features`` is ``auto``.
        feature_cache: cache root of the feature networks' weights.
        feature_recipe: the autoencoder's training recipe (default ``AutoencoderRecipe()``).
        classifier_recipe: the classifier's training recipe (default ``ClassifierRecipe()``).
        features: ``auto`` (Inception if given or present, else the tkam classifier for
            labelled data sets, else the tkam autoencoder), ``classifier`` or ``autoencoder``.
        kid_subset_size: features per KID subset (1000, the reference's, maths 7).
        kid_num_subsets: number of KID subsets (100, the reference's).
        thermodynamic_items: for thermodynamic runs, how many of the first test items the
            thermodynamic-integration estimate uses (0: skip it).
        thermodynamic_chains: chains per item and temperature of that estimate.
        data_root: the data set's folder (for darcy its file) in place of the run's
            ``data.root``, for data that moved since training; ``None``: the run's.
        real: the real images of FID/KID: ``train`` (training images, the reference's, maths 7) or
            ``held-out`` (the run's test items: with ``data.split = "spec"`` a validation split
            of the training file, for choosing settings without touching the test set).
    """

    num_generated: int = 1000
    importance_samples: int = 1000
    sample_sizes: Sequence[int] | None = None
    seed: int = 0
    inception: str | Path | None = None
    feature_cache: str | Path | None = None
    feature_recipe: AutoencoderRecipe | None = None
    classifier_recipe: ClassifierRecipe | None = None
    features: str = "auto"
    kid_subset_size: int = 1000
    kid_num_subsets: int = 100
    thermodynamic_items: int = 100
    thermodynamic_chains: int = 4
    data_root: str | Path | None = None
    real: str = "train"


def evaluate_run(
    run_dir: str | Path,
    options: EvaluationOptions | None = None,
    log: Callable[[str], None] | None = print,
) -> dict[str, Any]:
    """All metrics of a run folder written by ``tkam train``.

    Args:
        run_dir: the run folder (``config.toml``, ``model.safetensors``).
        options: what to compute (default ``EvaluationOptions()``).
        log: progress lines (``None``: silent).

    Returns:
        A JSON-ready dictionary; metrics that do not apply are ``None`` with a ``notes`` entry.
    """
    options = options or EvaluationOptions()
    say = log or (lambda _line: None)
    if options.real not in ("train", "held-out"):
        raise ValueError(f"real must be train or held-out, not {options.real!r}")
    config, model, info = _load(run_dir, options.data_root, say)
    data = load_dataset(config.data)
    rng = torch.Generator().manual_seed(options.seed)
    notes: list[str] = []
    metrics = _header(run_dir, data.name, options, info)
    generated = _generate(model, options.num_generated, rng, say)
    if _is_image(data.image_shape):
        metrics.update(_sample_metrics(config, data, generated, rng, options, notes, log))
    else:
        notes.append(f"FID/KID skipped: {data.name} items {data.image_shape} are not images")
    metrics.update(_likelihood_metrics(config, model, data.test, rng, options, notes, say))
    if data.name == "darcy" and data.test.shape[0] > 1:
        metrics.update(darcy_field_errors(generated, data.test))
        metrics["darcy_note"] = (
            f"relative L2 errors, {options.num_generated} generated vs {data.test.shape[0]} "
            "held-out fields"
        )
    metrics["notes"] = notes
    return metrics


def _load(
    run_dir: str | Path, data_root: str | Path | None, say: Callable[[str], None]
) -> tuple[ExperimentConfig, LatentModel, ModelInfo]:
    """The run's config (its ``data.root`` replaced by ``data_root`` when given), its model and
    which model that is (said)."""
    config, model = load_run(run_dir)
    info = model_info(run_dir)
    say(f"model: {info.describe()}")
    if data_root is not None:
        data = dataclasses.replace(config.data, root=str(data_root))
        config = dataclasses.replace(config, data=data)
    return config, model, info


def _header(
    run_dir: str | Path, dataset: str, options: EvaluationOptions, info: ModelInfo
) -> dict[str, Any]:
    """The metrics' first entries: what was evaluated, and the sample metrics not yet known."""
    return {
        "run_dir": str(run_dir),
        "dataset": dataset,
        "seed": options.seed,
        "num_generated": options.num_generated,
        "model": info.as_dict(),
        "feature_network": None,
        "sample_sizes": None,
        "fid_values": None,
        "kid_values": None,
        "fid_infinity": None,
        "kid_infinity": None,
        "fid_at_n": None,
    }


def _generate(
    model: LatentModel, num: int, rng: torch.Generator, say: Callable[[str], None]
) -> torch.Tensor:
    """``num`` samples of the model, clamped to ``[0, 1]``."""
    start = time.perf_counter()
    generated = model.sample(num, rng).clamp(0.0, 1.0)
    say(f"{num} samples generated in {time.perf_counter() - start:.1f} s")
    return generated


def _sample_metrics(
    config: ExperimentConfig,
    data: ImageData,
    generated: torch.Tensor,
    rng: torch.Generator,
    options: EvaluationOptions,
    notes: list[str],
    log: Callable[[str], None] | None,
) -> dict[str, Any]:
    """FID/KID of the generated images at every sample size with their infinity
    extrapolations, in the features of :func:`_feature_network`, and the class entropy of the
    generated images when that network classifies."""
    say = log or (lambda _line: None)
    metrics: dict[str, Any] = {}
    sizes = _sample_sizes(options)
    metrics["small_sample_sizes"] = [n for n in sizes if n < RELIABLE_SAMPLE_SIZE]
    network, labels = _feature_network(config, data, options, notes, metrics, log)
    pool = data.train if options.real == "train" else data.test
    if pool.shape[0] < 2:
        raise ValueError(f"--real {options.real}: the run's data has {pool.shape[0]} such images")
    num_real = min(sizes[-1], pool.shape[0])
    real_rows = torch.randperm(pool.shape[0], generator=rng)[:num_real]
    start = time.perf_counter()
    real_features = extract_features(network, pool[real_rows])
    fake_features = extract_features(network, generated)
    result = infinity_metrics(
        real_features,
        fake_features,
        sizes,
        rng,
        subset_size=options.kid_subset_size,
        num_subsets=options.kid_num_subsets,
    )
    say(f"FID/KID at {len(sizes)} sample sizes in {time.perf_counter() - start:.1f} s")
    metrics.update(result._asdict())
    metrics["feature_network"] = network.name
    say(f"feature network: {network.name}")
    metrics["num_real"] = num_real
    which = "training" if options.real == "train" else "held-out (test-split)"
    metrics["real_set"] = f"{num_real} {which} images drawn without replacement"
    if hasattr(network, "classify"):
        classes = int(torch.as_tensor(labels).max()) + 1
        entropy, counts = class_entropy(network.classify(generated), classes)
        metrics["class_entropy"] = entropy
        metrics["class_entropy_max"] = math.log(classes)
        metrics["class_counts"] = counts
    metrics["batch_sizes"] = result.sample_sizes  # the reference's name for sample_sizes
    return metrics


def _sample_sizes(options: EvaluationOptions) -> list[int]:
    """The FID/KID sample sizes, increasing; sizes below :data:`RELIABLE_SAMPLE_SIZE` are
    warned about.

    Raises:
        ValueError: for a size above the number of generated images.
    """
    num = options.num_generated
    sizes = sorted(options.sample_sizes) if options.sample_sizes else default_sample_sizes(num)
    if sizes[-1] > num:
        raise ValueError(f"sample size {sizes[-1]} > --num {num}")
    small = [n for n in sizes if n < RELIABLE_SAMPLE_SIZE]
    if small:
        warnings.warn(_small_sizes_note(small), stacklevel=4)
    return sizes


def _feature_network(
    config: ExperimentConfig,
    data: ImageData,
    options: EvaluationOptions,
    notes: list[str],
    metrics: dict[str, Any],
    log: Callable[[str], None] | None,
) -> tuple[FeatureNetwork, Any]:
    """The network whose features FID/KID compare (see :attr:`EvaluationOptions.features`) and
    the training labels it was trained on (None for Inception and the autoencoder); a present
    Inception file that cannot be used and a classifier without labels are noted.

    Raises:
        ValueError: for an unknown ``features``, or ``classifier`` without class labels.
    """
    features, inception = options.features, options.inception
    if features not in ("auto", "classifier", "autoencoder"):
        raise ValueError(f"features must be auto, classifier or autoencoder, not {features!r}")
    if inception is None and features == "auto":
        found = present_inception_weights(options.feature_cache)
        if found is not None and torchvision_available():
            inception = found
        elif found is not None:
            notes.append(f"{found} is present but torchvision is not installed: tkam features used")
    labels = None
    if features != "autoencoder" and not inception:
        labels = training_labels(config.data, data.train.shape[0])
        if labels is None and features == "classifier":
            raise ValueError(f"{data.name}: no class labels for classifier features")
        if labels is None and has_labels(data.name):
            fallback = (
                f"the class labels of {data.name} were not found under its data root: FID/KID "
                "use tkam's autoencoder features in place of the classifier's, and are not "
                "comparable with scores from classifier features (restore the labels file, "
                "or pass --features classifier to refuse without them)"
            )
            notes.append(fallback)
            metrics["feature_fallback"] = fallback
            warnings.warn(fallback, stacklevel=4)
    if inception:
        return inception_features(inception), labels
    cache = options.feature_cache
    if labels is not None:
        classifier_recipe = options.classifier_recipe or ClassifierRecipe()
        network = classifier_features(
            data.name, data.train, torch.as_tensor(labels), cache, classifier_recipe, log=log
        )
        metrics["feature_network_accuracy"] = network.accuracy
        return network, labels
    recipe = options.feature_recipe or AutoencoderRecipe()
    return autoencoder_features(data.name, data.train, cache, recipe, log=log), labels


def _likelihood_metrics(
    config: ExperimentConfig,
    model: LatentModel,
    test: torch.Tensor,
    rng: torch.Generator,
    options: EvaluationOptions,
    notes: list[str],
    say: Callable[[str], None],
) -> dict[str, Any]:
    """The test log-likelihood by importance sampling, the VAE's importance-weighted bound and,
    for thermodynamic runs, the thermodynamic-integration estimate (each with its standard
    errors and note)."""
    metrics: dict[str, Any] = {"num_test": int(test.shape[0])}
    k = options.importance_samples
    metrics["importance_samples"] = k
    if k == 0 or test.shape[0] == 0:
        metrics["log_likelihood_nats_per_dim"] = None
        metrics["log_likelihood_standard_error"] = None
        why = "--importance-samples 0" if k == 0 else "the run's data config has no test items"
        notes.append(f"log-likelihood skipped: {why}")
        return metrics
    estimate = lambda: estimate_log_likelihood(model, test, k, rng)
    metrics.update(_estimate("log_likelihood", f"log-likelihood with K={k}", estimate, say))
    if model.has_encoder:  # the VAE: its importance-weighted bound, same K
        bound = lambda: estimate_iwae_bound(model, test, k, rng)
        metrics.update(_estimate("iwae_bound", f"IWAE bound with K={k}", bound, say))
    if config.train.loss == "thermodynamic" and options.thermodynamic_items > 0:
        items = test[: options.thermodynamic_items]
        thermodynamic = lambda: estimate_thermodynamic_log_likelihood(
            model,
            items,
            config.posterior,
            config.thermodynamic,
            power=config.thermodynamic.p_end,
            rng=rng,
            chains_per_item=options.thermodynamic_chains,
        )
        label = f"thermodynamic estimate on {items.shape[0]} items"
        metrics.update(_estimate("thermodynamic_log_likelihood", label, thermodynamic, say))
        metrics["thermodynamic_num_test"] = int(items.shape[0])
        metrics["thermodynamic_log_likelihood_note"] += " (power: thermodynamic.p_end)"
    return metrics


def _estimate(
    key: str, label: str, estimate: Callable[[], Any], say: Callable[[str], None]
) -> dict[str, Any]:
    """One log-likelihood estimate (timed and said) as the entries ``<key>_nats_per_dim``,
    ``_standard_error``, ``_test_set_standard_error``, ``_normalised`` and ``_note``."""
    start = time.perf_counter()
    result = estimate()
    say(f"{label} in {time.perf_counter() - start:.1f} s")
    return {
        f"{key}_nats_per_dim": result.nats_per_dim,
        f"{key}_standard_error": result.standard_error,
        f"{key}_test_set_standard_error": result.test_set_standard_error,
        f"{key}_normalised": result.normalised,
        f"{key}_note": result.note,
    }


def _number(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.6g}"
    return str(value)


def _small_sizes_note(small: Sequence[int]) -> str:
    return (
        f"FID/KID at sample sizes below {RELIABLE_SAMPLE_SIZE} ({', '.join(map(str, small))}) are "
        "dominated by their bias and noise (KID can be negative): compare them only with runs "
        "scored at the same sizes"
    )


def _model_text(model: dict[str, Any] | None) -> str | None:
    if not model:
        return None
    return f"step {model.get('step')}, sha256 {str(model.get('sha256'))[:12]}"


def format_table(metrics: dict[str, Any]) -> str:
    """A readable two-column summary of :func:`evaluate_run`'s dictionary."""
    rows = [
        ("dataset", metrics.get("dataset")),
        ("model", _model_text(metrics.get("model"))),
        ("feature network", metrics.get("feature_network")),
        ("  its accuracy", metrics.get("feature_network_accuracy")),
        ("sample sizes", metrics.get("sample_sizes")),
        ("FID at each n", metrics.get("fid_values")),
        ("KID at each n", metrics.get("kid_values")),
        ("FID-infinity", metrics.get("fid_infinity")),
        ("KID-infinity", metrics.get("kid_infinity")),
        ("FID at largest n", metrics.get("fid_at_n")),
        ("real images", metrics.get("real_set")),
        ("class entropy (nats)", metrics.get("class_entropy")),
        ("  of at most", metrics.get("class_entropy_max")),
        ("test items", metrics.get("num_test")),
        ("log-lik. (nats/dim)", metrics.get("log_likelihood_nats_per_dim")),
        ("  MC standard error", metrics.get("log_likelihood_standard_error")),
        ("  test-set std. error", metrics.get("log_likelihood_test_set_standard_error")),
    ]
    if "iwae_bound_nats_per_dim" in metrics:
        rows.append(("IWAE bound (nats/dim)", metrics["iwae_bound_nats_per_dim"]))
    if "thermodynamic_log_likelihood_nats_per_dim" in metrics:
        rows += [
            ("TI log-lik. (nats/dim)", metrics["thermodynamic_log_likelihood_nats_per_dim"]),
            ("  MC standard error", metrics["thermodynamic_log_likelihood_standard_error"]),
        ]
    for key in ("darcy_mean_field_error", "darcy_variance_error", "darcy_power_spectrum_error"):
        if key in metrics:
            rows.append((key.replace("darcy_", "Darcy ").replace("_", " "), metrics[key]))
    lines = []
    for label, value in rows:
        if isinstance(value, list):
            text = ", ".join(_number(v) for v in value)
        else:
            text = _number(value)
        lines.append(f"{label:22s} {text}")
    for key, label in (
        ("log_likelihood_note", "log-likelihood"),
        ("iwae_bound_note", "IWAE bound"),
        ("thermodynamic_log_likelihood_note", "TI log-likelihood"),
    ):
        if metrics.get(key):
            lines.append(f"{label}: {metrics[key]}")
    if metrics.get("small_sample_sizes"):
        lines.append(f"note: {_small_sizes_note(metrics['small_sample_sizes'])}")
    lines.extend(f"note: {note}" for note in metrics.get("notes", []))
    return "\n".join(lines)
