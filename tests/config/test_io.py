"""tkam.config.io: loading TOML, errors that name key and file, overrides, round trips."""

from __future__ import annotations

import dataclasses
import re
import tomllib
from pathlib import Path

import pytest

from tkam.config import (
    ConfigError,
    ExperimentConfig,
    PriorConfig,
    config_from_dict,
    dumps_toml,
    load_config,
    packaged_configs,
    parse_override,
    resolve_config_path,
)

SMALL = """
[prior]
widths = [3, 5]
basis = "rbf"
grid_size = 6
reference = "gaussian"

[generator]
widths = [5, 8]

[train]
batch_size = 10
learning_rate = 1e-3
"""


def write(tmp_path: Path, text: str, name: str = "experiment.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_load_small_config(tmp_path) -> None:
    config = load_config(write(tmp_path, SMALL))
    assert isinstance(config, ExperimentConfig)
    assert config.prior.widths == (3, 5) and isinstance(config.prior.widths, tuple)
    assert (config.prior.num_inputs, config.prior.num_outputs) == (3, 5)
    assert config.prior.basis == "rbf" and config.prior.reference == "gaussian"
    assert config.train.batch_size == 10 and config.train.learning_rate == 1e-3
    # Defaults fill the rest.
    assert config.prior.num_nodes == PriorConfig().num_nodes
    assert config.grid_update.frequency == 100 and config.grid_update.decay == 0.999


def test_a_deprecated_key_still_loads_with_a_warning_naming_it(tmp_path) -> None:
    # Configs written before train.sample_every was removed (it was never read) keep loading.
    old = SMALL.replace("batch_size = 10", "batch_size = 10\nsample_every = 50")
    path = write(tmp_path, old)
    with pytest.warns(FutureWarning, match=r"train\.sample_every is deprecated and ignored"):
        config = load_config(path)
    assert config == load_config(write(tmp_path, SMALL, "current.toml"))
    with pytest.warns(FutureWarning, match=re.escape(str(path))):
        load_config(path)
    with pytest.warns(FutureWarning, match=r"train\.sample_every"):
        assert load_config(write(tmp_path, SMALL, "new.toml"), ["train.sample_every=5"]) == config
    assert "sample_every" not in dumps_toml(config)
    assert "sample_every" not in {field.name for field in dataclasses.fields(config.train)}


# ------------------------------------------------------------------------------------------------
# Errors name the key and the file


def test_unknown_key_names_the_key_and_the_file(tmp_path) -> None:
    path = write(tmp_path, SMALL.replace("grid_size = 6", "grid_sise = 6"))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert "prior.grid_sise" in message
    assert str(path) in message
    assert "grid_size" in message  # lists the valid keys


def test_unknown_section_names_the_section_and_the_file(tmp_path) -> None:
    path = write(tmp_path, SMALL + "\n[optimiser]\nlr = 0.1\n")
    with pytest.raises(ConfigError, match=re.escape(str(path))) as info:
        load_config(path)
    assert "optimiser" in str(info.value)


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        ("grid_size = 6", 'grid_size = "six"', "prior.grid_size"),
        ("grid_size = 6", "grid_size = true", "prior.grid_size"),  # a bool is not an int
        ("grid_size = 6", "grid_size = 6.5", "prior.grid_size"),
        ('basis = "rbf"', "basis = 3", "prior.basis"),
        ("widths = [3, 5]", 'widths = [3, "five"]', "prior.widths[1]"),
        ("widths = [3, 5]", "widths = 5", "prior.widths"),
        ("batch_size = 10", "batch_size = [10]", "train.batch_size"),
        ("learning_rate = 1e-3", 'learning_rate = "fast"', "train.learning_rate"),
        ("learning_rate = 1e-3", "loss = 1", "train.loss"),
    ],
)
def test_wrong_type_names_the_key_and_the_file(tmp_path, old, new, key) -> None:
    path = write(tmp_path, SMALL.replace(old, new))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert key in str(info.value)
    assert str(path) in str(info.value)


def test_wrong_number_of_values_and_non_tables_name_the_key() -> None:
    with pytest.raises(ConfigError, match=r"prior.grid_range: expected 2 values, got 3"):
        config_from_dict({"prior": {"grid_range": [-1, 0, 1]}})
    with pytest.raises(ConfigError, match="prior: expected a table"):
        config_from_dict({"prior": 3})


def test_integers_are_accepted_for_floats_and_integral_floats_for_ints(tmp_path) -> None:
    text = SMALL.replace("learning_rate = 1e-3", "learning_rate = 1").replace(
        "grid_size = 6", "grid_size = 6.0"
    )
    config = load_config(write(tmp_path, text))
    assert config.train.learning_rate == 1.0 and isinstance(config.train.learning_rate, float)
    assert config.prior.grid_size == 6 and isinstance(config.prior.grid_size, int)


def test_bad_basis_name_is_an_error_listing_the_choices(tmp_path) -> None:
    path = write(tmp_path, SMALL.replace('basis = "rbf"', 'basis = "wavelet"'))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert "prior.basis" in message and "wavelet" in message and str(path) in message
    for name in ("bspline", "rbf", "rswaf", "fourier", "chebyshev"):
        assert name in message


def test_missing_and_malformed_files(tmp_path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "absent.toml")
    path = write(tmp_path, "[prior\nwidths = ", "broken.toml")
    with pytest.raises(ConfigError, match=re.escape(str(path))):
        load_config(path)
    with pytest.raises(ConfigError, match="neither a TOML file nor a packaged config"):
        load_config("no_such_packaged_config_name")


