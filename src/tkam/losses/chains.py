"""What the Langevin and thermodynamic losses share: the posterior section's sampler, chains that
carry autoMALA's step sizes from call to call, and the prior's contrastive or exact term."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor

from tkam.config import PosteriorConfig
from tkam.model import LatentModel
from tkam.posterior.memory import StepSizeMemory
from tkam.posterior.state import sum_event
from tkam.posterior.tempering import (
    ULA,
    AutoMALA,
    Sampler,
    TemperedRun,
    TemperedTarget,
    tempered_langevin,
)
from tkam.prior import Prior
from tkam.prior.univariate import UnivariatePrior

__all__ = [
    "chain_target",
    "exact_log_normaliser",
    "posterior_sampler",
    "prior_phases",
    "run_chains",
]


class ChainTarget(NamedTuple):
    """Where a loss's posterior chains move and how their positions become latents.

    Attributes:
        target: the power posteriors the chains sample.
        start: ``(num, rng) -> (num, *event)`` chain starts: prior draws on the latents, or
            standard normal noise.
        latents: ``positions -> (num, *latent_shape)`` latents, without gradient (the identity
            on the latents).
        on_noise: whether the chains move on the noise.
    """

    target: TemperedTarget
    start: Callable[[int, torch.Generator | None], Tensor]
    latents: Callable[[Tensor], Tensor]
    on_noise: bool = False


def chain_target(model: LatentModel, x: Tensor, config: PosteriorConfig) -> ChainTarget:
    """The chains' target for data ``x`` (one chain per row): with ``config.space = "latent"``
    the model's power posteriors on ``z`` (:meth:`~tkam.model.LatentModel.tempered_target`);
    with ``"noise"`` the same posteriors pulled back to the univariate prior's standard normal
    noise ``e``, ``N(e; 0, I) p(x | z(e))^t`` with ``z(e) = F^{-1}(Phi(e))``
    (:meth:`~tkam.prior.univariate.UnivariatePrior.latents_from_noise`), on the whole space.
    A prior without that transform (mixture, deep, Gaussian) keeps the latents."""
    latent = model.tempered_target(x)
    prior = model.prior
    if config.space != "noise" or not isinstance(prior, UnivariatePrior):
        return ChainTarget(latent, prior.chain_start, lambda z: z)

    def start(num: int, rng: torch.Generator | None) -> Tensor:
        device = prior.layer.coef.device
        return torch.randn((num, *prior.noise_shape), generator=rng, device=device)

    @torch.no_grad()
    def latents(noise: Tensor) -> Tensor:
        return prior.latents_from_noise(noise)

    return ChainTarget(_noise_target(prior, latent), start, latents, on_noise=True)


def _standard_normal_log_density(noise: Tensor) -> Tensor:
    return -0.5 * sum_event(noise.square())


def _noise_target(prior: UnivariatePrior, latent: TemperedTarget) -> TemperedTarget:
    """``latent`` pulled back to the prior's noise (see :func:`chain_target`), restricted to
    some chains as ``latent`` is."""

    def log_likelihood(noise: Tensor) -> tuple[Tensor, Tensor]:
        return latent.log_likelihood(prior.latents_from_noise(noise))

    restrict = latent.on_rows

    def on_rows(rows: Tensor) -> TemperedTarget:
        assert restrict is not None
        return _noise_target(prior, restrict(rows))

    return TemperedTarget(
        _standard_normal_log_density,
        log_likelihood,
        latent.exchange_log_likelihood,
        on_rows=None if restrict is None else on_rows,
    )


def posterior_sampler(config: PosteriorConfig) -> Sampler:
    """The sampler a posterior section names: :class:`~tkam.posterior.tempering.AutoMALA` with
    its settings for ``automala``, else :class:`~tkam.posterior.tempering.ULA` (``importance``
    included: a deep prior's Langevin loss runs ULA)."""
    if config.sampler == "automala":
        return AutoMALA(config.step_size_bounds, config.change_rate, config.num_unadjusted)
    return ULA()


def run_chains(
    z0: Tensor,
    target: TemperedTarget,
    temperatures: Tensor,
    rng: torch.Generator | None,
    config: PosteriorConfig,
    memory: StepSizeMemory | None = None,
    *,
    exchange_every: int = 1,
    swap_per_chain: bool = True,
) -> TemperedRun:
    """:func:`~tkam.posterior.tempering.tempered_langevin` with the posterior section's sampler,
    steps and step size. With a ``memory``, autoMALA's chains start from the step sizes the last
    call adapted and leave theirs for the next (maths 4.2). Without ``config.reflect`` the
    chains may leave the target's support."""
    if not config.reflect:
        target = target._replace(support=None)
    step_size = config.step_size if memory is None else memory.start(config.step_size, len(z0))
    run = tempered_langevin(
        z0,
        target,
        temperatures,
        rng,
        sampler=posterior_sampler(config),
        steps=config.steps,
        step_size=step_size,
        exchange_every=exchange_every,
        swap_per_chain=swap_per_chain,
    )
    if memory is not None:
        memory.keep(run.step_size)
    return run


def exact_log_normaliser(prior: Prior, contrastive: bool) -> Tensor | None:
    """The prior's exact ``log Z`` when the loss uses it (no ``contrastive`` gradient and a prior
    with an exact normaliser), else None. Computed before any sampling, so that the samplers
    reuse its quadrature table."""
    return prior.log_normaliser() if not contrastive and prior.exact_normaliser else None


def prior_phases(
    prior: Prior, z: Tensor, negatives: Tensor | None, log_z: Tensor | None
) -> tuple[Tensor, Tensor]:
    """The prior's positive phase ``mean_b log p(z_b)`` at posterior samples ``z`` and its
    negative phase ``mean_b log p(z^_b)`` at prior samples ``negatives``; with an exact ``log_z``
    (:func:`exact_log_normaliser`) the normalised log-prior and a zero negative phase
    (``negatives`` unused)."""
    if log_z is not None:
        positive = prior.log_prior(z, normalise=True, log_normaliser=log_z).mean()
        return positive, positive.new_zeros(())
    assert negatives is not None  # the losses draw negatives whenever log_z is None
    batch = len(z)
    log_prior = prior.log_prior(torch.cat([z, negatives]))
    return log_prior[:batch].mean(), log_prior[batch:].mean()
