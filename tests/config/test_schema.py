"""tkam.config.schema: validation of each section, the choices, and the loss choice."""

from __future__ import annotations

import dataclasses
import tomllib
import warnings

import pytest

from tkam.config import (
    REFERENCE_DOMAINS,
    ConfigError,
    ExperimentConfig,
    PriorConfig,
    TrainConfig,
    config_from_dict,
    dumps_toml,
    load_config,
    packaged_configs,
)
from tkam.config.schema import LOSSES, ineffective_settings
from tkam.prior import build_prior

# A small univariate prior (P=3 -> Q=5) and a small deep prior (3 latents, energy 3 -> 4 -> 1).
FLAT = {"prior": {"widths": [3, 5]}, "generator": {"widths": [5, 8]}}
DEEP = {"prior": {"widths": [3, 4, 1]}, "generator": {"widths": [3, 8]}}


def _config(prior: dict, **sections: dict) -> ExperimentConfig:
    """A config with the prior/generator of ``prior`` (FLAT or DEEP) and ``sections`` added."""
    return config_from_dict({**prior, **sections}, "inline.toml")


@pytest.mark.parametrize(
    ("spelling", "canonical"),
    [
        ("B-spline", "bspline"),
        ("FFT", "fourier"),
        ("Cheby", "chebyshev"),
        ("RBF", "rbf"),
        ("RSWAF", "rswaf"),
        ("fourier", "fourier"),
    ],
)
def test_basis_aliases(spelling: str, canonical: str) -> None:
    assert PriorConfig(basis=spelling, init_tau=1.1).basis == canonical


@pytest.mark.parametrize(
    ("section", "key"),
    [
        ({"prior": {"basis": "chebyshev", "init_tau": 1.0}}, "init_tau"),
        ({"prior": {"basis": "fourier", "quadrature": "trapezium"}}, "quadrature"),
        ({"prior": {"reference": "cauchy"}}, "prior.reference"),
        ({"prior": {"widths": [3, 4, 5]}}, "prior.widths"),
        ({"prior": {"num_nodes": 1}}, "prior.num_nodes"),
        ({"prior": {"cdf": "right"}}, "prior.cdf"),
        ({"grid_update": {"decay": 0.0}}, "grid_update.decay"),
        ({"train": {"resampler": "magic"}}, "train.resampler"),
    ],
)
def test_invalid_values_name_their_key(section, key) -> None:
    with pytest.raises(ConfigError) as info:
        config_from_dict(section, "inline.toml")
    assert key in str(info.value) and "inline.toml" in str(info.value)


def test_generator_width_must_match_the_prior_latent_width() -> None:
    with pytest.raises(ConfigError, match="generator.widths"):
        config_from_dict({"prior": {"widths": [3, 5]}, "generator": {"widths": [6, 8]}})


def test_configs_are_frozen() -> None:
    config = PriorConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.basis = "fourier"  # type: ignore[misc]


# ------------------------------------------------------------------------------------------------
# The loss choice: train.loss, with "auto" resolved when the ExperimentConfig is built


def test_train_loss_defaults_to_auto_and_the_root_config_resolves_it() -> None:
    assert TrainConfig().loss == "auto"
    config = ExperimentConfig()
    assert config.train.loss == "importance"


@pytest.mark.parametrize(
    ("prior", "sections", "expected"),
    [
        (FLAT, {}, "importance"),
        (FLAT, {"posterior": {"sampler": "ula"}}, "langevin"),
        (FLAT, {"posterior": {"sampler": "automala"}}, "langevin"),
        (DEEP, {}, "langevin"),  # a deep prior has no inverse-transform samples
        (DEEP, {"posterior": {"sampler": "automala"}}, "langevin"),
        (FLAT, {"thermodynamic": {"num_temps": 4}}, "thermodynamic"),
        (
            FLAT,
            {"posterior": {"sampler": "ula"}, "thermodynamic": {"num_temps": 2}},
            "thermodynamic",
        ),
        (
            DEEP,
            {"posterior": {"sampler": "ula"}, "thermodynamic": {"num_temps": 5}},
            "thermodynamic",
        ),
    ],
)
def test_auto_resolves_to_the_implied_loss(prior, sections, expected) -> None:
    config = _config(prior, **sections)
    assert config.train.loss == expected and config.train.loss == expected
    # Spelling it out gives the same config: auto is only a shorthand.
    explicit = _config(prior, **sections, train={"loss": expected})
    assert explicit == config
    # Spellings are normalised like every other choice.
    assert _config(prior, **sections, train={"loss": expected.upper()}) == config


