"""The deep (Pang-style) KAN energy prior, sampled by prior Langevin (maths 1.2, 3.8).

``log p(z) = E(z) + sum_i log pi_0(z_i)`` with ``E`` a stack of KAN layers ``(P, ..., 1)``. There is
no quadrature, so samples come from unadjusted Langevin dynamics on the prior alone (the reference
also adds the likelihood of an all-zero image, departures A10) started from the base density, and
the prior gradient is always contrastive with prior-Langevin negatives. The base density is a
standard Gaussian when the config's reference is ``ebm`` (departures A10: Pang et al. use a
Gaussian base).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import cast

import torch
from torch import Tensor, nn

from tkam.config import PriorConfig
from tkam.kan.layer import UnivariateLayer
from tkam.posterior.langevin import ula
from tkam.prior.protocol import PriorModule
from tkam.prior.reference import ReferenceDensity

__all__ = ["DeepPrior"]


class DeepPrior(PriorModule):
    """A KAN energy on P latents; ``sample`` runs prior Langevin from the base density (no exact
    normaliser, no univariate components).

    Args:
        config: the prior section (widths ``(P, ..., 1)``, ``langevin_step_size``,
            ``langevin_steps``).
        eps: stabiliser of ``log(pi_0 + eps)`` for a base with bounded support.
        rng: random stream for the initialisation.
    """

    def __init__(
        self, config: PriorConfig, eps: float = 1e-4, rng: torch.Generator | None = None
    ) -> None:
        super().__init__()
        self.config = config
        widths = config.widths
        self.num_inputs = self.num_outputs = widths[0]
        base = "gaussian" if config.reference == "ebm" else config.reference
        assert config.grid_range is not None  # PriorConfig resolves it
        self.reference = ReferenceDensity(base, widths[0], config.grid_range, eps)
        self.layers = nn.ModuleList(
            UnivariateLayer(i, o, config, rng=rng) for i, o in zip(widths, widths[1:])
        )
        self.norms = nn.ModuleList(
            nn.LayerNorm(i) if (config.layernorm and n > 0) else nn.Identity()
            for n, i in enumerate(widths[:-1])
        )
        self.step_size = config.langevin_step_size
        self.num_steps = config.langevin_steps

    @property
    def latent_shape(self) -> tuple[int]:
        return (self.num_inputs,)

    def _stack(self) -> Iterator[tuple[nn.Module, UnivariateLayer]]:
        """``(norm, layer)`` of every layer, input side first."""
        return zip(self.norms, cast("Iterable[UnivariateLayer]", self.layers))

    def energy(self, z: Tensor) -> Tensor:
        """``E(z)``: ``(S, P) -> (S,)``."""
        x = z
        for norm, layer in self._stack():
            x = layer.summed(norm(x))
        return x.squeeze(-1)

    def log_prior(
        self, z: Tensor, normalise: bool = False, log_normaliser: Tensor | None = None
    ) -> Tensor:
        """``E(z) + sum_i log pi_0(z_i)``, ``(S, P) -> (S,)``, with the base's exact log-density
        (:meth:`~tkam.prior.reference.ReferenceDensity.log_base`); unnormalised (``normalise``
        raises: there is no tractable ``Z``)."""
        self.check_normalise(normalise)
        return self.energy(z) + self.reference.log_base(z).sum(-1)

    def _initial(self, num_samples: int, rng: torch.Generator | None) -> Tensor:
        device = cast(UnivariateLayer, self.layers[0]).coef.device
        shape = (num_samples, self.num_inputs)
        name = self.reference.name
        if name == "uniform":
            return torch.rand(shape, generator=rng, device=device)
        noise = torch.randn(shape, generator=rng, device=device)
        if name == "lognormal":
            return noise.exp()
        if name == "learnable_gaussian":
            std = torch.nn.functional.softplus(self.reference.raw_std.detach())
            return self.reference.mean.detach() + std * noise
        return noise

    def sample(self, num_samples: int, rng: torch.Generator | None = None) -> Tensor:
        """``(S, P)`` prior-Langevin samples (exactly ``num_samples``, departures A26), without
        gradient."""
        z0 = self._initial(num_samples, rng)
        state = ula(z0, self.log_prior, self.step_size, self.num_steps, rng)
        return state.z.detach()

    def generator_input(self, z: Tensor) -> Tensor:
        return z

    @torch.no_grad()
    def update_grid(self, z: Tensor) -> None:
        """Refit every layer's grid to its inputs, pushing ``z`` through the updated layers."""
        x = z
        for norm, layer in self._stack():
            x = norm(x)
            layer.update_grid(x)
            x = layer.summed(x)
