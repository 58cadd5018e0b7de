"""Typed, frozen experiment configuration.

A config is a tree of frozen dataclasses; defaults live only here. TOML files and ``--set`` overrides
go through one typed path (:func:`load_config`), so an unknown key or a value of the wrong type is an
error that names the key and the file. :func:`tkam.compat.from_ini` maps the reference
implementation's ``.ini`` files onto the same tree.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, is_dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import tomllib

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


class ConfigError(ValueError):
    """A configuration problem; the message names the offending key and its source."""


# Canonical basis names and the aliases accepted for them (reference spellings included).
BASES: dict[str, str] = {
    "bspline": "bspline",
    "b-spline": "bspline",
    "rbf": "rbf",
    "rswaf": "rswaf",
    "fourier": "fourier",
    "fft": "fourier",
    "chebyshev": "chebyshev",
    "cheby": "chebyshev",
}
GRID_BASES = ("bspline", "rbf", "rswaf")
BASE_ACTIVATIONS = (
    "relu",
    "leakyrelu",
    "tanh",
    "sigmoid",
    "swish",
    "gelu",
    "selu",
    "silu",
    "elu",
    "celu",
    "none",
)
REFERENCES = ("uniform", "gaussian", "lognormal", "learnable_gaussian", "ebm")
KERNELS = ("fused", "eager")
QUADRATURES = ("gausslegendre", "trapezium")
CDF_RULES = ("midpoint", "left")
RESAMPLERS = ("residual", "systematic", "stratified", "multinomial")
NEGATIVES = ("fresh", "proposals")
DATA_SPLITS = ("spec", "official")
OUTPUT_ACTIVATIONS = ("sigmoid", "tanh", "none")
GENERATOR_KINDS = ("kan", "cnn", "sequence")
SAMPLERS = ("importance", "ula", "automala")
INTEGRALS = ("reference", "trapezoid")
PRECISIONS = ("fp32", "bf16")
MODEL_KINDS = ("tkam", "vae", "lebm")


def _choice(value: str, allowed: Sequence[str] | Mapping[str, str], key: str) -> str:
    norm = value.strip().lower()
    if isinstance(allowed, Mapping):
        if norm in allowed:
            return allowed[norm]
        names = sorted(set(allowed.values()))
    else:
        if norm in allowed:
            return norm
        names = list(allowed)
    raise ConfigError(f"{key}: {value!r} is not one of {', '.join(names)}")


def _set(obj: Any, name: str, value: Any) -> None:
    object.__setattr__(obj, name, value)


@dataclass(frozen=True, kw_only=True)
class KANConfig:
    """Univariate functions of a KAN layer (spec section 2).

    Attributes:
        basis: ``bspline``, ``rbf``, ``rswaf``, ``fourier`` (alias ``FFT``) or ``chebyshev``
            (alias ``Cheby``).
        grid_size: G, intervals of the grid (grid bases) or the highest frequency (Fourier).
        spline_degree: degree k of the B-spline, or D of the Chebyshev basis.
        grid_range: initial grid range (a, b).
        base_activation: base branch b(x); ``none`` switches it off.
        eps_scale, mu_scale, sigma_base, sigma_spline: initialisation scales (spec 2.3).
        init_tau: initial basis temperature tau (Chebyshev needs tau > 1).
        tau_trainable: whether tau is a parameter (never for B-splines).
        grid_update_ratio: weight r of the uniform grid in a grid update (spec 2.6).
        layernorm: LayerNorm before the layer (generator / deep prior only).
        kernel: ``fused`` (compiled kernels that never materialise basis tensors; the default)
            or ``eager`` (the plain PyTorch reference, for checks and exotic devices).
    """

    basis: str = "rbf"
    grid_size: int = 20
    spline_degree: int = 3
    grid_range: tuple[float, float] = (-1.2, 1.2)
    base_activation: str = "silu"
    eps_scale: float = 0.1
    mu_scale: float = 1.0
    sigma_base: float = 1.0
    sigma_spline: float = 1.0
    init_tau: float = 1.0
    tau_trainable: bool = True
    grid_update_ratio: float = 0.05
    layernorm: bool = False
    kernel: str = "fused"

    def __post_init__(self) -> None:
        _set(self, "basis", _choice(self.basis, BASES, "basis"))
        _set(self, "kernel", _choice(self.kernel, KERNELS, "kernel"))
        _set(
            self,
            "base_activation",
            _choice(self.base_activation, BASE_ACTIVATIONS, "base_activation"),
        )
        if self.grid_size < 1:
            raise ConfigError(f"grid_size: must be >= 1, got {self.grid_size}")
        if self.spline_degree < 0:
            raise ConfigError(f"spline_degree: must be >= 0, got {self.spline_degree}")
        if len(self.grid_range) != 2 or not self.grid_range[0] < self.grid_range[1]:
            raise ConfigError(f"grid_range: needs two numbers a < b, got {self.grid_range}")
        if self.init_tau <= 0:
            raise ConfigError(f"init_tau: must be > 0, got {self.init_tau}")
        if self.basis == "chebyshev" and self.init_tau <= 1:
            raise ConfigError(
                f"init_tau: the Chebyshev basis needs tau > 1 (tanh(x)/tau must stay inside "
                f"(-1, 1)), got {self.init_tau}"
            )
        if not 0.0 <= self.grid_update_ratio <= 1.0:
            raise ConfigError(
                f"grid_update_ratio: must lie in [0, 1], got {self.grid_update_ratio}"
            )

    @property
    def grid_based(self) -> bool:
        """Whether the basis lives on a grid that grid updates refit."""
        return self.basis in GRID_BASES


@dataclass(frozen=True, kw_only=True)
class PriorConfig(KANConfig):
    """The T-KAM prior (spec sections 1.2 and 3).

    Attributes:
        widths: ``(P, Q)``: P uniforms (univariate prior) or mixture components, Q latent outputs.
        reference: reference density pi_0: uniform, gaussian, lognormal, learnable_gaussian, ebm.
        quadrature: ``gausslegendre`` or ``trapezium`` (on the grid points of each row).
        num_nodes: Gauss-Legendre nodes N_g.
        mixture: mixture prior (Q latents, each a P-component mixture) instead of univariate.
        train_proportions: trainable mixture logits (v4 behaviour) instead of uniform 1/P.
        normalised_mixture: divide each mixture component by its quadrature Z (ambiguity A9).
        cdf: piecewise-linear CDF rule for Gauss-Legendre nodes: ``midpoint`` (second-order,
            default) or ``left`` (the reference's "mass before the node", A18).
        update_grid: refit the prior grid on the grid-update schedule (grid bases only).
        langevin_step_size, langevin_steps: prior Langevin of the deep prior (spec 3.8).

    More than two ``widths`` make a deep (Pang-style) KAN energy prior ``(P, ..., 1)`` on P
    latents, sampled by prior Langevin instead of inverse transform (spec 1.2, 3.8).
    """

    widths: tuple[int, ...] = (40, 81)
    reference: str = "ebm"
    quadrature: str = "gausslegendre"
    num_nodes: int = 100
    mixture: bool = False
    train_proportions: bool = False
    normalised_mixture: bool = False
    cdf: str = "midpoint"
    update_grid: bool = True
    langevin_step_size: float = 0.16
    langevin_steps: int = 60

    def __post_init__(self) -> None:
        super().__post_init__()
        _set(self, "reference", _choice(self.reference, REFERENCES, "reference"))
        _set(self, "quadrature", _choice(self.quadrature, QUADRATURES, "quadrature"))
        _set(self, "cdf", _choice(self.cdf, CDF_RULES, "cdf"))
        if len(self.widths) < 2 or any(w < 1 for w in self.widths):
            raise ConfigError(f"widths: needs at least two positive widths, got {self.widths}")
        if self.deep and self.widths[-1] != 1:
            raise ConfigError(
                f"widths: a deep prior's energy ends in one output, got {self.widths}"
            )
        if self.langevin_steps < 1 or self.langevin_step_size <= 0:
            raise ConfigError("langevin_steps/langevin_step_size: must be positive")
        if self.num_nodes < 2:
            raise ConfigError(f"num_nodes: must be >= 2, got {self.num_nodes}")
        if self.quadrature == "trapezium" and not self.grid_based:
            raise ConfigError(
                f"quadrature: trapezium integrates on the grid points, which the {self.basis} "
                "basis does not have; use gausslegendre"
            )

    @property
    def num_inputs(self) -> int:
        """P: uniforms of the univariate prior, components of the mixture prior."""
        return self.widths[0]

    @property
    def num_outputs(self) -> int:
        """Q: latent outputs (generator input width); P for a deep prior."""
        return self.widths[0] if self.deep else self.widths[-1]

    @property
    def deep(self) -> bool:
        """A deep KAN energy prior (more than two widths)."""
        return len(self.widths) > 2


@dataclass(frozen=True, kw_only=True)
class GeneratorConfig(KANConfig):
    """The generator and its Gaussian likelihood (spec sections 1.3-1.4).

    Attributes:
        kind: ``kan`` (KAN generator), ``cnn`` (ConvTranspose stack) or ``sequence`` (text).
        widths: KAN widths without the output layer; the first must equal the prior's Q (for
            CNN and sequence generators only the first entry is used, as the input width).
        variance: sigma of the Gaussian likelihood (a standard deviation, as in the reference).
        noise: sigma_n, output noise added to the pre-activation inside training likelihoods.
        output_activation: sigmoid, tanh or none.
        update_grid: refit the generator grids on the grid-update schedule (grid bases only).
        hidden_channels, kernel_sizes, strides, paddings: the CNN's ConvTranspose layers
            (channels ``(Q, *hidden_channels, C)``; one kernel/stride/padding per layer).
        latent_concat: tile the latent and concatenate it before every CNN layer after the first.
        cnn_activation: nonlinearity between CNN layers; ``none`` as in the reference (A11).
        d_model: hidden size of the sequence generator.
    """

    kind: str = "kan"
    widths: tuple[int, ...] = (81, 162)
    variance: float = 0.1
    noise: float = 0.1
    output_activation: str = "sigmoid"
    update_grid: bool = True
    hidden_channels: tuple[int, ...] = ()
    kernel_sizes: tuple[int, ...] = ()
    strides: tuple[int, ...] = ()
    paddings: tuple[int, ...] = ()
    latent_concat: bool = False
    cnn_activation: str = "none"
    d_model: int = 128

    def __post_init__(self) -> None:
        super().__post_init__()
        _set(self, "kind", _choice(self.kind, GENERATOR_KINDS, "kind"))
        _set(
            self,
            "cnn_activation",
            _choice(self.cnn_activation, BASE_ACTIVATIONS, "cnn_activation"),
        )
        if self.kind == "cnn":
            layers = len(self.hidden_channels) + 1
            for name in ("kernel_sizes", "strides", "paddings"):
                if len(getattr(self, name)) != layers:
                    raise ConfigError(
                        f"{name}: the CNN has {layers} layers (len(hidden_channels) + 1), "
                        f"got {len(getattr(self, name))} values"
                    )
        if self.d_model < 1:
            raise ConfigError(f"d_model: must be >= 1, got {self.d_model}")
        _set(
            self,
            "output_activation",
            _choice(self.output_activation, OUTPUT_ACTIVATIONS, "output_activation"),
        )
        if not self.widths or any(w < 1 for w in self.widths):
            raise ConfigError(f"widths: needs positive widths, got {self.widths}")
        if self.variance <= 0:
            raise ConfigError(f"variance: must be > 0, got {self.variance}")
        if self.noise < 0:
            raise ConfigError(f"noise: must be >= 0, got {self.noise}")


@dataclass(frozen=True, kw_only=True)
class GridUpdateConfig:
    """Grid-update schedule (spec section 2.6): at step 1, then every F steps, F growing."""

    frequency: int = 100
    decay: float = 0.999
    num_samples: int = 100

    def __post_init__(self) -> None:
        if self.frequency < 1:
            raise ConfigError(f"frequency: must be >= 1, got {self.frequency}")
        if not 0.0 < self.decay <= 1.0:
            raise ConfigError(f"decay: must lie in (0, 1], got {self.decay}")
        if self.num_samples < 2:
            raise ConfigError(f"num_samples: must be >= 2, got {self.num_samples}")


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """Optimisation, importance-sampling and run settings (spec sections 4.1 and 5).

    Beyond the reference's keys: ``log_every`` (steps between log events; 0 = every epoch),
    ``checkpoint_every`` (extra checkpoints every k steps), ``sample_every``/``num_plot_samples``
    (sample grids), ``device`` (cpu, cuda or auto), ``compile`` (``torch.compile`` the KAN
    kernels), ``precision`` (``bf16`` autocasts the generator; quadrature and sampling stay
    float32), ``accumulate`` (shards per process, each with its own random stream; see
    ``tkam.train.distributed``), ``skip_nonfinite`` (skip, and count, updates whose loss or
    gradient is not finite instead of stopping) and ``negatives`` (the importance-sampling
    loss's contrastive negatives: ``fresh`` prior samples as the reference, or the
    ``proposals``, also exact prior samples, which saves a draw and most of a prior evaluation).
    """

    batch_size: int = 100
    importance_samples: int = 100
    learning_rate: float = 1e-3
    epochs: int = 10
    max_steps: int = 0
    seed: int = 1
    resampler: str = "residual"
    resampling_threshold: float = 0.5
    contrastive: bool = True
    negatives: str = "fresh"
    eps: float = 1e-4
    log_every: int = 0
    checkpoint_every: int = 0
    sample_every: int = 0
    num_plot_samples: int = 100
    device: str = "cpu"
    compile: bool = False
    precision: str = "fp32"
    accumulate: int = 1
    skip_nonfinite: bool = False

    def __post_init__(self) -> None:
        _set(self, "resampler", _choice(self.resampler, RESAMPLERS, "resampler"))
        _set(self, "precision", _choice(self.precision, PRECISIONS, "precision"))
        _set(self, "negatives", _choice(self.negatives, NEGATIVES, "negatives"))
        if self.accumulate < 1:
            raise ConfigError(f"accumulate: must be >= 1, got {self.accumulate}")
        for name in ("batch_size", "importance_samples", "epochs"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}: must be >= 1, got {getattr(self, name)}")
        if self.max_steps < 0:
            raise ConfigError(f"max_steps: must be >= 0 (0 means all epochs), got {self.max_steps}")
        if self.learning_rate <= 0:
            raise ConfigError(f"learning_rate: must be > 0, got {self.learning_rate}")
        if not 0.0 < self.resampling_threshold <= 1.0:
            raise ConfigError(
                f"resampling_threshold: must lie in (0, 1], got {self.resampling_threshold}"
            )


@dataclass(frozen=True, kw_only=True)
class PosteriorConfig:
    """How the posterior is handled (spec sections 4.2-4.3).

    Attributes:
        sampler: ``importance`` (IS loss), ``ula`` or ``automala`` (Langevin MLE loss, or the
            thermodynamic loss when ``thermodynamic.num_temps > 1``).
        step_size: ULA step / autoMALA initial step.
        step_size_bounds: autoMALA step-size clamp.
        steps: Langevin iterations per training step (all temperatures in parallel).
        num_unadjusted: autoMALA's initial unconditionally accepted steps.
        change_rate: autoMALA's step multiplier.
    """

    sampler: str = "importance"
    step_size: float = 0.005
    step_size_bounds: tuple[float, float] = (1e-4, 10.0)
    steps: int = 25
    num_unadjusted: int = 2
    change_rate: float = 2.0

    def __post_init__(self) -> None:
        _set(self, "sampler", _choice(self.sampler, SAMPLERS, "sampler"))
        if self.step_size <= 0 or self.steps < 1:
            raise ConfigError("step_size/steps: must be positive")
        lo, hi = self.step_size_bounds
        if not 0 < lo < hi:
            raise ConfigError(f"step_size_bounds: needs 0 < min < max, got {self.step_size_bounds}")
        if self.change_rate <= 1:
            raise ConfigError(f"change_rate: must be > 1, got {self.change_rate}")


@dataclass(frozen=True, kw_only=True)
class ThermodynamicConfig:
    """Thermodynamic integration over power posteriors (spec section 4.3).

    Attributes:
        num_temps: N_t; more than 1 switches the thermodynamic loss on.
        p_start, p_end, num_cycles: cyclic cosine schedule of the power p over training.
        replica_exchange_frequency: one adjacent swap attempt every this many Langevin steps.
        swap_per_chain: decide swaps per data point (True) or once for the batch (reference, A7).
        integral: ``reference`` (Riemann sum counting the first interval twice, A6) or
            ``trapezoid``.
    """

    num_temps: int = 1
    p_start: float = 1.0
    p_end: float = 1.0
    num_cycles: int = 0
    replica_exchange_frequency: int = 1
    swap_per_chain: bool = True
    integral: str = "reference"

    def __post_init__(self) -> None:
        _set(self, "integral", _choice(self.integral, INTEGRALS, "integral"))
        if self.p_start <= 0 or self.p_end <= 0:
            raise ConfigError("p_start/p_end: must be > 0")
        if self.num_cycles < 0 or self.replica_exchange_frequency < 1:
            raise ConfigError("num_cycles must be >= 0 and replica_exchange_frequency >= 1")


@dataclass(frozen=True, kw_only=True)
class DataConfig:
    """Which data set to train on, where its files are, and the split (spec section 6).

    Attributes:
        name: mnist, fmnist, digits, svhn, cifar10, celeba, darcy or ptb.
        root: the data root (``""``: the data set's default, see ``tkam data list``); for darcy
            an HDF5 file or a folder holding ``darcy_32.h5``.
        num_train, num_test: split sizes (0 = all remaining).
        split: ``spec``: the first ``num_train`` items of the training file train and the next
            ``num_test`` test (the reference's split); ``official``: the test items come from
            the data set's official test file.
        vocab_size: text only: words kept in the vocabulary (one-hot size vocab_size + 2).
        sequence_length: text only: sentences are truncated or padded to this many tokens.
    """

    name: str = "digits"
    root: str = ""
    num_train: int = 0
    num_test: int = 100
    split: str = "spec"
    vocab_size: int = 500
    sequence_length: int = 500

    def __post_init__(self) -> None:
        _set(self, "name", self.name.strip().lower())
        _set(self, "split", _choice(self.split, DATA_SPLITS, "split"))
        if self.num_train < 0 or self.num_test < 0:
            raise ConfigError("num_train/num_test: must be >= 0 (0 = all remaining)")
        if self.vocab_size < 1:
            raise ConfigError(f"vocab_size: must be >= 1, got {self.vocab_size}")
        if self.sequence_length < 1:
            raise ConfigError(f"sequence_length: must be >= 1, got {self.sequence_length}")


@dataclass(frozen=True, kw_only=True)
class ModelConfig:
    """Which model the trainer fits to the generator: T-KAM or a baseline (``tkam.baselines``).

    The baselines share the generator, likelihood, data and trainer of T-KAM; only the prior (and
    the VAE's encoder) differ, and the ``prior`` section is ignored. Their latent width is the
    generator's input width ``generator.widths[0]``.

    Attributes:
        kind: ``tkam``; ``vae`` (Gaussian prior, amortised encoder, reparameterised ELBO); or
            ``lebm`` (latent energy-based prior of Pang et al. 2020, short-run Langevin).
        encoder_hidden: VAE encoder hidden widths (data side first) for KAN and sequence
            generators; empty mirrors the generator's hidden widths (a CNN generator is always
            mirrored by a Conv2d stack).
        energy_hidden: width of the latent EBM's energy MLP ``Q -> h -> h -> 1``.
        prior_steps, prior_step_size: prior Langevin of the latent EBM (Pang's step size ``s``:
            ``z <- z + s^2/2 grad + s xi``).
        posterior_steps, posterior_step_size: posterior Langevin of the latent EBM (same form).
        energy_learning_rate: Adam rate of the latent EBM's energy MLP (Pang et al.'s
            ``e_lr = 2e-5``; the generator keeps ``train.learning_rate``). 0 uses
            ``train.learning_rate`` for both.
    """

    kind: str = "tkam"
    encoder_hidden: tuple[int, ...] = ()
    energy_hidden: int = 200
    prior_steps: int = 60
    prior_step_size: float = 0.4
    posterior_steps: int = 20
    posterior_step_size: float = 0.1
    energy_learning_rate: float = 2e-5

    def __post_init__(self) -> None:
        _set(self, "kind", _choice(self.kind, MODEL_KINDS, "kind"))
        if self.energy_learning_rate < 0:
            raise ConfigError(
                f"energy_learning_rate: must be >= 0, got {self.energy_learning_rate}"
            )
        if any(w < 1 for w in self.encoder_hidden):
            raise ConfigError(f"encoder_hidden: needs positive widths, got {self.encoder_hidden}")
        if self.energy_hidden < 1:
            raise ConfigError(f"energy_hidden: must be >= 1, got {self.energy_hidden}")
        if self.prior_steps < 1 or self.posterior_steps < 1:
            raise ConfigError("prior_steps/posterior_steps: must be >= 1")
        if self.prior_step_size <= 0 or self.posterior_step_size <= 0:
            raise ConfigError("prior_step_size/posterior_step_size: must be > 0")


@dataclass(frozen=True, kw_only=True)
class ExperimentConfig:
    """The root config: one sub-config per component."""

    prior: PriorConfig = field(default_factory=PriorConfig)
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    grid_update: GridUpdateConfig = field(default_factory=GridUpdateConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    data: DataConfig = field(default_factory=DataConfig)
    posterior: PosteriorConfig = field(default_factory=PosteriorConfig)
    thermodynamic: ThermodynamicConfig = field(default_factory=ThermodynamicConfig)
    model: ModelConfig = field(default_factory=ModelConfig)

    def __post_init__(self) -> None:
        # Baselines ignore the prior section: their latent width is the generator's input width.
        if self.model.kind == "tkam" and self.generator.widths[0] != self.prior.num_outputs:
            which = "prior.widths[0] (deep prior)" if self.prior.deep else "prior.widths[-1]"
            raise ConfigError(
                f"generator.widths: the first width ({self.generator.widths[0]}) must equal the "
                f"prior's latent width {which} = {self.prior.num_outputs}"
            )

    @property
    def loss_kind(self) -> str:
        """``thermodynamic`` if N_t > 1; else ``langevin`` for Langevin samplers or a deep
        prior; else ``importance`` (spec section 4)."""
        if self.thermodynamic.num_temps > 1:
            return "thermodynamic"
        if self.posterior.sampler != "importance" or self.prior.deep:
            return "langevin"
        return "importance"


# --------------------------------------------------------------------------------------------
# Building dataclasses from plain dicts (TOML), with typed checks.


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    if is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key}: expected a table, got {type(value).__name__}")
        return _build(tp, value, key)
    if origin in (typing.Union, types.UnionType):
        errors = []
        for arm in typing.get_args(tp):
            if arm is type(None):
                if value is None:
                    return None
                continue
            try:
                return _coerce(value, arm, key)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{key}: bad value {value!r}")
    if origin is tuple:
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
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    else:  # pragma: no cover - only the types above appear in the dataclasses
        return value
    raise ConfigError(f"{key}: expected {_type_name(tp)}, got {type(value).__name__} {value!r}")


def _build(cls: type, data: Mapping[str, Any], prefix: str) -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in fields(cls) if f.init}
    kwargs = {}
    for key, value in data.items():
        full = f"{prefix}.{key}" if prefix else key
        if key not in names:
            close = sorted(names)
            raise ConfigError(f"unknown key {full!r}; {cls.__name__} has: {', '.join(close)}")
        kwargs[key] = _coerce(value, hints[key], full)
    try:
        return cls(**kwargs)
    except ConfigError as exc:
        message = str(exc)
        if prefix and not message.startswith(prefix):
            message = f"{prefix}.{message}"
        raise ConfigError(message) from None


def config_from_dict(data: Mapping[str, Any], source: str = "<dict>") -> ExperimentConfig:
    """Build an :class:`ExperimentConfig` from nested dicts, naming ``source`` in errors."""
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
    """Serialise a config as TOML (one table per component); ``load_config`` reads it back."""
    lines = []
    for section, values in config_to_dict(config).items():
        lines.append(f"[{section}]")
        lines.extend(f"{k} = {_toml_value(v)}" for k, v in values.items())
        lines.append("")
    return "\n".join(lines)


def parse_override(text: str) -> tuple[list[str], Any]:
    """Parse ``section.key=value`` (value in TOML syntax, bare words as strings)."""
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


def packaged_configs() -> list[str]:
    """Names of the configs shipped with the package (``tkam configs``)."""
    folder = resources.files("tkam") / "configs"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".toml"))


def resolve_config_path(name_or_path: str | Path) -> Path:
    """A TOML path as given, or the packaged config of that name."""
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.is_file():
        if not path.is_file():
            raise ConfigError(f"config file {str(path)!r} does not exist")
        return path
    candidate = resources.files("tkam") / "configs" / f"{name_or_path}.toml"
    if not candidate.is_file():
        raise ConfigError(
            f"{str(name_or_path)!r} is neither a TOML file nor a packaged config "
            f"(packaged: {', '.join(packaged_configs())})"
        )
    return Path(str(candidate))


def load_config(name_or_path: str | Path, overrides: Sequence[str] = ()) -> ExperimentConfig:
    """Load a TOML config (path or packaged name) and apply ``section.key=value`` overrides.

    Raises:
        ConfigError: naming the file and key on an unknown key, a wrong type or a bad value.
    """
    path = resolve_config_path(name_or_path)
    try:
        data = tomllib.loads(path.read_text())
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
    return config_from_dict(data, source)


def replace(config: Any, **changes: Any) -> Any:
    """``dataclasses.replace`` that re-runs validation (re-exported for convenience)."""
    return dataclasses.replace(config, **changes)


def from_ini(path: str | Path, dataset: str | None = None) -> ExperimentConfig:
    """Read a reference implementation ``.ini`` config; see :func:`tkam.compat.from_ini`."""
    from tkam.compat import from_ini as convert

    return convert(path, dataset)
