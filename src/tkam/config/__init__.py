"""Typed, frozen experiment configuration.

The package is split by what each module owns, and imports flow one way,
``schema`` <- ``io`` <- ``ini``:

* :mod:`tkam.config.schema`: the frozen dataclasses, their validation and the tables of choices.
* :mod:`tkam.config.io`: building configs from dicts with typed checks, TOML in and out,
  ``--set`` overrides, the packaged configs and config paths.
* :mod:`tkam.config.ini`: the reference implementation's ``.ini`` files mapped onto the schema.

This module re-exports the public names, so ``from tkam.config import load_config, from_ini``
is all a user needs.
"""

from __future__ import annotations

from tkam.config.ini import from_ini
from tkam.config.io import (
    config_from_dict,
    config_to_dict,
    dumps_toml,
    load_config,
    packaged_configs,
    parse_override,
    resolve_config_path,
)
from tkam.config.schema import (
    BASE_ACTIVATIONS,
    BASES,
    REFERENCE_DOMAINS,
    REFERENCES,
    ConfigError,
    DataConfig,
    ExperimentConfig,
    GeneratorConfig,
    GridUpdateConfig,
    KANConfig,
    ModelConfig,
    PosteriorConfig,
    PriorConfig,
    ThermodynamicConfig,
    TrainConfig,
)

__all__ = [
    "ConfigError",
    "KANConfig",
    "PriorConfig",
    "GeneratorConfig",
    "GridUpdateConfig",
    "TrainConfig",
    "DataConfig",
    "PosteriorConfig",
    "ThermodynamicConfig",
    "ModelConfig",
    "ExperimentConfig",
    "BASES",
    "BASE_ACTIVATIONS",
    "REFERENCE_DOMAINS",
    "REFERENCES",
    "load_config",
    "config_from_dict",
    "config_to_dict",
    "dumps_toml",
    "packaged_configs",
    "resolve_config_path",
    "parse_override",
    "from_ini",
]