def test_auto_is_resolved_again_on_replace() -> None:
    config = _config(FLAT, posterior={"sampler": "ula"})
    again = dataclasses.replace(
        config,
        posterior=dataclasses.replace(config.posterior, sampler="importance"),
        train=dataclasses.replace(config.train, loss="auto"),
    )
    assert again.train.loss == "importance"


def test_unknown_loss_lists_the_choices() -> None:
    with pytest.raises(ConfigError) as info:
        _config(FLAT, train={"loss": "mcmc"})
    message = str(info.value)
    assert "train.loss" in message and "mcmc" in message and "inline.toml" in message
    for name in LOSSES:
        assert name in message


@pytest.mark.parametrize(
    ("prior", "sections", "keys"),
    [
        # importance needs prior samples by inverse transform: not from a deep prior.
        (DEEP, {"train": {"loss": "importance"}}, ["prior.widths"]),
        # importance runs no posterior sampler.
        (
            FLAT,
            {"train": {"loss": "importance"}, "posterior": {"sampler": "ula"}},
            ["posterior.sampler"],
        ),
        (
            FLAT,
            {"train": {"loss": "importance"}, "posterior": {"sampler": "automala"}},
            ["posterior.sampler"],
        ),
        # thermodynamic integration needs at least two temperatures.
        (
            FLAT,
            {"train": {"loss": "thermodynamic"}, "posterior": {"sampler": "ula"}},
            ["thermodynamic.num_temps"],
        ),
        (
            DEEP,
            {"train": {"loss": "thermodynamic"}, "thermodynamic": {"num_temps": 1}},
            ["thermodynamic.num_temps"],
        ),
        # langevin with the importance sampler on a univariate prior means importance sampling.
        (FLAT, {"train": {"loss": "langevin"}}, ["posterior.sampler", "prior.widths"]),
        # more than one temperature is the thermodynamic loss.
        (
            FLAT,
            {
                "train": {"loss": "langevin"},
                "posterior": {"sampler": "ula"},
                "thermodynamic": {"num_temps": 4},
            },
            ["thermodynamic.num_temps"],
        ),
        (
            FLAT,
            {"train": {"loss": "importance"}, "thermodynamic": {"num_temps": 3}},
            ["thermodynamic.num_temps"],
        ),
        # Several conflicts are all named.
        (
            DEEP,
            {
                "train": {"loss": "importance"},
                "posterior": {"sampler": "ula"},
                "thermodynamic": {"num_temps": 3},
            },
            ["prior.widths", "posterior.sampler", "thermodynamic.num_temps"],
        ),
    ],
)
def test_conflicting_explicit_losses_are_refused_naming_the_keys(prior, sections, keys) -> None:
    with pytest.raises(ConfigError) as info:
        _config(prior, **sections)
    message = str(info.value)
    assert "inline.toml" in message
    assert f"train.loss = {sections['train']['loss']!r}" in message
    for key in keys:
        assert key in message, (key, message)


@pytest.mark.parametrize(
    ("prior", "sections"),
    [
        (DEEP, {"train": {"loss": "langevin"}}),  # the importance sampler reads as ULA here
        (DEEP, {"train": {"loss": "thermodynamic"}, "thermodynamic": {"num_temps": 2}}),
        (FLAT, {"train": {"loss": "langevin"}, "posterior": {"sampler": "automala"}}),
    ],
)
def test_consistent_explicit_losses_are_kept(prior, sections) -> None:
    assert _config(prior, **sections).train.loss == sections["train"]["loss"]