def test_packaged_names_resolve_to_the_packaged_files() -> None:
    names = packaged_configs()
    assert "digits" in names
    for name in names:
        path = resolve_config_path(name)
        assert path.is_file() and path.name == f"{name}.toml"


# ------------------------------------------------------------------------------------------------
# Overrides (--set section.key=value) go through the same typed path


def test_overrides_are_parsed_and_typed(tmp_path) -> None:
    path = write(tmp_path, SMALL)
    config = load_config(
        path,
        [
            "prior.basis=FFT",
            "train.learning_rate=3e-4",
            "prior.mixture=true",
            "prior.reference=ebm",
            "prior.grid_range=[-2, 2]",
            "data.name=mnist",  # a bare word is a string
            "prior.widths=[4, 5]",
        ],
    )
    assert config.prior.basis == "fourier"
    assert config.train.learning_rate == 3e-4
    assert config.prior.mixture is True
    assert config.prior.grid_range == (-2.0, 2.0)
    assert config.data.name == "mnist"
    assert config.prior.widths == (4, 5)
    # The file itself is untouched by overrides.
    assert load_config(path).prior.basis == "rbf"


def test_bad_overrides_name_the_key(tmp_path) -> None:
    path = write(tmp_path, SMALL)
    with pytest.raises(ConfigError) as info:
        load_config(path, ["prior.grid_sise=3"])
    assert "prior.grid_sise" in str(info.value) and "--set" in str(info.value)
    with pytest.raises(ConfigError, match="prior.grid_size"):
        load_config(path, ["prior.grid_size=many"])
    with pytest.raises(ConfigError, match="section.key=value"):
        load_config(path, ["prior.grid_size"])
    with pytest.raises(ConfigError, match="section.key"):
        load_config(path, ["grid_size=3"])


def test_parse_override() -> None:
    assert parse_override("train.lr = 0.5") == (["train", "lr"], 0.5)
    assert parse_override("prior.widths=[1, 2]") == (["prior", "widths"], [1, 2])
    assert parse_override("prior.basis=Cheby") == (["prior", "basis"], "Cheby")
    assert parse_override('data.root="/tmp/x=y"') == (["data", "root"], "/tmp/x=y")


def test_loss_override_is_checked_and_names_the_file_and_keys(tmp_path) -> None:
    path = write(tmp_path, SMALL)
    assert load_config(path).train.loss == "importance"
    assert load_config(path, ["posterior.sampler=ula"]).train.loss == "langevin"
    assert (
        load_config(path, ["posterior.sampler=ula", "train.loss=langevin"]).train.loss == "langevin"
    )
    with pytest.raises(ConfigError) as info:
        load_config(path, ["train.loss=langevin"])
    message = str(info.value)
    assert str(path) in message and "--set train.loss=langevin" in message
    assert "train.loss = 'langevin'" in message and "posterior.sampler" in message


# ------------------------------------------------------------------------------------------------
# Round trips


def test_dumps_toml_round_trips_through_load_config(tmp_path) -> None:
    original = load_config(
        write(tmp_path, SMALL),
        ["prior.basis=Cheby", "prior.init_tau=1.5", "prior.mixture=true", "data.root=C:\\data"],
    )
    text = dumps_toml(original)
    again = load_config(write(tmp_path, text, "dumped.toml"))
    assert again == original
    assert dumps_toml(again) == text


def test_default_config_round_trips(tmp_path) -> None:
    default = ExperimentConfig()
    assert load_config(write(tmp_path, dumps_toml(default))) == default


@pytest.mark.parametrize("name", packaged_configs())
def test_packaged_configs_load_and_round_trip(tmp_path, name: str) -> None:
    config = load_config(name)
    assert config.generator.widths[0] == config.prior.num_outputs
    assert load_config(write(tmp_path, dumps_toml(config))) == config


@pytest.mark.parametrize(
    ("overrides", "loss"),
    [
        ([], "importance"),
        (["posterior.sampler=automala"], "langevin"),
        (["posterior.sampler=ula", "thermodynamic.num_temps=3"], "thermodynamic"),
        (["prior.widths=[5, 6, 1]", "prior.basis=fourier"], "langevin"),
        (["posterior.sampler=ula", "train.loss=langevin"], "langevin"),
    ],
)
def test_the_resolved_loss_is_written_and_reads_back_equal(tmp_path, overrides, loss) -> None:
    original = load_config(write(tmp_path, SMALL), overrides)
    text = dumps_toml(original)
    assert tomllib.loads(text)["train"]["loss"] == loss
    again = load_config(write(tmp_path, text, "dumped.toml"))
    assert again == original and again.train.loss == loss
    assert dumps_toml(again) == text


def _loss_by_the_old_rule(config: ExperimentConfig) -> str:
    """The loss every config trained with before ``train.loss`` existed (implicit, maths 4)."""
    if config.thermodynamic.num_temps > 1:
        return "thermodynamic"
    if config.posterior.sampler != "importance" or config.prior.deep:
        return "langevin"
    return "importance"


@pytest.mark.parametrize("name", packaged_configs())
def test_packaged_configs_resolve_to_the_loss_of_the_old_rule(tmp_path, name: str) -> None:
    config = load_config(name)
    assert config.train.loss == _loss_by_the_old_rule(config), name
    # The run folder's config.toml records that loss, and reads back to the same config.
    written = write(tmp_path, dumps_toml(config))
    assert tomllib.loads(written.read_text())["train"]["loss"] == config.train.loss
    assert load_config(written) == config
