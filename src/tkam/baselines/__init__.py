"""Baselines composed from T-KAM's parts: the same generator, likelihood, data and trainer under
another prior (``model.kind``).

``vae``: Gaussian prior, amortised Gaussian encoder, reparameterised ELBO (and the IWAE bound).
``lebm``: latent energy-based prior of Pang et al. (2020) with short-run Langevin.
"""

from __future__ import annotations

from tkam.baselines.lebm import EnergyPrior, LatentEBM, ula_step_size
from tkam.baselines.vae import VAE, Encoder

__all__ = ["VAE", "Encoder", "EnergyPrior", "LatentEBM", "ula_step_size"]
