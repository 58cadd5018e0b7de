"""Latent-variable generative models: a prior, a generator and a likelihood (maths 1).

:class:`LatentModel` composes the three parts; it is what the losses, samplers, trainer, ``tkam
sample`` and the evaluation use of a model, and they reach the prior through its protocol
(:class:`tkam.prior.Prior`). T-KAM (:class:`TKAM`) has a Kolmogorov-Arnold prior; the baselines
of :mod:`tkam.baselines`, its siblings, compose the same generator and likelihood
(:func:`model_parts`) with another prior.
"""

from __future__ import annotations

from abc import ABCMeta, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar, Literal, NamedTuple, cast, overload

import torch
from torch import Tensor, nn

from tkam.config import ExperimentConfig
from tkam.generator import build_generator, build_likelihood
from tkam.kan.layer import UnivariateLayer
from tkam.posterior.state import Support
from tkam.posterior.tempering import TemperedTarget
from tkam.prior import Prior, build_prior

__all__ = ["TKAM", "LatentModel", "ModelParts", "model_parts"]


class ModelParts(NamedTuple):
    """What :meth:`LatentModel.from_config` builds every model around: its prior, the generator
    and likelihood of :func:`model_parts`, the shape of a data item and the model options."""

    prior: Prior
    generator: nn.Module
    likelihood: Any
    image_shape: tuple[int, ...]
    options: dict[str, bool]


def model_parts(
    config: ExperimentConfig,
    data_shape: tuple[int, ...],
    prior: Prior,
    rng: torch.Generator | None = None,
) -> tuple[nn.Module, Any, dict[str, bool]]:
    """The generator (initialised from ``rng``), the likelihood and the model options that a
    config gives every model around ``prior``: ``(generator, likelihood, options)``."""
    gen = config.generator
    generator = build_generator(gen, data_shape, rng=rng)
    options = {
        "bf16": config.train.precision == "bf16",
        "update_prior_grid": config.prior.update_grid and prior.has_grid,
        "update_generator_grid": gen.update_grid
        and any(m.has_grid for m in generator.modules() if isinstance(m, UnivariateLayer)),
    }
    return generator, build_likelihood(gen, config.train.eps), options