@pytest.mark.parametrize(("kind", "own"), [("vae", "elbo"), ("lebm", "langevin")])
def test_baselines_resolve_auto_to_their_own_loss_whatever_the_other_sections(kind, own) -> None:
    for sections in (
        {"posterior": {"sampler": "ula"}},
        {"thermodynamic": {"num_temps": 4}},
        {},
    ):
        config = _config(FLAT, **sections, model={"kind": kind})
        assert config.train.loss == own
    assert _config(FLAT, train={"loss": own}, model={"kind": kind}).train.loss == own


@pytest.mark.parametrize(("kind", "own"), [("vae", "elbo"), ("lebm", "langevin")])
@pytest.mark.parametrize("loss", ["importance", "langevin", "thermodynamic", "elbo"])
def test_baselines_refuse_any_other_loss(kind, own, loss) -> None:
    if loss == own:
        return
    with pytest.raises(ConfigError) as info:
        _config(FLAT, train={"loss": loss}, model={"kind": kind})
    message = str(info.value)
    assert f"train.loss = {loss!r}" in message and kind in message and own in message


def test_the_elbo_is_refused_for_tkam() -> None:
    with pytest.raises(ConfigError, match="VAE's loss"):
        _config(FLAT, train={"loss": "elbo"})


# --- grid_range: the prior's domain ---


@pytest.mark.parametrize("reference", ["uniform", "gaussian", "lognormal"])
def test_a_fixed_reference_domain_becomes_the_priors_grid_range(reference) -> None:
    fixed = REFERENCE_DOMAINS[reference]
    assert PriorConfig(widths=(3, 5), reference=reference).grid_range == fixed
    assert PriorConfig(widths=(3, 5), reference=reference, grid_range=fixed).grid_range == fixed
    with pytest.raises(ConfigError, match=rf"grid_range: the {reference} reference fixes"):
        PriorConfig(widths=(3, 5), reference=reference, grid_range=(-1e6, 1e6))
    # The refusal names the section when the config comes from a file or dict.
    with pytest.raises(ConfigError, match=r"prior\.grid_range: .*would be ignored"):
        config_from_dict({"prior": {"reference": reference, "grid_range": [-3.0, 3.0]}})


@pytest.mark.parametrize("reference", ["ebm", "learnable_gaussian"])
def test_grid_range_sets_the_domain_of_the_other_references(reference) -> None:
    config = PriorConfig(widths=(3, 5), reference=reference, grid_range=(-3.0, 2.0))
    assert config.grid_range == (-3.0, 2.0)
    assert PriorConfig(widths=(3, 5), reference=reference).grid_range == (-1.2, 1.2)
    prior = build_prior(config)
    assert prior.reference.domain == (-3.0, 2.0)


def test_a_deep_prior_takes_grid_range_whatever_its_base() -> None:
    config = PriorConfig(widths=(3, 8, 1), reference="gaussian", grid_range=(-2.0, 2.0))
    assert config.grid_range == (-2.0, 2.0)


def test_the_resolved_domain_round_trips_through_toml() -> None:
    config = config_from_dict(
        {"prior": {"widths": [3, 5], "reference": "lognormal"}, "generator": {"widths": [5, 8]}}
    )
    again = config_from_dict(tomllib.loads(dumps_toml(config)))
    assert again.prior.grid_range == (0.0, 4.0) == config.prior.grid_range


# --- settings a model never reads ---


def test_settings_the_model_never_reads_are_named() -> None:
    config = _config(
        FLAT,
        generator={"widths": [5, 8], "d_model": 64, "strides": [2]},
    )
    unused = ineffective_settings(replace_prior(config, spline_degree=5, langevin_steps=9))
    assert unused == [
        "prior.spline_degree = 5 (the rbf basis has no degree)",
        "prior.langevin_steps = 9 (only a deep prior runs prior Langevin)",
        "generator.strides = (2,) (generator.kind is kan)",
        "generator.d_model = 64 (not a sequence generator)",
    ]
    # Defaults never count, and the same keys in a model that reads them are fine.
    assert ineffective_settings(_config(FLAT)) == []
    deep = _config(DEEP)
    assert ineffective_settings(replace_prior(deep, langevin_steps=9)) == []


