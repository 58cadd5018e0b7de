"""The VAE's loss: the negative evidence lower bound."""

from __future__ import annotations

import torch
from torch import Tensor

from tkam.baselines.vae import VAE
from tkam.losses.output import LossOutput

__all__ = ["elbo_loss"]


def elbo_loss(
    model: VAE, x: Tensor, rng: torch.Generator | None = None, kl_weight: float = 1.0
) -> LossOutput:
    """Negative ELBO (mean over the batch), reparameterised, closed-form KL, noised likelihood;
    ``kl_weight`` beta scales the KL term (beta-VAE; 1 is the ELBO)."""
    elbo = model.elbo(x, rng, kl_weight=kl_weight)
    return LossOutput(-elbo.mean(), {"elbo": float(elbo.detach().mean())})
