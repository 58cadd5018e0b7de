"""Configs as files: typed building from dicts, TOML in and out, overrides and packaged configs.

TOML files and ``--set`` overrides go through one typed path (:func:`load_config`), so an unknown
key or a value of the wrong type is an error that names the key and the file.
:func:`dumps_toml` writes a config that :func:`load_config` reads back equal. The packaged configs
are the TOML files in ``tkam/configs`` (package data, next to this package).
"""

from __future__ import annotations

import math
import tomllib
import types
import typing
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import fields, is_dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from tkam.config.schema import ConfigError, ExperimentConfig, ineffective_settings

__all__ = [
    "DEPRECATED_KEYS",
    "config_from_dict",
    "config_to_dict",
    "dumps_toml",
    "load_config",
    "packaged_configs",
    "parse_override",
    "resolve_config_path",
]


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """``value`` as the field type ``tp``; ints pass for floats, integral floats for ints.

    Raises:
        ConfigError: naming ``key`` when the value does not have the type.
        TypeError: for an annotation the schema does not use (a programming error).
    """
    if isinstance(tp, types.UnionType):  # ``T | None``: None is only ever the default
        (tp,) = (arg for arg in typing.get_args(tp) if arg is not type(None))
    if isinstance(tp, type) and is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key}: expected a table, got {type(value).__name__}")
        return _build(tp, value, key)
    if typing.get_origin(tp) is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {type(value).__name__} {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], f"{key}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(f"{key}: expected {len(args)} values, got {len(value)}")
        return tuple(_coerce(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise ConfigError(f"{key}: must be a finite number, got {value!r}")
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    else:
        # Failing loudly keeps a new field type from being accepted unchecked.
        raise TypeError(f"{key}: the config schema has no reader for {tp!r}")
    raise ConfigError(f"{key}: expected {tp.__name__}, got {type(value).__name__} {value!r}")


def _build(cls: type, data: Mapping[str, Any], prefix: str) -> Any:
    """An instance of the dataclass ``cls`` from ``data``, errors prefixed by ``prefix``."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in fields(cls)}
    kwargs = {}
    for key, value in data.items():
        full = f"{prefix}.{key}" if prefix else key
        if key not in names:
            raise ConfigError(
                f"unknown key {full!r}; {cls.__name__} has: {', '.join(sorted(names))}"
            )
        kwargs[key] = _coerce(value, hints[key], full)
    try:
        return cls(**kwargs)
    except ConfigError as exc:
        # The dataclasses name their own keys; the prefix says which section they sit in.
        message = str(exc)
        if prefix and not message.startswith(prefix):
            message = f"{prefix}.{message}"
        raise ConfigError(message) from None


#: Keys that older configs may hold and that mean nothing now: ``section.key -> (old default,
#: why)``. A config that sets one still loads and the value is dropped, with a warning naming the
#: key unless the value is the old default (every ``config.toml`` an older tkam wrote holds it).
DEPRECATED_KEYS = {
    "train.sample_every": (
        0,
        "it was never read: a sample grid is written at every log event (train.log_every)",
    ),
}


def _without_deprecated(data: Mapping[str, Any], source: str) -> Mapping[str, Any]:
    """``data`` without the keys of :data:`DEPRECATED_KEYS`, each warned about (FutureWarning)."""
    cleaned = dict(data)
    for key, (default, why) in DEPRECATED_KEYS.items():
        section, name = key.split(".")
        values = cleaned.get(section)
        if not isinstance(values, Mapping) or name not in values:
            continue
        cleaned[section] = {k: v for k, v in values.items() if k != name}
        if values[name] == default:
            continue
        warnings.warn(
            f"{source}: {key} is deprecated and ignored ({why}); delete it",
            FutureWarning,
            stacklevel=3,
        )
    return cleaned


def config_from_dict(data: Mapping[str, Any], source: str = "<dict>") -> ExperimentConfig:
    """Build an :class:`ExperimentConfig` from nested dicts.

    Args:
        data: one table per section, as TOML reads them; keys of :data:`DEPRECATED_KEYS` are
            dropped with a warning.
        source: where ``data`` came from, named in errors and warnings.

    Raises:
        ConfigError: naming ``source`` and the key on an unknown key, a wrong type or a bad value.
    """
    data = _without_deprecated(data, source)
    try:
        return _build(ExperimentConfig, data, "")
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None


def config_to_dict(config: Any) -> dict[str, Any]:
    """Plain nested dict of a config (tuples become lists), the inverse of config_from_dict."""
    out: dict[str, Any] = {}
    for f in fields(config):
        value = getattr(config, f.name)
        if is_dataclass(value):
            out[f.name] = config_to_dict(value)
        elif isinstance(value, tuple):
            out[f.name] = list(value)
        else:
            out[f.name] = value
    return out


def _toml_value(value: Any) -> str:
    """One value in TOML syntax."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def dumps_toml(config: ExperimentConfig) -> str:
    """Serialise a config as TOML (one table per component); ``load_config`` reads it back.

    The config is written resolved, so ``train.loss`` is the concrete loss, never ``auto``.
    """
    lines = []
    for section, values in config_to_dict(config).items():
        lines.append(f"[{section}]")
        lines.extend(f"{k} = {_toml_value(v)}" for k, v in values.items())
        lines.append("")
    return "\n".join(lines)


def parse_override(text: str) -> tuple[list[str], Any]:
    """Parse ``section.key=value`` (value in TOML syntax, bare words as strings).

    Raises:
        ConfigError: if ``text`` has no ``=`` or its key has no section.
    """
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected section.key=value")
    key, raw = text.split("=", 1)
    path = [p.strip() for p in key.strip().split(".")]
    if len(path) < 2 or not all(path):
        raise ConfigError(f"--set {text!r}: the key must look like section.key")
    raw = raw.strip()
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return path, value


def _packaged_folder() -> Any:
    """The packaged configs' folder (``tkam/configs``, package data of ``tkam``)."""
    return resources.files("tkam") / "configs"


def packaged_configs() -> list[str]:
    """Names of the configs shipped with the package (``tkam configs``)."""
    return sorted(p.name[:-5] for p in _packaged_folder().iterdir() if p.name.endswith(".toml"))


def resolve_config_path(name_or_path: str | Path) -> Path:
    """A TOML path as given, or the packaged config of that name.

    Raises:
        ConfigError: if a ``.toml`` path does not exist or a name is no packaged config.
    """
    if not str(name_or_path).strip():
        raise ConfigError(
            "no config given: name a TOML file or a packaged config "
            f"({', '.join(packaged_configs())})"
        )
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.is_file():
        if path.is_dir():
            raise ConfigError(f"config file {str(path)!r} is a folder, not a TOML file")
        if not path.is_file():
            raise ConfigError(f"config file {str(path)!r} does not exist")
        return path
    candidate = _packaged_folder() / f"{name_or_path}.toml"
    if not candidate.is_file():
        folder = " (it is a folder)" if path.is_dir() else ""
        raise ConfigError(
            f"{str(name_or_path)!r}{folder} is neither a TOML file nor a packaged config "
            f"(packaged: {', '.join(packaged_configs())})"
        )
    return Path(str(candidate))


def load_config(name_or_path: str | Path, overrides: Sequence[str] = ()) -> ExperimentConfig:
    """Load a TOML config (path or packaged name) and apply ``section.key=value`` overrides.

    Args:
        name_or_path: a ``.toml`` file or the name of a packaged config.
        overrides: ``section.key=value`` strings (``--set``), applied in order.

    Raises:
        ConfigError: naming the file and key on an unknown key, a wrong type or a bad value;
            naming the file when it cannot be read or is not UTF-8 text (TOML is UTF-8).
    """
    path = resolve_config_path(name_or_path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start}); "
            "a TOML config must be UTF-8"
        ) from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    source = str(path)
    for text in overrides:
        keys, value = parse_override(text)
        node = data
        for k in keys[:-1]:
            node = node.setdefault(k, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {text!r}: {k!r} is not a table")
        node[keys[-1]] = value
    if overrides:
        source = f"{path} (with --set {' '.join(overrides)})"
    config = config_from_dict(data, source)
    unused = ineffective_settings(config)
    if unused:
        warnings.warn(
            f"{source}: settings without effect in this model: {'; '.join(unused)}", stacklevel=2
        )
    return config
