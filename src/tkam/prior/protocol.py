"""What every prior provides: the :class:`Prior` protocol and the :class:`PriorModule` base.

A model (:class:`tkam.model.LatentModel`) composes a prior with a generator and a likelihood, and
the losses, samplers, trainer and evaluation see the prior only through this interface: the
Kolmogorov-Arnold priors (univariate, mixture, deep), the VAE's standard normal and the latent
EBM's energy prior all implement it. What a caller may do depends on two declared capabilities,
never on the prior's type:

* ``exact_normaliser``: ``log_prior(z, normalise=True)`` is a normalised log-density (the
  Kolmogorov-Arnold priors by quadrature, the standard normal in closed form). Priors without one
  (energy-based priors sampled by Langevin) refuse ``normalise=True``: their gradient needs the
  contrastive negative phase.
* ``has_components``: the prior is made of univariate densities that :meth:`export` returns for
  plots and files.
"""

from __future__ import annotations

from typing import ClassVar, Protocol, runtime_checkable

import numpy as np
import torch
from torch import Tensor, nn

from tkam.kan.layer import UnivariateLayer
from tkam.posterior.state import Support

__all__ = ["Prior", "PriorModule"]


@runtime_checkable
class Prior(Protocol):
    """The interface of every prior over latents ``z (S, *latent_shape)``."""

    exact_normaliser: ClassVar[bool]
    has_components: ClassVar[bool]

    @property
    def latent_shape(self) -> tuple[int, ...]:
        """Shape of one latent (without the sample axis)."""
        ...

    def sample(self, num_samples: int, rng: torch.Generator | None = None) -> Tensor:
        """``(S, *latent_shape)`` prior samples, without gradient."""
        ...

    def chain_start(self, num_samples: int, rng: torch.Generator | None = None) -> Tensor:
        """``(S, *latent_shape)`` starting points of posterior Langevin chains."""
        ...

    def support(self) -> Support | None:
        """The box the prior's samples live in, broadcastable to ``latent_shape`` (posterior
        Langevin chains are reflected into it); None for a prior on the whole space."""
        ...

    def log_prior(
        self, z: Tensor, normalise: bool = False, log_normaliser: Tensor | None = None
    ) -> Tensor:
        """``(S, *latent_shape) -> (S,)`` log-prior (normalised on request where exact)."""
        ...

    def weighted_log_prior(
        self,
        z: Tensor,
        weights: Tensor,
        normalise: bool = False,
        log_normaliser: Tensor | None = None,
    ) -> Tensor:
        """``sum_s weights[s] log p(z_s)``, a 0-d tensor."""
        ...

    def log_normaliser(self) -> Tensor:
        """The differentiable ``log Z`` that ``normalise=True`` subtracts (exact priors only)."""
        ...

    def generator_input(self, z: Tensor) -> Tensor:
        """The generator's input ``h (S, Q)`` from latents."""
        ...

    def sample_generator_input(
        self, num_samples: int, rng: torch.Generator | None = None
    ) -> Tensor:
        """``generator_input(sample(num_samples, rng))``, possibly without storing the latents."""
        ...

    @property
    def has_grid(self) -> bool:
        """Whether :meth:`update_grid` can change anything."""
        ...

    def update_grid(self, z: Tensor) -> None:
        """Refit the prior's grids to latents ``z`` (maths 2.6)."""
        ...

    def export(self) -> dict[str, np.ndarray]:
        """The univariate component densities (``has_components`` priors only)."""
        ...


class PriorModule(nn.Module):
    """Shared defaults of the priors; a subclass provides ``latent_shape``, ``sample``,
    ``log_prior`` and ``generator_input`` and declares its capabilities."""

    exact_normaliser: ClassVar[bool] = False
    has_components: ClassVar[bool] = False

    @property
    def latent_shape(self) -> tuple[int, ...]:
        raise NotImplementedError

    def sample(self, num_samples: int, rng: torch.Generator | None = None) -> Tensor:
        raise NotImplementedError

    def chain_start(self, num_samples: int, rng: torch.Generator | None = None) -> Tensor:
        """Where posterior Langevin chains start: fresh prior samples (maths 4.2)."""
        return self.sample(num_samples, rng)

    def support(self) -> Support | None:
        """None: the prior has no bounded support (deep and Gaussian priors)."""
        return None

    def log_prior(
        self, z: Tensor, normalise: bool = False, log_normaliser: Tensor | None = None
    ) -> Tensor:
        raise NotImplementedError

    def generator_input(self, z: Tensor) -> Tensor:
        raise NotImplementedError

    def check_normalise(self, normalise: bool) -> None:
        """Refuse ``normalise=True`` on a prior without an exact normaliser."""
        if normalise and not self.exact_normaliser:
            raise ValueError(
                f"{type(self).__name__} has no tractable normalising constant: its log-prior "
                "cannot be normalised (train it with the contrastive prior gradient, "
                "train.contrastive = true)"
            )

    def log_normaliser(self) -> Tensor:
        self.check_normalise(True)
        raise NotImplementedError

    def weighted_log_prior(
        self,
        z: Tensor,
        weights: Tensor,
        normalise: bool = False,
        log_normaliser: Tensor | None = None,
    ) -> Tensor:
        """``sum_s weights[s] log p(z_s)``, a 0-d tensor (arguments as :meth:`log_prior`)."""
        return (self.log_prior(z, normalise, log_normaliser) * weights).sum()

    @torch.no_grad()
    def sample_generator_input(
        self, num_samples: int, rng: torch.Generator | None = None
    ) -> Tensor:
        """The generator's input ``h (S, Q)`` of ``num_samples`` fresh prior samples."""
        return self.generator_input(self.sample(num_samples, rng))

    @property
    def has_grid(self) -> bool:
        return any(m.has_grid for m in self.modules() if isinstance(m, UnivariateLayer))

    def update_grid(self, z: Tensor) -> None:
        """Priors without grids have nothing to refit."""

    def export(self) -> dict[str, np.ndarray]:
        raise ValueError(
            f"{type(self).__name__} has no univariate components to plot or export; "
            "plot-prior needs a univariate or mixture Kolmogorov-Arnold prior"
        )
