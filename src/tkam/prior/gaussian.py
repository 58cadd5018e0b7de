"""The standard normal prior ``N(0, I_Q)`` (the VAE's prior and the latent EBM's base)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from tkam.prior.protocol import PriorModule

__all__ = ["GaussianPrior"]


class GaussianPrior(PriorModule):
    """``N(0, I_Q)`` on the generator's input; no parameters, exact samples, normalised.

    Args:
        width: Q, the latent width.
    """

    exact_normaliser = True
    _anchor: Tensor

    def __init__(self, width: int) -> None:
        super().__init__()
        self.width = width
        # Follows the model across devices without entering the state dict.
        self.register_buffer("_anchor", torch.zeros(()), persistent=False)

    @property
    def latent_shape(self) -> tuple[int]:
        return (self.width,)

    def initial(self, num_samples: int, rng: torch.Generator | None = None) -> Tensor:
        """``(S, Q)`` standard normal draws (in the module's dtype and device)."""
        anchor = self._anchor
        shape = (num_samples, self.width)
        return torch.randn(shape, generator=rng, device=anchor.device, dtype=anchor.dtype)

    def sample(self, num_samples: int, rng: torch.Generator | None = None) -> Tensor:
        """``(S, Q)`` exact prior samples."""
        return self.initial(num_samples, rng)

    def log_reference(self, z: Tensor) -> Tensor:
        """Normalised ``log N(z; 0, I)``: ``(S, Q) -> (S,)``."""
        return -0.5 * z.square().sum(-1) - 0.5 * self.width * math.log(2 * math.pi)

    def log_prior(
        self, z: Tensor, normalise: bool = False, log_normaliser: Tensor | None = None
    ) -> Tensor:
        """``log N(z; 0, I)``: ``(S, Q) -> (S,)``, normalised whether asked or not (``Z = 1``)."""
        return self.log_reference(z)

    def log_normaliser(self) -> Tensor:
        """``log Z = 0``: the density is normalised (a subclass without an exact normaliser
        raises)."""
        self.check_normalise(True)
        return self._anchor.new_zeros(())

    def generator_input(self, z: Tensor) -> Tensor:
        return z
