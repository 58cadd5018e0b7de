"""The reference implementation's ``.ini`` configs, read into :class:`ExperimentConfig`.

This module owns the mapping of the reference's sections and keys onto the schema; the mapped
values then go through :func:`tkam.config.io.config_from_dict` like any TOML file. Keys are mapped
by the table ``_MAP`` below (reference section and key -> tkam section and key; ``_IGNORED`` and
``_IGNORED_SECTIONS`` list what has no effect here). The ``.ini`` files themselves are the reference
implementation's (its ``config/`` folder) and are not shipped with tkam. The reference's known slips
are corrected with a warning (generator widths that do not start at Q, departures A13; a learning
rate written ``01``, departures A14). Settings of features this package does not model are
reported as warnings, never silently dropped; features that would change the model (CNN or
sequence generators, deep priors) are errors.
"""

from __future__ import annotations

import configparser
import warnings
from pathlib import Path
from typing import Any

from tkam.config.io import config_from_dict
from tkam.config.schema import (
    BASE_ACTIVATIONS,
    BASES,
    REFERENCE_DOMAINS,
    REFERENCES,
    ConfigError,
    ExperimentConfig,
    PriorConfig,
)

__all__ = ["DATASET_NAMES", "from_ini"]

#: The data sets ``dataset`` may name (those of :data:`tkam.data.DATASETS`, which this package
#: cannot import: the data loaders read the config).
DATASET_NAMES = ("mnist", "fmnist", "svhn", "cifar10", "celeba", "darcy", "ptb", "digits")

_KAN_KEYS = {
    "spline_degree": "spline_degree",
    "layernorm": "layernorm",
    "base_activation": "base_activation",
    "spline_function": "basis",
    "grid_size": "grid_size",
    "grid_update_ratio": "grid_update_ratio",
    "grid_range": "grid_range",
    "ε_scale": "eps_scale",
    "μ_scale": "mu_scale",
    "σ_base": "sigma_base",
    "σ_spline": "sigma_spline",
    "init_τ": "init_tau",
    "τ_trainable": "tau_trainable",
}

# (section, key) -> (our section, our key)
_MAP: dict[tuple[str, str], tuple[str, str]] = {
    **{("EbmModel", k): ("prior", v) for k, v in _KAN_KEYS.items()},
    **{("GeneratorModel", k): ("generator", v) for k, v in _KAN_KEYS.items()},
    ("EbmModel", "layer_widths"): ("prior", "widths"),
    ("EbmModel", "π_0"): ("prior", "reference"),
    ("EbmModel", "GaussQuad_nodes"): ("prior", "num_nodes"),
    ("EbmModel", "quadrature_method"): ("prior", "quadrature"),
    ("EbmModel", "mixture_model"): ("prior", "mixture"),
    ("MixtureModel", "use_mixture_prior"): ("prior", "mixture"),
    ("MixtureModel", "train_proportions"): ("prior", "train_proportions"),
    ("GeneratorModel", "widths"): ("generator", "widths"),
    ("GeneratorModel", "generator_variance"): ("generator", "variance"),
    ("GeneratorModel", "generator_noise"): ("generator", "noise"),
    ("GeneratorModel", "output_activation"): ("generator", "output_activation"),
    ("GeneratorModel", "resampler"): ("train", "resampler"),
    ("GRID_UPDATING", "update_prior_grid"): ("prior", "update_grid"),
    ("GRID_UPDATING", "update_llhood_grid"): ("generator", "update_grid"),
    ("GRID_UPDATING", "num_grid_updating_samples"): ("grid_update", "num_samples"),
    ("GRID_UPDATING", "grid_update_frequency"): ("grid_update", "frequency"),
    ("GRID_UPDATING", "grid_update_decay"): ("grid_update", "decay"),
    ("TRAINING", "batch_size"): ("train", "batch_size"),
    ("TRAINING", "importance_sample_size"): ("train", "importance_samples"),
    ("TRAINING", "N_train"): ("data", "num_train"),
    ("TRAINING", "N_test"): ("data", "num_test"),
    ("TRAINING", "N_epochs"): ("train", "epochs"),
    ("TRAINING", "contrastive_divergence_training"): ("train", "contrastive"),
    ("TRAINING", "resampling_threshold_factor"): ("train", "resampling_threshold"),
    ("TRAINING", "eps"): ("train", "eps"),
    ("OPTIMIZER", "learning_rate"): ("train", "learning_rate"),
}