def test_load_config_warns_about_them_and_never_for_a_packaged_config(tmp_path) -> None:
    with pytest.warns(UserWarning, match=r"without effect.*prior\.spline_degree = 7"):
        load_config("digits", ["prior.spline_degree=7"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for name in packaged_configs():
            load_config(name)


def test_negative_initialisation_scales_are_refused() -> None:
    for name in ("eps_scale", "mu_scale", "sigma_base", "sigma_spline"):
        with pytest.raises(ConfigError, match=rf"{name}: an initialisation scale, must be >= 0"):
            PriorConfig(**{name: -1.0})


def replace_prior(config: ExperimentConfig, **changes) -> ExperimentConfig:
    return dataclasses.replace(config, prior=dataclasses.replace(config.prior, **changes))


def test_a_grid_range_beyond_float32_resolution_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"prior.grid_range: .* reaches beyond \+-10000"):
        config_from_dict({"prior": {"reference": "ebm", "grid_range": [-2e38, 2e38]}})
    with pytest.raises(ConfigError, match=r"generator.grid_range"):
        config_from_dict({"generator": {"grid_range": [0.0, 1e5]}})


def test_reference_compat_switches_are_named_where_they_do_nothing() -> None:
    univariate = load_config("fmnist", ["prior.compat_layout=true", "prior.compat_rbf_refit=true"])
    assert ineffective_settings(univariate) == []
    with pytest.warns(UserWarning, match="without effect"):
        mixture = load_config(
            "fmnist",
            ["prior.mixture=true", "prior.compat_layout=true", "generator.basis=FFT",
             "generator.compat_rbf_refit=true"],
        )  # fmt: skip
    assert ineffective_settings(mixture) == [
        "generator.compat_rbf_refit = True (the fourier basis has no bandwidth)",
        "prior.compat_layout = True (only the univariate prior has the reshaped layout)",
    ]


def test_a_baseline_names_the_prior_settings_it_ignores() -> None:
    with pytest.warns(
        UserWarning, match=r"prior\.widths, prior\.reference.*model.kind = vae has its"
    ):
        config = load_config("digits", ["model.kind=vae"])
    assert len(ineffective_settings(config)) == 1  # one entry for the whole prior section
    tkam = load_config("digits")
    assert ineffective_settings(tkam) == []


@pytest.mark.parametrize(
    ("prior", "sections", "expected"),
    [
        (FLAT, {}, False),  # importance sampling: the reference's shared uniforms
        (FLAT, {"posterior": {"sampler": "ula"}}, True),
        (FLAT, {"posterior": {"sampler": "automala"}}, True),
        (FLAT, {"posterior": {"sampler": "ula"}, "thermodynamic": {"num_temps": 3}}, True),
        (FLAT, {"posterior": {"sampler": "ula"}, "model": {"kind": "lebm"}}, False),
        (
            {"prior": {"widths": [3, 5], "mixture": True}, "generator": {"widths": [5, 8]}},
            {"posterior": {"sampler": "ula"}},
            False,
        ),  # fmt: skip
        (DEEP, {}, False),
    ],
)
def test_independent_uniforms_left_out_follow_the_loss(prior, sections, expected) -> None:
    """Langevin chains move every z_qp on its own (departures A25): left out, the univariate
    prior draws one uniform per component for the chain losses, and a config records it."""
    assert PriorConfig().independent_uniforms is None
    config = _config(prior, **sections)
    # A resolved False is no ineffective setting, for a mixture, deep prior or baseline.
    assert not any("independent_uniforms" in line for line in ineffective_settings(config))
    assert config.prior.independent_uniforms is expected
    assert load_config_text(dumps_toml(config)) == config
    if expected:  # an explicit choice is kept
        shared = {**prior["prior"], "independent_uniforms": False}
        kept = _config({**prior, "prior": shared}, **sections)
        assert kept.prior.independent_uniforms is False


def load_config_text(text: str) -> ExperimentConfig:
    return config_from_dict(tomllib.loads(text), "dumped")
