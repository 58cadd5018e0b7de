"""Self-normalised importance sampling with the prior as proposal (maths 4.1).

Given the ``(B, N)`` matrix of log-likelihoods ``l[b, n] = log p(x_b | z_n)`` of ``N`` proposal
samples for each of ``B`` data points, this module computes normalised weights and effective
sample sizes, sampling-importance-resampling (SIR) indices and loss weights (departures A3), and
the importance-sampling estimate of the log-evidence ``log p(x_b)`` with its standard error.
It sees only log-likelihood matrices: nothing here knows what produced them.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

from tkam.posterior.resampling import resample

__all__ = ["SIRResult", "importance_resample", "importance_weights", "log_evidence"]


def _check_matrix(log_likelihood: Tensor) -> None:
    if log_likelihood.dim() != 2:
        raise ValueError(
            f"log_likelihood must have shape (B, N), got {tuple(log_likelihood.shape)}"
        )


def importance_weights(log_likelihood: Tensor) -> tuple[Tensor, Tensor]:
    """Normalised importance weights and effective sample size per row (maths 4.1 step 3).

    ``w[b] = softmax_n(l[b, :])`` (the softmax subtracts the row maximum, so log-likelihoods of
    any magnitude are safe) and ``ESS_b = 1 / sum_n w[b, n]^2``, clamped to ``[1, N]`` against
    round-off. Differentiable; callers that need constants detach.

    Args:
        log_likelihood: ``(B, N)`` log-likelihoods (log importance ratios).

    Returns:
        weights ``(B, N)`` summing to one per row, and ESS ``(B,)``, both in the input's dtype.
    """
    _check_matrix(log_likelihood)
    n = log_likelihood.shape[-1]
    weights = torch.softmax(log_likelihood, dim=-1)  # (B, N)
    ess = (1.0 / weights.square().sum(dim=-1)).clamp(1.0, float(n))  # (B,)
    return weights, ess


class SIRResult(NamedTuple):
    """Outcome of :func:`importance_resample` (all tensors detached).

    Attributes:
        indices: ``(B, N)`` long; particle ``indices[b, n]`` fills slot ``n`` of row ``b``
            (``arange(N)`` on rows that were not resampled).
        weights: ``(B, N)`` loss weights of the slots, summing to one per row.
        ess: ``(B,)`` effective sample size of the weights before resampling.
        resampled: ``(B,)`` bool, rows whose ESS fell below ``threshold * N``.
    """

    indices: Tensor
    weights: Tensor
    ess: Tensor
    resampled: Tensor

    def proposal_weights(self) -> Tensor:
        """``(B, N)``: the slots' weights folded onto the proposals they took, ``W[b, m] =
        sum_n weights[b, n] [indices[b, n] = m]``, so ``sum_n w~_bn f(z_{I_bn}) = sum_m W_bm
        f(z_m)``."""
        return torch.zeros_like(self.weights).scatter_add_(1, self.indices, self.weights)


@torch.no_grad()
def importance_resample(
    log_likelihood: Tensor,
    threshold: float,
    resampler: str,
    rng: torch.Generator | None,
    *,
    compat: bool = False,
    compat_residual: bool = False,
) -> SIRResult:
    """Sampling-importance-resampling of each row whose ESS is low (maths 4.1 steps 3-5).

    Rows with ``ESS_b < threshold * N`` are resampled with ``resampler``; the others keep their
    particles in order. Loss weights (departures A3): standard SIR gives every slot of a resampled
    row ``1 / N`` (the resampled set already represents the weighted one) and keeps ``w`` on the
    other rows. With ``compat`` the reference code's weights ``softmax_n(w[b, indices[b, n]])`` are
    used on every row instead (a softmax of probabilities, hence close to uniform).

    The resampler runs on the whole batch and rows are then selected with ``torch.where``, which
    avoids a host synchronisation to ask whether any row qualifies; the random stream therefore
    advances even when no row is resampled.

    Args:
        log_likelihood: ``(B, N)`` log-likelihoods; treated as constants.
        threshold: resampling threshold factor rho (0.5 in every reference config).
        resampler: name of a resampler in :data:`tkam.posterior.resampling.RESAMPLERS`.
        rng: source of randomness for the resampler.
        compat: reproduce the reference code's loss weights (departures A3).
        compat_residual: reproduce the reference code's residual weights (departures A8).

    Returns:
        :class:`SIRResult` with indices ``(B, N)``, loss weights ``(B, N)`` in the input's
        dtype, ESS ``(B,)`` and the resampled flags ``(B,)``.

    Raises:
        ValueError: for an unknown resampler name or a log-likelihood that is not ``(B, N)``.
    """
    _check_matrix(log_likelihood)
    batch, n = log_likelihood.shape
    weights, ess = importance_weights(log_likelihood.detach())
    resampled = ess < threshold * n  # (B,)

    drawn = resample(resampler, weights, rng, compat=compat_residual)  # (B, N)
    identity = torch.arange(n, device=weights.device).expand(batch, n)
    indices = torch.where(resampled[:, None], drawn, identity)  # (B, N)

    if compat:
        loss_weights = torch.softmax(torch.gather(weights, -1, indices), dim=-1)
    else:
        loss_weights = torch.where(resampled[:, None], weights.new_full((), 1.0 / n), weights)
    return SIRResult(indices=indices, weights=loss_weights, ess=ess, resampled=resampled)


def log_evidence(log_likelihood: Tensor) -> tuple[Tensor, Tensor]:
    """Importance-sampling estimate of ``log p(x_b)`` and its delta-method standard error.

    With proposal = prior, ``p(x_b) ~ (1/N) sum_n exp(l[b, n])``; its log is computed as
    ``logsumexp_n l[b, n] - log N``. Writing ``v_n = exp(l[b, n] - max_n l[b, n])`` (the same
    ratios, scaled to avoid overflow), the delta method gives
    ``se(log p_hat) ~ std(v) / (mean(v) sqrt(N))``; the scale cancels in the ratio.

    Args:
        log_likelihood: ``(B, N)`` log-likelihoods of ``N >= 2`` proposal samples per row.

    Returns:
        estimate ``(B,)`` (differentiable through ``log_likelihood``) and standard error ``(B,)``
        (a constant), both in the input's dtype.
    """
    _check_matrix(log_likelihood)
    n = log_likelihood.shape[-1]
    if n < 2:
        raise ValueError("log_evidence needs at least two samples per row for a standard error")
    estimate = torch.logsumexp(log_likelihood, dim=-1) - math.log(n)  # (B,)
    with torch.no_grad():
        ll = log_likelihood.detach()
        ratios = torch.exp(ll - ll.amax(dim=-1, keepdim=True))  # (B, N), max entry is 1
        standard_error = ratios.std(dim=-1) / (ratios.mean(dim=-1) * math.sqrt(n))  # (B,)
    return estimate, standard_error