# Keys that do not change anything here (unused by the reference, logging, or constant settings).
_IGNORED = {
    ("TRAINING", "dataset"),
    ("TRAINING", "update_grid"),
    ("TRAINING", "verbose"),
    ("TRAINING", "num_generated_samples"),
    ("TRAINING", "batch_size_for_gen"),
    ("TRAINING", "checkpoint_every"),
    ("TRAINING", "gen_every"),
    ("TRAINING", "use_gpu"),
    ("GeneratorModel", "output_dim"),
    ("GeneratorModel", "perceptual_scale"),
    ("OPTIMIZER", "type"),
    ("OPTIMIZER", "l-bfgs_memory"),
}
# Whole sections without effect here (keys of these need no entry above).
_IGNORED_SECTIONS = {
    "LINE_SEARCH",
    "MIXED_PRECISION",
    "PRIOR_LANGEVIN",
    "POST_LANGEVIN",
    "THERMODYNAMIC_INTEGRATION",
    "CNN",
    "SEQ",
    "PCA",
}


def _parse(raw: str) -> Any:
    """An ``.ini`` value: a bool, a number, a comma-separated list of them, or a string."""
    text = raw.strip()
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    if "," in text:
        return [_parse(part) for part in text.split(",")]
    try:
        return int(text) if text.lstrip("-").isdigit() and not text.startswith("0") else float(text)
    except ValueError:
        return text.strip('"')


def _bool(cp: configparser.ConfigParser, section: str, key: str) -> bool:
    """Whether ``[section] key`` is present and true."""
    return cp.has_option(section, key) and _parse(cp.get(section, key)) is True


def from_ini(path: str | Path, dataset: str | None = None) -> ExperimentConfig:
    """Convert a reference ``.ini`` config (mapped as the module describes) into an
    :class:`ExperimentConfig`.

    Args:
        path: the ``.ini`` file.
        dataset: data set name (the reference takes it from an environment variable), one of
            tkam's data sets (case-insensitive); default ``mnist``.

    Raises:
        ConfigError: naming the file and key for unreadable values and for settings that need a
            model this package does not provide (CNN or sequence generators, deep priors).
    """
    path = Path(path)
    if dataset is not None and dataset.strip().lower() not in DATASET_NAMES:
        raise ConfigError(
            f"dataset={dataset!r} is not one of tkam's data sets ({', '.join(DATASET_NAMES)})"
        )
    cp = _read(path)
    _refuse_other_generators(cp, path, dataset)
    data: dict[str, dict[str, Any]] = {"data": {"name": (dataset or "mnist").lower()}}
    ignored = _map_values(cp, path, data)
    _fit_prior(data, path)
    _fit_generator_widths(data, path)
    _warn_unused(cp, path, ignored)
    return config_from_dict(data, str(path))


def _read(path: Path) -> configparser.ConfigParser:
    """The ``.ini`` file, keys in their own case (and Greek letters) and without interpolation.

    Raises:
        ConfigError: for a missing or unreadable file.
    """
    if not path.is_file():
        raise ConfigError(f"{path}: no such file")
    cp = configparser.ConfigParser(interpolation=None)
    # Keep key case and Greek letters. Replacing optionxform is configparser's documented way;
    # typeshed declares it a method, so the assignment needs the ignore.
    cp.optionxform = str  # type: ignore[assignment,method-assign]
    try:
        cp.read(path, encoding="utf-8")
    except configparser.Error as exc:
        raise ConfigError(f"{path}: not a readable .ini file ({exc})") from None
    return cp


def _refuse_other_generators(
    cp: configparser.ConfigParser, path: Path, dataset: str | None
) -> None:
    """Refuse the reference's CNN generator, and its sequence generator for text data.

    Raises:
        ConfigError: naming the setting.
    """
    if _bool(cp, "CNN", "use_cnn_lkhood"):
        raise ConfigError(f"{path}: [CNN] use_cnn_lkhood = true needs the CNN generator")
    if (
        cp.has_option("SEQ", "sequence_length")
        and int(_parse(cp.get("SEQ", "sequence_length"))) > 1
    ):
        if (dataset or "").lower() in ("ptb", "sms_spam", "text"):
            raise ConfigError(f"{path}: [SEQ] sequence_length > 1 needs the sequence generator")


