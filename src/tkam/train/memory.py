"""The memory a training run needs, estimated from its config before anything is built.

``tkam train`` (through :func:`tkam.train.loop.build_run`) compares the estimate with the memory
of the machine (or of the GPU) and refuses a model that cannot fit, naming the widths, before it
allocates anything: a ``prior.widths = [20, 100000]`` would otherwise fail minutes later inside the
allocator. The estimate counts only the largest tensors (the KAN coefficients and their optimiser
state, the prior's grid-update refit, one update's quadrature table, prior samples and generator
features), so it is a lower bound: a run refused by it cannot fit, and a run it accepts may still
need somewhat more.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from tkam.config import ExperimentConfig, KANConfig
from tkam.kan.bases import num_bases

__all__ = ["MemoryTerm", "training_memory"]

# float32 throughout: the prior always, the generator too but for bf16 autocast's activations.
_FLOAT_BYTES = 4
# Each parameter lives four times: its value, its gradient and Adam's two moments.
_PARAMETER_COPIES = 4
# A grid update's refit holds its targets three times: the spline values, the solver's
# contiguous copy and its solution of the same size (as torch's lstsq allocates them).
_REFIT_COPIES = 3
# What the quadrature table and the prior samples hold during an update: the values and what
# backpropagation keeps of them.
_ACTIVATION_COPIES = 2


@dataclass(frozen=True)
class MemoryTerm:
    """One part of the estimate.

    Attributes:
        what: the part and the settings it grows with.
        nbytes: its bytes.
    """

    what: str
    nbytes: int


def training_memory(config: ExperimentConfig, image_shape: Sequence[int]) -> tuple[int, MemoryTerm]:
    """The estimated peak bytes of training ``config`` on items of ``image_shape``, and its
    largest part.

    The peak is the parameters (with gradients and Adam moments) plus the largest of the work
    one step does at a time: a grid update of the prior, one of the generator, or an update's
    activations.
    """
    parameters = MemoryTerm(
        "the KAN coefficients with their gradients and Adam moments (prior.widths, "
        "generator.widths, grid sizes)",
        _PARAMETER_COPIES * _FLOAT_BYTES * sum(_layer_parameters(config, image_shape)),
    )
    work = [_prior_refit(config), _generator_refit(config, image_shape)]
    work.append(_activations(config, image_shape))
    largest_work = max(work, key=lambda term: term.nbytes)
    total = parameters.nbytes + largest_work.nbytes
    largest = max(parameters, largest_work, key=lambda term: term.nbytes)
    return total, largest


def _bases(kan: KANConfig) -> int:
    """M, the basis functions per input of a layer of ``kan`` (as :class:`UnivariateLayer`)."""
    grid_size = 1 if kan.basis == "chebyshev" else kan.grid_size
    degree = kan.spline_degree if kan.basis in ("bspline", "chebyshev") else 0
    return num_bases(kan.basis, grid_size, degree)


def _prior_layers(config: ExperimentConfig) -> list[tuple[int, int]]:
    """``(inputs, outputs)`` of the prior's KAN layers; none for the baselines, whose priors do
    not read the prior section."""
    if config.model.kind != "tkam":
        return []
    widths = config.prior.widths
    return list(zip(widths, widths[1:]))


def _generator_layers(
    config: ExperimentConfig, image_shape: Sequence[int]
) -> list[tuple[int, int]]:
    """``(inputs, outputs)`` of the KAN generator's layers (the last one to the pixels); none for
    the other generators, which this estimate leaves out."""
    if config.generator.kind != "kan":
        return []
    widths = (*config.generator.widths, math.prod(image_shape))
    return list(zip(widths, widths[1:]))


def _layer_parameters(config: ExperimentConfig, image_shape: Sequence[int]) -> Iterator[int]:
    """The parameters of every KAN layer: ``I O (M + 2)`` (coefficients and the two weights)."""
    for kan, layers in (
        (config.prior, _prior_layers(config)),
        (config.generator, _generator_layers(config, image_shape)),
    ):
        bases = _bases(kan)
        for inputs, outputs in layers:
            yield inputs * outputs * (bases + 2)


def _refit_rows(config: ExperimentConfig) -> int:
    """The latents a grid update refits on: prior samples for the importance loss and the
    ELBO, the batch's posterior samples otherwise."""
    if config.train.loss in ("importance", "elbo"):
        return config.grid_update.num_samples
    return config.train.batch_size


def _prior_refit(config: ExperimentConfig) -> MemoryTerm:
    """The targets of the univariate (or mixture) prior's grid update: the univariate prior
    refits each of its P rows on all ``n Q`` latents, for all Q outputs."""
    prior = config.prior
    what = "the prior's grid update (prior.widths, grid_update.num_samples)"
    if not _prior_layers(config) or prior.deep or not (prior.update_grid and prior.grid_based):
        return MemoryTerm(what, 0)
    P, Q = prior.widths
    n = _refit_rows(config)
    floats = Q * n * P if prior.mixture else P * (n * Q) * Q
    return MemoryTerm(what, _REFIT_COPIES * _FLOAT_BYTES * floats)


def _generator_refit(config: ExperimentConfig, image_shape: Sequence[int]) -> MemoryTerm:
    """The targets of the generator's grid update, its largest layer: ``I n O``."""
    generator = config.generator
    what = "the generator's grid update (generator.widths, grid_update.num_samples)"
    layers = _generator_layers(config, image_shape)
    if not layers or not (generator.update_grid and generator.grid_based):
        return MemoryTerm(what, 0)
    n = _refit_rows(config)
    floats = max(inputs * n * outputs for inputs, outputs in layers)
    return MemoryTerm(what, _REFIT_COPIES * _FLOAT_BYTES * floats)


def _activations(config: ExperimentConfig, image_shape: Sequence[int]) -> MemoryTerm:
    """One update's largest activations: the prior's quadrature table ``N P Q`` and samples
    ``S Q P``, the generator's basis features ``S I M`` per layer, its outputs and the
    likelihood matrix ``B S``."""
    train = config.train
    rows = max(train.importance_samples, train.batch_size)
    floats = 0
    prior = config.prior
    if _prior_layers(config) and not prior.deep:
        P, Q = prior.widths
        floats += _ACTIVATION_COPIES * (prior.num_nodes + rows) * P * Q
    bases = _bases(config.generator)
    for inputs, outputs in _generator_layers(config, image_shape):
        floats += rows * (inputs * bases + outputs)
    floats += rows * math.prod(image_shape) + train.batch_size * train.importance_samples
    return MemoryTerm(
        "one update's activations (prior.widths, prior.num_nodes, train.importance_samples, "
        "train.batch_size)",
        _FLOAT_BYTES * floats,
    )
