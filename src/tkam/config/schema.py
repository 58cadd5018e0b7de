"""The configuration schema: frozen dataclasses, their validation and the tables of choices.

A config is a tree of frozen dataclasses and defaults live only here. Every dataclass checks its
own values in ``__post_init__``; :class:`ExperimentConfig` checks the settings that span sections
and resolves ``train.loss = "auto"`` to the concrete loss. Reading and writing files is
:mod:`tkam.config.io`'s business; this module imports nothing else of the package, so every
other module can import it.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

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
    "BASIS_CODES",
    "ACTIVATION_CODES",
    "REFERENCES",
    "REFERENCE_DOMAINS",
    "ineffective_settings",
    "LOSSES",
]


class ConfigError(ValueError):
    """A configuration problem; the message names the offending key and its source."""


# The bases and base activations of the KAN layers, each with the integer code by which the
# compiled (C++) and Triton kernels know it: tkam.kan.codes generates their constants from these
# two tables, the one list of them (the tests hold the eager functions to it).
BASIS_CODES: dict[str, int] = {"bspline": 0, "rbf": 1, "rswaf": 2, "fourier": 3, "chebyshev": 4}
ACTIVATION_CODES: dict[str, int] = {
    "none": 0,
    "relu": 1,
    "leakyrelu": 2,
    "tanh": 3,
    "sigmoid": 4,
    "swish": 5,
    "gelu": 6,
    "selu": 7,
    "silu": 8,
    "elu": 9,
    "celu": 10,
}
# Canonical basis names and the aliases accepted for them (reference spellings included).
BASES: dict[str, str] = {
    **{name: name for name in BASIS_CODES},
    "b-spline": "bspline",
    "fft": "fourier",
    "cheby": "chebyshev",
}
GRID_BASES = ("bspline", "rbf", "rswaf")
BASE_ACTIVATIONS = tuple(ACTIVATION_CODES)
REFERENCES = ("uniform", "gaussian", "lognormal", "learnable_gaussian", "ebm")
#: The domain (quadrature nodes and grid) each reference density pi_0 fixes for a univariate or
#: mixture prior; ``None``: the domain is the prior's ``grid_range``.
REFERENCE_DOMAINS: dict[str, tuple[float, float] | None] = {
    "uniform": (-0.1, 1.1),
    "gaussian": (-1.2, 1.2),
    "lognormal": (0.0, 4.0),
    "learnable_gaussian": None,
    "ebm": None,
}
KERNELS = ("fused", "eager")
QUADRATURES = ("gausslegendre", "trapezium")
CDF_RULES = ("midpoint", "left")
RESAMPLERS = ("residual", "systematic", "stratified", "multinomial")
NEGATIVES = ("fresh", "proposals")
DATA_SPLITS = ("spec", "official")
OUTPUT_ACTIVATIONS = ("sigmoid", "tanh", "none")
GENERATOR_KINDS = ("kan", "cnn", "mlp", "sequence")
LIKELIHOODS = ("gaussian", "bernoulli")
SAMPLERS = ("importance", "ula", "automala")
CHAIN_SPACES = ("latent", "noise")
INTEGRALS = ("reference", "trapezoid")
PRECISIONS = ("fp32", "bf16")
MODEL_KINDS = ("tkam", "vae", "lebm")
# The training losses (maths 4; ``elbo`` is the VAE's); ``auto`` is resolved by
# ExperimentConfig.
LOSSES = ("auto", "importance", "langevin", "thermodynamic", "elbo")
# The loss each baseline trains with.
BASELINE_LOSSES = {"vae": "elbo", "lebm": "langevin"}


def _choice(value: str, allowed: Sequence[str] | Mapping[str, str], key: str) -> str:
    """``value`` normalised to one of ``allowed`` (a mapping resolves aliases).

    Raises:
        ConfigError: naming ``key`` and listing the choices.
    """
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


#: The largest |a|, |b| of a KAN grid range.
MAX_GRID_RANGE = 1e4

_DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?|mps")


def _set(obj: Any, name: str, value: Any) -> None:
    """Set a field of a frozen dataclass; only ``__post_init__`` normalisation uses it."""
    object.__setattr__(obj, name, value)


@dataclass(frozen=True, kw_only=True)
class KANConfig:
    """Univariate functions of a KAN layer (maths 2).

    Attributes:
        basis: ``bspline``, ``rbf``, ``rswaf``, ``fourier`` (alias ``FFT``) or ``chebyshev``
            (alias ``Cheby``).
        grid_size: G, intervals of the grid (grid bases) or the highest frequency (Fourier).
        spline_degree: degree k of the B-spline, or D of the Chebyshev basis.
        grid_range: initial grid range (a, b).
        base_activation: base branch b(x); ``none`` switches it off.
        eps_scale, mu_scale, sigma_base, sigma_spline: initialisation scales (maths 2.3).
        init_tau: initial basis temperature tau (Chebyshev needs tau > 1).
        tau_trainable: whether tau is a parameter (never for B-splines).
        grid_update_ratio: weight r of the uniform grid in a grid update (maths 2.6).
        layernorm: LayerNorm before the layer (generator / deep prior only).
        kernel: ``fused`` (compiled kernels that never materialise basis tensors; the default)
            or ``eager`` (the plain PyTorch reference, for checks and exotic devices).
        compat_rbf_refit: an RBF grid update refits the coefficients with the old bandwidth
            and only then sets the new grid's bandwidth, as the reference code does (maths 2.6
            step 7), which changes the curve it has just fitted; for reproducing its logged
            runs; off by default (the refit uses the bandwidth the layer will use).
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
    compat_rbf_refit: bool = False

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
        if max(abs(v) for v in self.grid_range) > MAX_GRID_RANGE:
            raise ConfigError(
                f"grid_range: {list(self.grid_range)} reaches beyond +-{MAX_GRID_RANGE:g}; "
                "float32 grids, bases and least-squares grid updates do not resolve such a domain"
            )
        if self.init_tau <= 0:
            raise ConfigError(f"init_tau: must be > 0, got {self.init_tau}")
        for name in ("eps_scale", "mu_scale", "sigma_base", "sigma_spline"):
            if getattr(self, name) < 0:
                raise ConfigError(
                    f"{name}: an initialisation scale, must be >= 0, got {getattr(self, name)}"
                )
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
    """The T-KAM prior (maths 1.2 and 3).

    Attributes:
        widths: ``(P, Q)``: P uniforms (univariate prior) or mixture components, Q latent outputs.
        reference: reference density pi_0: uniform, gaussian, lognormal, learnable_gaussian, ebm.
        quadrature: ``gausslegendre`` or ``trapezium`` (on the grid points of each row).
        num_nodes: Gauss-Legendre nodes N_g.
        mixture: mixture prior (Q latents, each a P-component mixture) instead of univariate.
        train_proportions: trainable mixture logits (v4 behaviour) instead of uniform 1/P.
        normalised_mixture: divide each mixture component by its quadrature Z (departures A9).
        cdf: piecewise-linear CDF rule for Gauss-Legendre nodes: ``midpoint`` (second-order,
            default) or ``left`` (the reference's "mass before the node", departures A18).
        update_grid: refit the prior grid on the grid-update schedule (grid bases only).
        langevin_step_size, langevin_steps: prior Langevin of the deep prior (maths 3.8).
        compat_node_map: the reference code's Gauss-Legendre node map (departures A1), for
            reproducing its logged runs; off by default.
        compat_layout: the reference code's component layout of the univariate prior
            (departures A2): the layer's ``(P, Q)`` output reshaped, not transposed, to ``(Q, P)``,
            so that component (q, p) is some other function ``phi_{p'->q'}``, the log-prior
            evaluates it at ``z_{q, p'}`` and grid updates refit row p on reshaped latents; for
            reproducing its logged runs; off by default.
        independent_uniforms: draw one uniform per component (q, p) of the univariate prior,
            so its sampled law is the product of the marginals that its log-prior assumes,
            instead of one uniform per p shared by every q (the reference's sampler, which
            makes ``z_qp`` a deterministic function of ``z_q'p``; departures A25). Left out,
            it follows the loss: on for the Langevin and thermodynamic losses, whose chains
            move every ``z_qp`` on its own (with shared uniforms the generator learns from
            latents the prior never draws), off for importance sampling; a built config
            records the choice.
        learning_rate: Adam rate of the T-KAM prior's parameters; 0 (the default) trains
            them at ``train.learning_rate`` with the generator, in one parameter group.
        grid_range: the prior's domain (a, b) for the ``ebm`` and ``learnable_gaussian``
            references and for deep priors. The ``uniform``, ``gaussian`` and ``lognormal``
            references of a univariate or mixture prior fix it (:data:`REFERENCE_DOMAINS`): left
            out, it becomes that domain; any other value is refused, since it would be ignored.

    More than two ``widths`` make a deep (Pang-style) KAN energy prior ``(P, ..., 1)`` on P
    latents, sampled by prior Langevin instead of inverse transform (maths 1.2, 3.8).
    """

    widths: tuple[int, ...] = (40, 81)
    grid_range: tuple[float, float] | None = None  # type: ignore[assignment]
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
    compat_node_map: bool = False
    compat_layout: bool = False
    independent_uniforms: bool | None = None
    learning_rate: float = 0.0

    def __post_init__(self) -> None:
        _set(self, "reference", _choice(self.reference, REFERENCES, "reference"))
        self._resolve_grid_range()
        super().__post_init__()
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
        if self.learning_rate < 0:
            raise ConfigError(f"learning_rate: must be >= 0, got {self.learning_rate}")
        if self.quadrature == "trapezium" and not self.grid_based:
            raise ConfigError(
                f"quadrature: trapezium integrates on the grid points, which the {self.basis} "
                "basis does not have; use gausslegendre"
            )

    def _resolve_grid_range(self) -> None:
        """The domain: ``grid_range``, or the one the reference fixes (see the class doc)."""
        fixed = None if len(self.widths) > 2 else REFERENCE_DOMAINS[self.reference]
        if self.grid_range is None:
            _set(self, "grid_range", fixed or KANConfig.grid_range)
            return
        given = tuple(float(value) for value in self.grid_range)
        if fixed is not None and given != fixed:
            raise ConfigError(
                f"grid_range: the {self.reference} reference fixes the prior's domain to "
                f"{list(fixed)}, so grid_range = {list(given)} would be ignored; leave it out or "
                f"set it to {list(fixed)} (grid_range sets the domain of the ebm and learnable_gaussian references and of "
                "deep priors)"
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

    @property
    def kind(self) -> str:
        """Which prior the section builds: ``deep`` (more than two widths; ``mixture`` is then
        ignored), ``mixture`` or ``univariate``."""
        if self.deep:
            return "deep"
        return "mixture" if self.mixture else "univariate"


@dataclass(frozen=True, kw_only=True)
class GeneratorConfig(KANConfig):
    """The generator and its Gaussian likelihood (maths 1.3-1.4).

    Attributes:
        kind: ``kan`` (KAN generator), ``cnn`` (ConvTranspose stack), ``mlp`` (plain MLP,
            e.g. the textbook VAE's 20-400-784 decoder) or ``sequence`` (text).
        widths: KAN widths without the output layer; the first must equal the prior's Q (for
            CNN and sequence generators only the first entry is used, as the input width).
        likelihood: ``gaussian`` (maths 1.4) or ``bernoulli`` (the textbook VAE's, for data in
            [0, 1]; needs the sigmoid output activation); text always uses the categorical one.
        variance: sigma of the Gaussian likelihood (a standard deviation, as in the reference).
        noise: sigma_n, output noise added to the pre-activation inside training likelihoods.
        output_activation: sigmoid, tanh or none.
        update_grid: refit the generator grids on the grid-update schedule (grid bases only).
        hidden_channels, kernel_sizes, strides, paddings: the CNN's ConvTranspose layers
            (channels ``(Q, *hidden_channels, C)``; one kernel/stride/padding per layer).
        latent_concat: tile the latent and concatenate it before every CNN layer after the first.
        cnn_activation: nonlinearity between CNN layers; ``none`` as in the reference
            (departures A11).
        d_model: hidden size of the sequence generator.
        mlp_activation: nonlinearity between the MLP generator's layers.
    """

    kind: str = "kan"
    likelihood: str = "gaussian"
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
    mlp_activation: str = "relu"

    def __post_init__(self) -> None:
        super().__post_init__()
        _set(self, "kind", _choice(self.kind, GENERATOR_KINDS, "kind"))
        _set(self, "likelihood", _choice(self.likelihood, LIKELIHOODS, "likelihood"))
        _set(
            self,
            "mlp_activation",
            _choice(self.mlp_activation, BASE_ACTIVATIONS, "mlp_activation"),
        )
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
        if self.likelihood == "bernoulli" and self.output_activation != "sigmoid":
            raise ConfigError(
                "likelihood: 'bernoulli' models pixel probabilities and needs "
                f"output_activation = 'sigmoid', got {self.output_activation!r}"
            )
        if self.variance <= 0:
            raise ConfigError(f"variance: must be > 0, got {self.variance}")
        if self.noise < 0:
            raise ConfigError(f"noise: must be >= 0, got {self.noise}")


@dataclass(frozen=True, kw_only=True)
class GridUpdateConfig:
    """Grid-update schedule (maths 2.6): at step 1, then every F steps, F growing.

    ``compat_discard_refit`` reproduces the reference trainer, whose optimiser keeps its own copy
    of the parameters: the refitted coefficients serve the update step's loss and gradient, and
    Adam then applies that gradient to the coefficients from before the refit, so the new grid
    carries coefficients fitted to the old one. Off by default; for reproducing its logged runs.
    """

    frequency: int = 100
    decay: float = 0.999
    num_samples: int = 100
    compat_discard_refit: bool = False

    def __post_init__(self) -> None:
        if self.frequency < 1:
            raise ConfigError(f"frequency: must be >= 1, got {self.frequency}")
        if not 0.0 < self.decay <= 1.0:
            raise ConfigError(f"decay: must lie in (0, 1], got {self.decay}")
        if self.num_samples < 2:
            raise ConfigError(f"num_samples: must be >= 2, got {self.num_samples}")


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """Optimisation, importance-sampling and run settings (maths 4.1 and 5).

    Beyond the reference's keys: ``adam_beta1`` (Adam's first-moment decay, 0.9; Pang et al.'s
    latent EBM uses 0.5), ``log_every`` (steps between log events, each writing a row of
    ``loss.csv``, a sample grid and a checkpoint; step 1 and the last step are always logged; 0,
    the default: every ``min(steps per epoch, ceil(total steps / 10))`` steps, so once an epoch
    in a run of ten epochs or more and ten times in a shorter one; see
    :func:`tkam.train.run.log_interval`),
    ``checkpoint_every`` (extra checkpoints every k steps), ``num_plot_samples`` (the samples of
    the grid written at every log event), ``device`` (cpu, cuda or auto), ``compile`` (``torch.compile`` the KAN
    kernels), ``precision`` (``bf16`` autocasts the generator; quadrature and sampling stay
    float32), ``accumulate`` (shards per process, each with its own random stream; see
    ``tkam.train.distributed``), ``skip_nonfinite`` (skip, and count, updates whose loss or
    gradient is not finite instead of stopping), ``threads`` (torch's intra-op threads; 0, the
    default: torch's own choice, except under a launcher of several local processes without
    ``OMP_NUM_THREADS``, where the cores are split evenly; see
    :func:`tkam.train.distributed.intra_op_threads`), ``compat_weights`` and ``compat_residual``
    (the importance-sampling loss with the reference code's SIR loss weights, departures A3,
    and its residual-resampling weights, departures A8: off by default, for reproducing its
    logged runs) and ``negatives`` (the importance-sampling loss's contrastive negatives:
    ``fresh`` prior samples as the reference, or the ``proposals``, also exact prior samples,
    which saves a draw and most of a prior evaluation; maths 3.7).

    ``loss`` chooses the training loss (maths 4): ``importance`` (importance sampling from
    the prior), ``langevin`` (maximum likelihood with posterior Langevin), ``thermodynamic``
    (thermodynamic integration over ``thermodynamic.num_temps`` power posteriors), ``elbo`` (the
    VAE's) or ``auto``, which :class:`ExperimentConfig` replaces by the loss the other sections
    imply. The baselines have one loss each: ``elbo`` for ``model.kind = "vae"``, ``langevin``
    (with the ``model`` section's sampler) for ``"lebm"``.
    """

    batch_size: int = 100
    importance_samples: int = 100
    learning_rate: float = 1e-3
    adam_beta1: float = 0.9
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
    num_plot_samples: int = 100
    device: str = "cpu"
    compile: bool = False
    precision: str = "fp32"
    accumulate: int = 1
    skip_nonfinite: bool = False
    threads: int = 0
    compat_weights: bool = False
    compat_residual: bool = False
    loss: str = "auto"

    def __post_init__(self) -> None:
        _set(self, "loss", _choice(self.loss, LOSSES, "loss"))
        _set(self, "resampler", _choice(self.resampler, RESAMPLERS, "resampler"))
        _set(self, "precision", _choice(self.precision, PRECISIONS, "precision"))
        _set(self, "negatives", _choice(self.negatives, NEGATIVES, "negatives"))
        if self.accumulate < 1:
            raise ConfigError(f"accumulate: must be >= 1, got {self.accumulate}")
        if self.threads < 0:
            raise ConfigError(f"threads: must be >= 0 (0: automatic), got {self.threads}")
        if not _DEVICE.fullmatch(self.device):
            raise ConfigError(
                f"device: expected auto, cpu, cuda, cuda:N or mps, got {self.device!r}"
            )
        if not 0 <= self.seed < 2**64:
            raise ConfigError(f"seed: must lie in 0..2**64-1, got {self.seed}")
        for name in ("log_every", "checkpoint_every"):
            if getattr(self, name) < 0:
                raise ConfigError(
                    f"{name}: must be >= 0 (0: the default cadence), got {getattr(self, name)}"
                )
        if self.num_plot_samples < 1:
            raise ConfigError(f"num_plot_samples: must be >= 1, got {self.num_plot_samples}")
        if self.eps <= 0:
            raise ConfigError(f"eps: must be > 0, got {self.eps}")
        for name in ("batch_size", "importance_samples", "epochs"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}: must be >= 1, got {getattr(self, name)}")
        if self.max_steps < 0:
            raise ConfigError(f"max_steps: must be >= 0 (0 means all epochs), got {self.max_steps}")
        if self.learning_rate <= 0:
            raise ConfigError(f"learning_rate: must be > 0, got {self.learning_rate}")
        if not 0.0 <= self.adam_beta1 < 1.0:
            raise ConfigError(f"adam_beta1: must lie in [0, 1), got {self.adam_beta1}")
        if not 0.0 < self.resampling_threshold <= 1.0:
            raise ConfigError(
                f"resampling_threshold: must lie in (0, 1], got {self.resampling_threshold}"
            )


@dataclass(frozen=True, kw_only=True)
class PosteriorConfig:
    """How the posterior is handled (maths 4.2-4.3).

    Attributes:
        sampler: ``importance`` (no posterior sampler: the IS loss; a deep prior's Langevin
            loss runs ULA), ``ula`` or ``automala`` (the sampler of the Langevin MLE and
            thermodynamic losses). ``train.loss = "auto"`` picks the loss from it.
        step_size: ULA step / autoMALA initial step.
        step_size_bounds: autoMALA step-size clamp.
        steps: Langevin iterations per training step (all temperatures in parallel).
        num_unadjusted: autoMALA's initial unconditionally accepted steps.
        change_rate: autoMALA's step multiplier.
        reflect: keep the chains on the prior's support by reflecting them at its walls (a
            univariate or mixture prior lives on its components' domains; maths 4.2). False
            lets them leave it, as the reference's samplers do, where the log-prior is the
            energy's extrapolation and the grid refits on posterior latents (departures A16)
            widen the domain run after run.
        init_samples: where the Langevin loss starts its chains: 0, at prior draws (the
            reference); M > 0, by sampling-importance-resampling: M prior proposals for the
            batch, each datum's chain started at one of them drawn in proportion to its
            likelihood, so the chains start near the posterior among latents the prior
            produces; with ``space = "noise"`` the proposals are the prior's noise (the
            thermodynamic loss's populations keep their prior starts).
        space: where the chains move. ``latent`` (the reference): on the latents ``z``
            themselves. ``noise`` (univariate prior only): on the standard normal noise ``e``
            that the inverse transform turns into latents, ``z = F^{-1}(Phi(e))`` (one noise
            per shared uniform, or per component with ``prior.independent_uniforms``), with the
            target ``N(e; 0, I) p(x | z(e))``: the posterior of the prior's own sampling process,
            so every chain position is a latent the prior can draw (maths 4.2).
    """

    sampler: str = "importance"
    step_size: float = 0.005
    step_size_bounds: tuple[float, float] = (1e-4, 10.0)
    steps: int = 25
    num_unadjusted: int = 2
    change_rate: float = 2.0
    reflect: bool = True
    init_samples: int = 0
    space: str = "latent"

    def __post_init__(self) -> None:
        _set(self, "sampler", _choice(self.sampler, SAMPLERS, "sampler"))
        _set(self, "space", _choice(self.space, CHAIN_SPACES, "space"))
        if self.init_samples < 0:
            raise ConfigError(f"init_samples: must be >= 0, got {self.init_samples}")
        if self.step_size <= 0 or self.steps < 1:
            raise ConfigError("step_size/steps: must be positive")
        lo, hi = self.step_size_bounds
        if not 0 < lo < hi:
            raise ConfigError(f"step_size_bounds: needs 0 < min < max, got {self.step_size_bounds}")
        if self.change_rate <= 1:
            raise ConfigError(f"change_rate: must be > 1, got {self.change_rate}")


@dataclass(frozen=True, kw_only=True)
class ThermodynamicConfig:
    """Thermodynamic integration over power posteriors (maths 4.3).

    Attributes:
        num_temps: N_t; more than 1 means the thermodynamic loss (``train.loss = "auto"``
            resolves to it, and ``importance``/``langevin`` are refused).
        p_start, p_end, num_cycles: cyclic cosine schedule of the power p over training.
        replica_exchange_frequency: one adjacent swap attempt every this many Langevin steps.
        swap_per_chain: decide swaps per data point (True) or once for the batch (the
            reference's rule, departures A7).
        integral: ``reference`` (Riemann sum counting the first interval twice, departures A6) or
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
    """Which data set to train on, where its files are, and the split (maths 6).

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
        energy_learning_rate: Adam rate of the latent EBM's energy MLP (the generator keeps
            ``train.learning_rate``; 0 uses ``train.learning_rate`` for both). The default,
            5e-4, is the best of a validation-FID sweep on Fashion-MNIST with the KAN generator
            (``benchmarks/side_by_side.py sweep lebm``; Pang et al.'s ``e_lr = 2e-5`` is tuned
            for about 50,000 updates, and in a few thousand its prior barely leaves N(0, I)).
        kl_weight: the VAE's KL weight beta (``E_q log p(x|z) - beta KL``). With the Gaussian
            likelihood it is applied as the equivalent decoder: the ELBO of a Gaussian with std
            ``generator.variance * sqrt(beta)`` (the same objective up to the factor beta), so
            the trained VAE is that decoder's and its log-likelihood is reported for it. The
            default, 64, is the value chosen by validation FID on Fashion-MNIST with the KAN
            generator (``benchmarks/side_by_side.py sweep vae``; with sigma = 0.1 it is the
            ELBO of a decoder with std 0.8); 1 is the unweighted bound of sigma itself.
    """

    kind: str = "tkam"
    encoder_hidden: tuple[int, ...] = ()
    energy_hidden: int = 200
    prior_steps: int = 60
    prior_step_size: float = 0.4
    posterior_steps: int = 20
    posterior_step_size: float = 0.1
    energy_learning_rate: float = 5e-4
    kl_weight: float = 64.0

    def __post_init__(self) -> None:
        _set(self, "kind", _choice(self.kind, MODEL_KINDS, "kind"))
        if self.energy_learning_rate < 0:
            raise ConfigError(
                f"energy_learning_rate: must be >= 0, got {self.energy_learning_rate}"
            )
        if not 0.0 < self.kl_weight <= 1e3:
            raise ConfigError(f"kl_weight: must lie in (0, 1000], got {self.kl_weight}")
        if any(w < 1 for w in self.encoder_hidden):
            raise ConfigError(f"encoder_hidden: needs positive widths, got {self.encoder_hidden}")
        if self.energy_hidden < 1:
            raise ConfigError(f"energy_hidden: must be >= 1, got {self.energy_hidden}")
        if self.prior_steps < 1 or self.posterior_steps < 1:
            raise ConfigError("prior_steps/posterior_steps: must be >= 1")
        if self.prior_step_size <= 0 or self.posterior_step_size <= 0:
            raise ConfigError("prior_step_size/posterior_step_size: must be > 0")


def _implied_loss(config: ExperimentConfig) -> str:
    """The loss the other sections imply: the rule that ``train.loss = "auto"`` stands for."""
    if config.model.kind in BASELINE_LOSSES:
        return BASELINE_LOSSES[config.model.kind]
    if config.thermodynamic.num_temps > 1:
        return "thermodynamic"
    if config.posterior.sampler != "importance" or config.prior.deep:
        return "langevin"
    return "importance"


def _chains_on_univariate_prior(config: ExperimentConfig) -> bool:
    """Whether posterior chains move the latents of a univariate T-KAM prior (the Langevin and
    thermodynamic losses)."""
    prior = config.prior
    univariate = config.model.kind == "tkam" and not (prior.mixture or prior.deep)
    return univariate and config.train.loss in ("langevin", "thermodynamic")


def _loss_conflicts(config: ExperimentConfig, loss: str) -> list[str]:
    """Why an explicit ``train.loss`` cannot train this model, one entry per conflicting key."""
    prior, sampler = config.prior, config.posterior.sampler
    num_temps = config.thermodynamic.num_temps
    head = f"train.loss = {loss!r}"
    kind = config.model.kind
    if kind in BASELINE_LOSSES:
        own = BASELINE_LOSSES[kind]
        if loss == own:
            return []
        return [f"{head} cannot train model.kind = {kind!r}, which trains with {own!r}"]
    problems = []
    if loss == "elbo":
        problems.append(f"{head} is the VAE's loss (model.kind = 'vae'); T-KAM has no encoder")
    if loss == "thermodynamic" and num_temps < 2:
        problems.append(
            f"{head} integrates over power posteriors and needs thermodynamic.num_temps >= 2, "
            f"got {num_temps}"
        )
    if loss in ("importance", "langevin") and num_temps > 1:
        problems.append(
            f"{head} conflicts with thermodynamic.num_temps = {num_temps} (more than one "
            "temperature is the thermodynamic loss); set thermodynamic.num_temps = 1 or "
            "train.loss = 'thermodynamic'"
        )
    if loss == "importance" and prior.deep:
        problems.append(
            f"{head} needs prior samples by inverse transform, which the deep prior of "
            f"prior.widths = {list(prior.widths)} does not have (it is sampled by prior "
            "Langevin); use train.loss = 'langevin' or 'thermodynamic'"
        )
    if loss == "importance" and sampler != "importance":
        problems.append(
            f"{head} conflicts with posterior.sampler = {sampler!r} (the importance-sampling loss "
            "runs no posterior sampler); set posterior.sampler = 'importance' or "
            "train.loss = 'langevin'"
        )
    if loss == "langevin" and sampler == "importance" and not prior.deep:
        # A deep prior has no inverse-transform samples, so Langevin (ULA) is its only loss and
        # posterior.sampler = 'importance' is read as ULA there; for other priors it means IS.
        problems.append(
            f"{head} conflicts with posterior.sampler = 'importance' and the non-deep prior of "
            f"prior.widths = {list(prior.widths)}; set posterior.sampler = 'ula' or 'automala', "
            "or train.loss = 'importance'"
        )
    return problems


@dataclass(frozen=True, kw_only=True)
class ExperimentConfig:
    """The root config: one sub-config per component, checked against each other.

    Building one resolves ``train.loss = "auto"`` to the concrete loss, and refuses an explicit
    ``train.loss`` that the model, prior, posterior or thermodynamic settings cannot train.
    """

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
        if self.train.loss == "auto":
            # Resolved here, once, so that a written config records the loss it trained with and
            # reads back equal.
            _set(self, "train", dataclasses.replace(self.train, loss=_implied_loss(self)))
        else:
            problems = _loss_conflicts(self, self.train.loss)
            if problems:
                raise ConfigError("; ".join(problems))
        if self.prior.independent_uniforms is None:
            # Resolved like the loss: the written config records the sampler's uniforms, on
            # where posterior chains move the latents of a univariate T-KAM prior.
            independent = _chains_on_univariate_prior(self)
            _set(self, "prior", dataclasses.replace(self.prior, independent_uniforms=independent))


def _section_rules(config: ExperimentConfig) -> list[tuple[str, Any, bool, str]]:
    """``(key, section, in effect, why not)`` of the settings that only some models read."""
    prior, generator = config.prior, config.generator
    rules: list[tuple[str, Any, bool, str]] = []
    for name, section in (("prior", prior), ("generator", generator)):
        rules.append(
            (
                f"{name}.spline_degree",
                section,
                section.basis in ("bspline", "chebyshev"),
                f"the {section.basis} basis has no degree",
            )
        )
        rules.append(
            (
                f"{name}.compat_rbf_refit",
                section,
                section.basis == "rbf",
                f"the {section.basis} basis has no bandwidth",
            )
        )
    deep, mixture = prior.deep, prior.mixture
    for key in ("langevin_step_size", "langevin_steps"):
        rules.append((f"prior.{key}", prior, deep, "only a deep prior runs prior Langevin"))
    rules.append(
        (
            "prior.compat_node_map",
            prior,
            prior.quadrature == "gausslegendre" and not deep,
            "no Gauss-Legendre quadrature here",
        )
    )
    for key in ("train_proportions", "normalised_mixture"):
        rules.append((f"prior.{key}", prior, mixture and not deep, "the prior is not a mixture"))
    rules.append(
        (
            "prior.compat_layout",
            prior,
            not (mixture or deep),
            "only the univariate prior has the reshaped layout",
        )
    )
    rules.append(
        (
            "prior.independent_uniforms",
            prior,
            not (mixture or deep),
            "only the univariate prior shares uniforms (the mixture draws one per latent)",
        )
    )
    cnn = generator.kind == "cnn"
    for key in ("hidden_channels", "kernel_sizes", "strides", "paddings", "latent_concat"):
        rules.append((f"generator.{key}", generator, cnn, f"generator.kind is {generator.kind}"))
    rules.append(
        ("generator.cnn_activation", generator, cnn, f"generator.kind is {generator.kind}")
    )
    rules.append(
        ("generator.d_model", generator, generator.kind == "sequence", "not a sequence generator")
    )
    rules.append(
        ("generator.mlp_activation", generator, generator.kind == "mlp", "not an MLP generator")
    )
    rules.append(
        (
            "generator.likelihood",
            generator,
            generator.kind != "sequence",
            "text uses the categorical likelihood",
        )
    )
    rules.append(
        (
            "generator.variance",
            generator,
            generator.kind == "sequence" or generator.likelihood == "gaussian",
            "the Bernoulli likelihood has no variance",
        )
    )
    rules.append(
        (
            "model.kl_weight",
            config.model,
            config.model.kind == "vae",
            f"only the VAE has a KL term (model.kind is {config.model.kind})",
        )
    )
    rules.append(
        (
            "posterior.init_samples",
            config.posterior,
            config.train.loss == "langevin",
            f"only the Langevin loss starts chains by resampling (the loss is {config.train.loss})",
        )
    )
    rules.append(
        (
            "posterior.space",
            config.posterior,
            _chains_on_univariate_prior(config),
            "chains move on the noise of the univariate prior's inverse transform only, in the"
            f" Langevin and thermodynamic losses (the loss is {config.train.loss})",
        )
    )
    importance = config.train.loss == "importance"
    for key in ("compat_weights", "compat_residual"):
        rules.append((f"train.{key}", config.train, importance, f"the loss is {config.train.loss}"))
    return rules


def _changed(value: Any, default: Any) -> bool:
    """Whether a setting differs from its default; a ``None`` default that the config resolved
    to False (``prior.independent_uniforms`` off) counts as unchanged."""
    return value != default and not (default is None and value is False)


def ineffective_settings(config: ExperimentConfig) -> list[str]:
    """The settings given a non-default value that this config's model never reads, as
    ``key = value (why)``; :func:`~tkam.config.load_config` warns about them."""
    found = []
    baseline = config.model.kind != "tkam"
    if baseline:  # one entry for the whole prior section, which a baseline never reads
        default_prior = PriorConfig()
        changed = [
            f"prior.{f.name}"
            for f in dataclasses.fields(PriorConfig)
            if _changed(getattr(config.prior, f.name), getattr(default_prior, f.name))
        ]
        if changed:
            found.append(
                f"{', '.join(changed)} (model.kind = {config.model.kind} has its own prior: the "
                "prior section is ignored)"
            )
    for key, section, in_effect, why in _section_rules(config):
        if baseline and key.startswith("prior."):
            continue
        name = key.split(".", 1)[1]
        value = getattr(section, name)
        default = next(f for f in dataclasses.fields(section) if f.name == name).default
        if not in_effect and _changed(value, default):
            found.append(f"{key} = {value!r} ({why})")
    return found
