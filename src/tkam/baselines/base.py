"""What the baselines share with T-KAM: generator, likelihood, generation and grid updates.

A baseline is a :class:`tkam.model.TKAM` whose Kolmogorov-Arnold prior is replaced by another
prior module with the same small interface (``sample``, ``log_prior``, ``generator_input``,
``latent_shape``, ``update_grid``). Decoding, generation, bf16 autocast, kernel compilation and
generator grid updates are TKAM's own methods, so the trainer, ``tkam sample`` and the evaluation
code treat every kind alike. Baseline priors have no ``quadrature``: prior plots are skipped.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from tkam.config import ExperimentConfig
from tkam.generator import build_generator, build_likelihood
from tkam.generator.cnn import uniform_init_
from tkam.kan.layer import UnivariateLayer
from tkam.model import TKAM

__all__ = ["BaselineModel", "GaussianPrior", "default_init_"]


class GaussianPrior(nn.Module):
    """The standard normal prior ``N(0, I_Q)`` on the generator's input (no parameters).

    Args:
        width: Q, the latent width.
    """

    def __init__(self, width: int) -> None:
        super().__init__()
        self.width = width
        # Follows the model across devices without entering the state dict.
        self.register_buffer("_anchor", torch.zeros(()), persistent=False)

    @property
    def latent_shape(self) -> tuple[int]:
        return (self.width,)

    def initial(self, num_samples: int, generator: torch.Generator | None = None) -> Tensor:
        """``(S, Q)`` standard normal draws."""
        return torch.randn(
            (num_samples, self.width), generator=generator, device=self._anchor.device
        )

    def sample(self, num_samples: int, generator: torch.Generator | None = None) -> Tensor:
        """``(S, Q)`` exact prior samples."""
        return self.initial(num_samples, generator)

    def log_reference(self, z: Tensor) -> Tensor:
        """Normalised ``log N(z; 0, I)``: ``(S, Q) -> (S,)``."""
        return -0.5 * z.square().sum(-1) - 0.5 * self.width * math.log(2 * math.pi)

    def log_prior(self, z: Tensor, normalise: bool = False) -> Tensor:
        """``log N(z; 0, I)`` (always normalised): ``(S, Q) -> (S,)``."""
        return self.log_reference(z)

    def weighted_log_prior(self, z: Tensor, weights: Tensor) -> Tensor:
        """``sum_s weights[s] log p(z_s)`` (unnormalised), a 0-d tensor."""
        return (self.log_prior(z) * weights).sum()

    def generator_input(self, z: Tensor) -> Tensor:
        return z

    @torch.no_grad()
    def sample_generator_input(
        self, num_samples: int, generator: torch.Generator | None = None
    ) -> Tensor:
        """The generator's input ``h (S, Q)`` of ``num_samples`` fresh prior samples."""
        return self.generator_input(self.sample(num_samples, generator))

    def update_grid(self, z: Tensor) -> None:
        """Baseline priors have no grids."""


class BaselineModel(TKAM):
    """A T-KAM generator and likelihood under another prior.

    Args:
        config: the experiment config (generator, ``train.eps``, ``train.precision``).
        image_shape: ``(C, H, W)`` of the data (any data shape the generator accepts).
        prior: the prior module; its latent width must be ``config.generator.widths[0]``.
        generator: random stream for the generator's initialisation.
    """

    def __init__(
        self,
        config: ExperimentConfig,
        image_shape: tuple[int, ...],
        prior: nn.Module,
        generator: torch.Generator | None = None,
    ) -> None:
        nn.Module.__init__(self)  # TKAM.__init__ would build the Kolmogorov-Arnold prior
        gen = config.generator
        self.image_shape = tuple(int(s) for s in image_shape)
        self.latent_width = gen.widths[0]
        self.prior = prior
        self.generator = build_generator(gen, self.image_shape, generator=generator)
        self.likelihood = build_likelihood(gen, config.train.eps)
        self.bf16 = config.train.precision == "bf16"
        self.update_prior_grid = False
        self.update_generator_grid = gen.update_grid and any(
            m.has_grid for m in self.generator.modules() if isinstance(m, UnivariateLayer)
        )


def default_init_(layer: nn.Module, generator: torch.Generator | None) -> None:
    """PyTorch's default Linear/Conv2d initialisation, U(+-1/sqrt(fan_in)), drawn from
    ``generator`` so runs are reproducible without the global stream (kept as is without one)."""
    if generator is not None:
        uniform_init_(layer, 1.0 / math.sqrt(layer.weight[0].numel()), generator)
