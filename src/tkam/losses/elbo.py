"""The VAE's loss: the negative evidence lower bound."""

from __future__ import annotations

import torch
from torch import Tensor

from tkam.baselines.vae import VAE
from tkam.losses.output import LossOutput

__all__ = ["elbo_loss"]


def elbo_loss(model: VAE, x: Tensor, rng: torch.Generator | None = None) -> LossOutput:
    """Negative ELBO (mean over the batch), reparameterised, closed-form KL, noised likelihood."""
    elbo = model.elbo(x, rng)
    return LossOutput(-elbo.mean(), {"elbo": float(elbo.detach().mean())})
