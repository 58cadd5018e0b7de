"""Latent energy-based prior baseline (Pang et al. 2020, "Learning latent space energy-based prior
model").

``p(z) ∝ exp(E(z)) N(z; 0, I)`` with ``E`` an MLP ``Q -> h -> h -> 1`` (leaky-ReLU 0.2) on the
generator's input, T-KAM's generator and Gaussian likelihood. Prior samples: short-run Langevin
on ``log p`` from ``N(0, I)``; posterior samples: short-run Langevin on ``log p(z) + log p(x | z)``
also from ``N(0, I)`` (both chains start from the base, as in Pang et al.'s code). Step sizes are
Pang's ``s`` (``z <- z + s^2/2 grad + s xi``), i.e. ULA with ``eta = s^2 / 2``. The loss is T-KAM's Langevin MLE loss (maths 4.2), whose contrastive prior
gradient is Pang's: the same maths, written once in :mod:`tkam.losses.langevin`.
"""

from __future__ import annotations

from typing import cast

import torch
from torch import Tensor, nn

from tkam.config import ExperimentConfig
from tkam.generator.init import default_init_
from tkam.model import LatentModel, ModelParts
from tkam.posterior.langevin import ula
from tkam.prior import GaussianPrior

__all__ = ["EnergyPrior", "LatentEBM", "ula_step_size"]


def ula_step_size(step_size: float) -> float:
    """ULA's ``eta`` for Pang's Langevin step ``s``: ``eta = s^2 / 2`` (noise scale ``s``)."""
    return 0.5 * step_size**2


class EnergyPrior(GaussianPrior):
    """``log p~(z) = E(z) + log N(z; 0, I)`` (unnormalised), sampled by prior Langevin.

    Args:
        width: Q.
        hidden: energy MLP width.
        num_steps: prior Langevin steps.
        step_size: Pang's Langevin step ``s``.
        rng: random stream for the initialisation.
    """

    exact_normaliser = False

    def __init__(
        self,
        width: int,
        hidden: int = 200,
        num_steps: int = 60,
        step_size: float = 0.4,
        rng: torch.Generator | None = None,
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
                default_init_(module, rng)
        self.num_steps = num_steps
        self.step_size = step_size

    def energy(self, z: Tensor) -> Tensor:
        """``E(z)``: ``(S, Q) -> (S,)``."""
        return self.energy_net(z).squeeze(-1)

    def log_prior(
        self, z: Tensor, normalise: bool = False, log_normaliser: Tensor | None = None
    ) -> Tensor:
        """``E(z) + log N(z; 0, I)``, ``(S, Q) -> (S,)``; unnormalised (``normalise`` raises:
        there is no tractable ``Z``)."""
        self.check_normalise(normalise)
        return self.energy(z) + self.log_reference(z)

    def chain_start(self, num_samples: int, rng: torch.Generator | None = None) -> Tensor:
        """Posterior chains start from the base ``N(0, I)``, as Pang et al. start both chains.

        Started from short-run prior samples instead, every posterior chain begins where the
        energy put the last prior samples and the likelihood pulls it further out; the energy
        then follows the posterior samples outwards, and the two chase each other without bound
        (``benchmarks/RESULTS.md``, the latent-EBM findings).
        """
        return self.initial(num_samples, rng)

    def sample(self, num_samples: int, rng: torch.Generator | None = None) -> Tensor:
        """``(S, Q)`` short-run prior-Langevin samples from ``N(0, I)``, detached (works under
        ``torch.no_grad``: the sampler enables gradients locally)."""
        z0 = self.initial(num_samples, rng)
        eta = ula_step_size(self.step_size)
        return ula(z0, self.log_prior, eta, self.num_steps, rng).z.detach()


class LatentEBM(LatentModel):
    """Energy-based latent prior + T-KAM's generator and likelihood; the energy MLP has its own
    learning rate.

    Args:
        prior: the energy prior.
        generator: as :class:`~tkam.model.LatentModel`.
        likelihood: as :class:`~tkam.model.LatentModel`.
        image_shape: as :class:`~tkam.model.LatentModel`.
        energy_learning_rate: Adam rate of the energy MLP (0: the model's learning rate).
        **options: the keyword options of :class:`~tkam.model.LatentModel`.
    """

    def __init__(
        self,
        prior: EnergyPrior,
        generator: nn.Module,
        likelihood: object,
        image_shape: tuple[int, ...],
        energy_learning_rate: float = 0.0,
        **options: bool,
    ) -> None:
        super().__init__(prior, generator, likelihood, image_shape, **options)
        self.energy_learning_rate = energy_learning_rate

    @classmethod
    def prior_from_config(
        cls, config: ExperimentConfig, rng: torch.Generator | None
    ) -> EnergyPrior:
        """The energy prior of the ``model`` section on the generator's input."""
        cfg = config.model
        width = config.generator.widths[0]
        return EnergyPrior(width, cfg.energy_hidden, cfg.prior_steps, cfg.prior_step_size, rng=rng)

    @classmethod
    def from_parts(
        cls, config: ExperimentConfig, parts: ModelParts, rng: torch.Generator | None
    ) -> LatentEBM:
        """The latent EBM, its energy at ``model.energy_learning_rate``."""
        prior, generator, likelihood, shape, options = parts
        energy = cast(EnergyPrior, prior)  # from prior_from_config
        return cls(
            energy, generator, likelihood, shape, config.model.energy_learning_rate, **options
        )

    def parameter_groups(self, learning_rate: float) -> list[dict]:
        """Adam groups: the energy MLP at ``energy_learning_rate`` (0: ``learning_rate``),
        everything else (the generator) at ``learning_rate``."""
        return self._prior_group(self.energy_learning_rate or learning_rate)