class LatentModel(nn.Module, metaclass=ABCMeta):
    """A latent-variable generative model: a prior, a generator and a likelihood.

    What the trainer, the losses, the samplers, ``tkam sample`` and the evaluation use of a
    model, the same for T-KAM (:class:`TKAM`) and the baselines (:class:`~tkam.baselines.VAE`,
    :class:`~tkam.baselines.LatentEBM`), which are its subclasses side by side: decoding,
    sampling, the power posteriors of data (:meth:`tempered_target`), grid updates, and the
    optimiser's parameter groups. A subclass says which prior a config gives it
    (:meth:`prior_from_config`) and what it builds around its parts (:meth:`from_parts`);
    :meth:`from_config` does the rest.

    Args:
        prior: any :class:`~tkam.prior.Prior` over latents ``(S, *latent_shape)``.
        generator: the decoder, generator inputs ``(S, Q)`` -> pre-activations ``(S, *shape)``.
        likelihood: ``mean``, ``noised``, ``log_likelihood`` and ``log_likelihood_matrix`` of
            pre-activations (:mod:`tkam.generator.likelihood`).
        image_shape: the shape of one data item (``(C, H, W)`` for images).
        bf16: run the generator under bfloat16 autocast (the prior stays float32).
        update_prior_grid: whether :meth:`update_grids` refits the prior's grids.
        update_generator_grid: whether :meth:`update_grids` refits the generator's grids.
        prior_learning_rate: Adam rate of the prior's parameters (0: the rate of the rest).
    """

    #: Whether the model has an amortised encoder (the VAE's importance-weighted bound).
    has_encoder: ClassVar[bool] = False

    def __init__(
        self,
        prior: Prior,
        generator: nn.Module,
        likelihood: Any,
        image_shape: tuple[int, ...],
        *,
        bf16: bool = False,
        update_prior_grid: bool = False,
        update_generator_grid: bool = False,
        prior_learning_rate: float = 0.0,
    ) -> None:
        super().__init__()
        if not isinstance(prior, Prior):
            raise TypeError(f"{type(prior).__name__} does not implement the Prior protocol")
        self.image_shape = tuple(int(s) for s in image_shape)
        self.prior = prior
        self.generator = generator
        self.likelihood = likelihood
        self.bf16 = bf16
        self.update_prior_grid = update_prior_grid
        self.update_generator_grid = update_generator_grid
        self.prior_learning_rate = prior_learning_rate

    @classmethod
    def from_config(
        cls,
        config: ExperimentConfig,
        image_shape: tuple[int, ...],
        rng: torch.Generator | None = None,
    ) -> LatentModel:
        """The model of ``config`` for data items of ``image_shape``: its prior
        (:meth:`prior_from_config`), then the generator and likelihood every model shares
        (:func:`model_parts`), then the model around them (:meth:`from_parts`); all parameters
        drawn from ``rng`` in that order."""
        prior = cls.prior_from_config(config, rng)
        generator, likelihood, options = model_parts(config, image_shape, prior, rng)
        shape = tuple(int(s) for s in image_shape)
        return cls.from_parts(config, ModelParts(prior, generator, likelihood, shape, options), rng)

    @classmethod
    @abstractmethod
    def prior_from_config(cls, config: ExperimentConfig, rng: torch.Generator | None) -> Prior:
        """The model's prior, its parameters drawn from ``rng`` first."""

    @classmethod
    @abstractmethod
    def from_parts(
        cls, config: ExperimentConfig, parts: ModelParts, rng: torch.Generator | None
    ) -> LatentModel:
        """The model around ``parts``; what else it has is drawn from ``rng`` last."""

    def parameter_groups(self, learning_rate: float) -> list[dict]:
        """The optimiser's parameter groups: one group at ``learning_rate``, or, with a
        ``prior_learning_rate``, the rest's at ``learning_rate`` and the prior's at its own
        rate."""
        if not self.prior_learning_rate:
            return [{"params": list(self.parameters())}]
        return self._prior_group(self.prior_learning_rate)

    def _prior_group(self, rate: float) -> list[dict]:
        """Two parameter groups: everything but the prior (at the optimiser's rate), then the
        prior's parameters at ``rate``."""
        # Every prior of a model is a module (its submodule), whatever the Prior protocol needs.
        prior = list(cast(nn.Module, self.prior).parameters())
        ids = {id(p) for p in prior}
        rest = [p for p in self.parameters() if id(p) not in ids]
        return [{"params": rest}, {"params": prior, "lr": rate}]

    def compile_kernels(self) -> None:
        """``torch.compile`` the KAN evaluations of the prior and the generator (opt-in)."""
        for module in self.modules():
            if isinstance(module, UnivariateLayer):
                module.compile_kernels()

    def decode(self, z: Tensor) -> Tensor:
        """Latents ``(S, *latent_shape)`` -> pre-activation outputs ``(S, C, H, W)``.

        With ``bf16`` the generator runs under bfloat16 autocast and its output is returned in
        float32; the prior (quadrature, sampling) always stays float32.
        """
        return self.decode_input(self.prior.generator_input(z))

    def decode_input(self, h: Tensor) -> Tensor:
        """Generator inputs ``(S, Q)`` -> pre-activation outputs ``(S, C, H, W)`` (bf16 as
        ``decode``)."""
        if not self.bf16:
            return self.generator(h)
        with torch.autocast(device_type=h.device.type, dtype=torch.bfloat16):
            out = self.generator(h)
        return out.float()

    def tempered_target(self, x: Tensor) -> TemperedTarget:
        """The power posteriors ``p(z) p(x_c | z)^t`` of chains ``c`` paired with data ``x``.

        The likelihood is noise-free (maths 4.2: scores use xi = 0) and hands the generator
        output to the exchange likelihood, which adds fresh output noise (maths 4.3). Chain
        ``c`` depends on ``x_c`` alone, so the target restricts to any chains (``on_rows``).
        """
        return self._tempered_target(x, self.prior.support())

    def _tempered_target(self, x: Tensor, support: Support | None) -> TemperedTarget:
        """:meth:`tempered_target` with the prior's support already computed (its restrictions
        to some chains share it)."""
        likelihood = self.likelihood

        def log_likelihood(z: Tensor) -> tuple[Tensor, Tensor]:
            output = self.decode(z)
            return likelihood.log_likelihood(x, likelihood.mean(output)), output

        def exchange_log_likelihood(output: Tensor, rng: torch.Generator | None) -> Tensor:
            return likelihood.log_likelihood(x, likelihood.noised(output, rng))

        def on_rows(rows: Tensor) -> TemperedTarget:
            return self._tempered_target(x[rows], support)

        return TemperedTarget(
            self.prior.log_prior, log_likelihood, exchange_log_likelihood, support, on_rows
        )

    @overload
    def sample(
        self,
        num_samples: int,
        rng: torch.Generator | None = None,
        batch_size: int = 1000,
        return_latent: Literal[False] = False,
    ) -> Tensor: ...

    @overload
    def sample(
        self,
        num_samples: int,
        rng: torch.Generator | None = None,
        batch_size: int = 1000,
        *,
        return_latent: Literal[True],
    ) -> tuple[Tensor, Tensor]: ...

    @overload
    def sample(
        self,
        num_samples: int,
        rng: torch.Generator | None,
        batch_size: int,
        return_latent: Literal[True],
    ) -> tuple[Tensor, Tensor]: ...

    @torch.no_grad()
    def sample(
        self,
        num_samples: int,
        rng: torch.Generator | None = None,
        batch_size: int = 1000,
        return_latent: bool = False,
    ) -> Tensor | tuple[Tensor, Tensor]:
        """Generate: prior samples, then the noise-free generator output.

        Returns:
            ``(S, C, H, W)`` outputs (in [0, 1] with the sigmoid activation), and the latents
            ``(S, *latent_shape)`` when ``return_latent``.
        """
        images, latents = [], []
        for start in range(0, num_samples, batch_size):
            count = min(batch_size, num_samples - start)
            if return_latent:
                z = self.prior.sample(count, rng)
                h = self.prior.generator_input(z)
                latents.append(z)
            else:  # the univariate prior sums its latents as it draws them
                h = self.prior.sample_generator_input(count, rng)
            images.append(self.likelihood.mean(self.decode_input(h)))
        x = torch.cat(images)
        return (x, torch.cat(latents)) if return_latent else x

    @torch.no_grad()
    def update_grids(self, z: Tensor) -> bool:
        """Refit the prior and generator grids to latents ``z`` (maths 2.6); True if any changed."""
        if self.update_prior_grid:
            self.prior.update_grid(z)
        if self.update_generator_grid:
            # Every generator has update_grid (a no-op without grids).
            refit = cast(Callable[[Tensor], None], self.generator.update_grid)
            refit(self.prior.generator_input(z))
        return self.update_prior_grid or self.update_generator_grid


class TKAM(LatentModel):
    """T-KAM: a Kolmogorov-Arnold prior (:meth:`prior_from_config`), a generator and a
    likelihood; its arguments are :class:`LatentModel`'s."""

    @classmethod
    def prior_from_config(cls, config: ExperimentConfig, rng: torch.Generator | None) -> Prior:
        """The config's Kolmogorov-Arnold prior (univariate, mixture or deep)."""
        return build_prior(config.prior, eps=config.train.eps, rng=rng)

    @classmethod
    def from_parts(
        cls, config: ExperimentConfig, parts: ModelParts, rng: torch.Generator | None
    ) -> TKAM:
        """T-KAM, its prior at its own rate ``prior.learning_rate`` (0: the optimiser's)."""
        prior, generator, likelihood, shape, options = parts
        rate = config.prior.learning_rate
        return cls(prior, generator, likelihood, shape, prior_learning_rate=rate, **options)
