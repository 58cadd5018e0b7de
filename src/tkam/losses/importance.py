"""Importance-sampling maximum-likelihood loss with the prior as proposal (maths 4.1, 3.7)."""

from __future__ import annotations

import torch
from torch import Tensor

from tkam.losses.output import LossOutput
from tkam.model import LatentModel
from tkam.posterior.importance import importance_resample

__all__ = ["importance_loss"]


def importance_loss(
    model: LatentModel,
    x: Tensor,
    num_samples: int,
    rng: torch.Generator | None = None,
    resampler: str = "residual",
    threshold: float = 0.5,
    contrastive: bool = True,
    negatives: str = "fresh",
    compat: bool = False,
    compat_residual: bool = False,
) -> LossOutput:
    """``L = -1/B sum_b sum_n w~_bn [log p(z_In) + l(x_b | z_In)] + 1/N sum_n log p(z^_n)``.

    The N proposals are exact prior samples shared by the whole batch; the generator runs once per
    proposal and the ``(B, N)`` log-likelihood matrix is one matmul. Output noise is drawn once per
    proposal (the reference draws it per pair, which would need a ``(B, N, D)`` tensor; the marginal
    law of every pair is the same). Rows whose ESS falls below ``threshold * N`` are resampled and
    weighted 1/N (standard SIR, departures A3). The prior gradient is contrastive (maths 3.7):
    positives weighted by the posterior weights, minus N fresh prior samples; without
    ``contrastive`` the exact ``log Z`` from quadrature normalises the log-prior instead.

    Args:
        model: the T-KAM model.
        x: data batch ``(B, C, H, W)``.
        num_samples: N, importance samples.
        rng: random stream for samples, noise and resampling.
        resampler: residual, systematic, stratified or multinomial.
        threshold: resample rows with ``ESS < threshold * N``.
        contrastive: contrastive prior gradient (the reference's setting) or exact ``log Z``.
        negatives: the contrastive negative phase from N ``fresh`` prior samples (the
            reference) or from the N ``proposals`` themselves, which are exact prior samples
            too: an unbiased estimate of the same ``E_prior[grad f]`` without a second draw,
            the prior evaluated once at the N proposals instead of at the used proposals plus
            N negatives.
        compat: the reference code's SIR loss weights (departures A3), see
            :func:`~tkam.posterior.importance.importance_resample`.
        compat_residual: the reference code's residual-resampling weights (departures A8).
    """
    prior = model.prior
    # Without the contrastive gradient the exact log Z is needed: compute its differentiable
    # quadrature first, so that the sampler below reuses the same table.
    log_z = None if contrastive else prior.log_normaliser()
    z = prior.sample(num_samples, rng)  # (N, *latent)
    prediction = model.likelihood.noised(model.decode(z), rng)
    log_lik = model.likelihood.log_likelihood_matrix(x, prediction)  # (B, N)
    sir = importance_resample(
        log_lik.detach(), threshold, resampler, rng, compat=compat, compat_residual=compat_residual
    )
    weight = sir.proposal_weights()  # (B, N): the slots folded onto their proposals
    # The prior term only needs proposals with weight: after resampling, usually few of them.
    # Proposals below 1e-9 of the total weight change the loss by less than float32 rounding.
    proposal_weight = weight.mean(dim=0)  # (N,)
    keep = proposal_weight > 1e-9 * proposal_weight.sum()
    z_kept, a_kept = z[keep], proposal_weight[keep]
    # The prior term -sum_n a_n log p(z_n) + mean_n log p(z^_n) as one weighted sum over latents
    # (constants): the fused kernel computes it with its parameter gradients in one pass.
    shared = contrastive and negatives == "proposals"
    if shared:
        coefficients = torch.where(keep, -proposal_weight, 0.0) + 1.0 / num_samples
        prior_term = prior.weighted_log_prior(z, coefficients)
    elif contrastive:
        fresh = prior.sample(num_samples, rng)
        negative = a_kept.new_full((num_samples,), 1.0 / num_samples)
        prior_term = prior.weighted_log_prior(
            torch.cat([z_kept, fresh]), torch.cat([-a_kept, negative])
        )
    else:
        prior_term = -prior.weighted_log_prior(z_kept, a_kept, normalise=True, log_normaliser=log_z)
    loss = prior_term - (weight * log_lik).sum(dim=1).mean()
    metrics = {
        "ess": float(sir.ess.mean()),
        "resampled": float(sir.resampled.float().mean()),
        "proposals_used": num_samples if shared else int(keep.sum()),
        "log_likelihood": float((weight * log_lik.detach()).sum(1).mean()),
    }
    return LossOutput(loss, metrics)
