"""Latent energy-based prior baseline (Pang et al. 2020, "Learning latent space energy-based prior
model").

``p(z) ∝ exp(E(z)) N(z; 0, I)`` with ``E`` an MLP ``Q -> h -> h -> 1`` (leaky-ReLU 0.2) on the
generator's input, T-KAM's generator and Gaussian likelihood. Prior samples: short-run Langevin
on ``log p`` from ``N(0, I)``; posterior samples: short-run Langevin on ``log p(z) + log p(x | z)``
from prior samples. Step sizes are Pang's ``s`` (``z <- z + s^2/2 grad + s xi``), i.e. ULA with
``eta = s^2 / 2``. The loss is T-KAM's Langevin MLE loss (spec 4.2), whose contrastive prior
gradient is Pang's: the same maths, written once in :mod:`tkam.losses.langevin`.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from tkam.baselines.base import BaselineModel, GaussianPrior, default_init_
from tkam.config import ExperimentConfig, PosteriorConfig
from tkam.losses import LossOutput
from tkam.losses.langevin import langevin_loss
from tkam.posterior.langevin import ula

__all__ = ["EnergyPrior", "LatentEBM", "lebm_loss", "ula_step_size"]


def ula_step_size(step_size: float) -> float:
    """ULA's ``eta`` for Pang's Langevin step ``s``: ``eta = s^2 / 2`` (noise scale ``s``)."""
    return 0.5 * step_size**2


class EnergyPrior(GaussianPrior):
    """``log p~(z) = E(z) + log N(z; 0, I)`` (unnormalised), sampled by prior Langevin.

    Args:
        width: Q.
        hidden: energy MLP width.
        num_steps, step_size: prior Langevin steps and Pang's step ``s``.
        generator: random stream for the initialisation.
    """

    def __init__(
        self,
        width: int,
        hidden: int = 200,
        num_steps: int = 60,
        step_size: float = 0.4,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__(width)
        self.energy_net = nn.Sequential(
            nn.Linear(width, hidden),
            nn.LeakyReLU(0.2),
            nn.Linear(hidden, hidden),
            nn.LeakyReLU(0.2),
            nn.Linear(hidden, 1),
        )
        for module in self.energy_net:
            if isinstance(module, nn.Linear):
                default_init_(module, generator)
        self.num_steps = num_steps
        self.step_size = step_size

    def energy(self, z: Tensor) -> Tensor:
        """``E(z)``: ``(S, Q) -> (S,)``."""
        return self.energy_net(z).squeeze(-1)

    def log_prior(self, z: Tensor, normalise: bool = False) -> Tensor:
        """``E(z) + log N(z; 0, I)``, never normalised (no tractable ``Z``): ``(S, Q) -> (S,)``."""
        return self.energy(z) + self.log_reference(z)

    def sample(self, num_samples: int, generator: torch.Generator | None = None) -> Tensor:
        """``(S, Q)`` short-run prior-Langevin samples from ``N(0, I)``, detached (works under
        ``torch.no_grad``: the sampler enables gradients locally)."""
        z0 = self.initial(num_samples, generator)
        eta = ula_step_size(self.step_size)
        return ula(z0, self.log_prior, eta, self.num_steps, generator).z.detach()


class LatentEBM(BaselineModel):
    """Energy-based latent prior + T-KAM's generator and likelihood.

    Args:
        config: the experiment config (``generator``, ``model``, ``train``).
        image_shape: ``(C, H, W)`` of the data.
        generator: random stream for the initialisation.
    """

    def __init__(
        self,
        config: ExperimentConfig,
        image_shape: tuple[int, ...],
        generator: torch.Generator | None = None,
    ) -> None:
        cfg = config.model
        prior = EnergyPrior(
            config.generator.widths[0],
            cfg.energy_hidden,
            cfg.prior_steps,
            cfg.prior_step_size,
            generator=generator,
        )
        super().__init__(config, image_shape, prior, generator=generator)
        self.posterior = PosteriorConfig(
            sampler="ula",
            step_size=ula_step_size(cfg.posterior_step_size),
            steps=cfg.posterior_steps,
        )
        self.energy_learning_rate = cfg.energy_learning_rate

    def parameter_groups(self, learning_rate: float) -> list[dict]:
        """Adam groups: the energy MLP at ``model.energy_learning_rate`` (0: ``learning_rate``),
        everything else (the generator) at ``learning_rate``."""
        energy = list(self.prior.parameters())
        ids = {id(p) for p in energy}
        rest = [p for p in self.parameters() if id(p) not in ids]
        rate = self.energy_learning_rate or learning_rate
        return [{"params": rest}, {"params": energy, "lr": rate}]


def lebm_loss(model: LatentEBM, x: Tensor, generator: torch.Generator | None = None) -> LossOutput:
    """``-[mean log p~(z_post) - mean log p~(z_neg) + mean log p(x | z_post)]`` (Pang et al.).

    ``z_post``: one posterior chain per datum from a prior sample; ``z_neg``: B fresh prior
    samples; the likelihood carries output noise as in T-KAM (1.4).
    """
    return langevin_loss(model, x, model.posterior, generator, contrastive=True)