def _map_values(
    cp: configparser.ConfigParser, path: Path, data: dict[str, dict[str, Any]]
) -> list[str]:
    """Put every key of ``_MAP`` into ``data`` under tkam's section and key (its value corrected
    by :func:`_corrected`); the keys that are neither mapped nor known to be without effect
    (``[section] key``)."""
    ignored: list[str] = []
    for section in cp.sections():
        for key, raw in cp.items(section):
            target = _MAP.get((section, key))
            if target is None:
                if (section, key) not in _IGNORED and section not in _IGNORED_SECTIONS:
                    ignored.append(f"[{section}] {key}")
                continue
            our_section, our_key = target
            value = _corrected(path, f"[{section}] {key}", our_key, _parse(raw), raw)
            data.setdefault(our_section, {})[our_key] = value
    return ignored


def _corrected(path: Path, name: str, our_key: str, value: Any, raw: str) -> Any:
    """The value of ``our_key`` as tkam reads it: unknown bases, activations and references
    replaced by the reference's fallbacks, quadrature names mapped, single values of list keys
    made lists, and the learning rate written ``01`` (A14) read as 1e-3, each with a warning."""
    if our_key == "basis" and str(value).lower() not in BASES:
        warnings.warn(
            f"{path}: {name} = {value!r} is unknown; B-spline (the reference's fallback)",
            stacklevel=4,
        )
        return "bspline"
    if our_key == "base_activation" and str(value).lower() not in BASE_ACTIVATIONS:
        warnings.warn(f"{path}: {name} = {value!r} is unknown; silu", stacklevel=4)
        return "silu"
    if our_key == "reference" and str(value).lower() not in REFERENCES:
        warnings.warn(f"{path}: {name} = {value!r} is unknown; uniform", stacklevel=4)
        return "uniform"
    if our_key == "quadrature":
        return "gausslegendre" if str(value).lower() == "gausslegendre" else "trapezium"
    if our_key in ("widths", "grid_range") and not isinstance(value, list):
        return [value]
    if our_key == "learning_rate" and raw.strip() == "01":
        warnings.warn(
            f"{path}: {name} = 01 reads as 1.0 in the reference (a slip, A14); using 1e-3",
            stacklevel=4,
        )
        return 1e-3
    return value


def _fit_prior(data: dict[str, dict[str, Any]], path: Path) -> None:
    """Refuse a deep prior; drop the prior's ``grid_range`` where the reference density fixes the
    domain (the reference ignores it there); give Chebyshev layers the reference's form (no base
    branch, ``tau`` just above 1).

    Raises:
        ConfigError: for more than two prior widths.
    """
    prior = data.setdefault("prior", {})
    if len(prior.get("widths", [])) > 2:
        raise ConfigError(
            f"{path}: [EbmModel] layer_widths {prior['widths']} is a deep prior, "
            "which needs the Langevin-sampled deep prior"
        )
    # The reference ignores the prior's grid_range where pi_0 fixes the domain; so do we, by
    # leaving it out (a config that states it would be refused).
    if REFERENCE_DOMAINS.get(str(prior.get("reference", "ebm")).lower()) is not None:
        prior.pop("grid_range", None)
    # The reference's Chebyshev layers have no base branch, and ours need tau > 1 to validate.
    for section in ("prior", "generator"):
        sec = data.get(section, {})
        if str(sec.get("basis", "")).lower() in ("cheby", "chebyshev"):
            sec["base_activation"] = "none"
            sec.setdefault("init_tau", 1.001)


def _fit_generator_widths(data: dict[str, dict[str, Any]], path: Path) -> None:
    """Generator widths that do not start at the prior's Q (the reference fails there, A13)
    become ``[Q, 2Q]``, with a warning."""
    generator = data.setdefault("generator", {})
    q = data["prior"].get("widths", list(PriorConfig().widths))[-1]
    widths = generator.get("widths")
    if widths and widths[0] != q:
        warnings.warn(
            f"{path}: [GeneratorModel] widths {widths} must start at Q={q} (the "
            f"reference fails here, A13); using [{q}, {2 * q}]",
            stacklevel=3,
        )
        generator["widths"] = [q, 2 * q]


def _warn_unused(cp: configparser.ConfigParser, path: Path, ignored: list[str]) -> None:
    """Warn that Langevin and thermodynamic settings are not used, and name the keys without
    effect."""
    if _bool(cp, "POST_LANGEVIN", "use_langevin") or (
        cp.has_option("THERMODYNAMIC_INTEGRATION", "num_temps")
        and int(_parse(cp.get("THERMODYNAMIC_INTEGRATION", "num_temps"))) > 1
    ):
        warnings.warn(
            f"{path}: Langevin/thermodynamic posterior settings are not used; the "
            "config trains with importance sampling",
            stacklevel=3,
        )
    if ignored:
        warnings.warn(f"{path}: keys without effect here: {', '.join(ignored)}", stacklevel=3)
