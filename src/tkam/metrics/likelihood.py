"""Test-set log-likelihood by importance sampling with the prior as proposal (spec 4.1).

``log p(x) = log E_{z ~ prior}[p(x | z)]`` is estimated with ``K`` prior samples shared by the
whole test set, through the model's own likelihood (``model.likelihood.log_likelihood_matrix``
of the noise-free predictions ``model.likelihood.mean(model.decode(z))``). The proposal is the
prior itself, so no prior density enters the estimate (and the univariate prior's normalising
constant does not matter).

The model's Gaussian log-likelihood drops its normalising constant; here it is added back,
``-D/2 log(2 pi sigma^2)``, so the result is a proper log-density in nats. The categorical
(text) likelihood is a tempered one (spec 1.4) and has no normalised form: its value is
reported as it is and flagged as unnormalised.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import torch
from torch import Tensor

from tkam.generator.likelihood import GaussianLikelihood
from tkam.posterior.importance import log_evidence

__all__ = ["LogLikelihoodResult", "mean_log_evidence_standard_error", "estimate_log_likelihood"]


class LogLikelihoodResult(NamedTuple):
    """Outcome of :func:`estimate_log_likelihood`.

    Attributes:
        nats_per_dim: mean over the test set of ``log p(x) / D``.
        standard_error: Monte Carlo (importance-sampling) standard error of ``nats_per_dim``.
        test_set_standard_error: ``std_b(log p(x_b)) / sqrt(B) / D``, the spread due to the
            finite test set (separate from the Monte Carlo error).
        per_item: ``(B,)`` estimates of ``log p(x_b)`` in nats (whole item, not per dim).
        per_item_standard_error: ``(B,)`` delta-method standard errors of ``per_item``.
        num_dims: ``D``, entries per item.
        normalised: whether ``per_item`` is a normalised log-density.
        note: how the number was computed, for the metrics file.
    """

    nats_per_dim: float
    standard_error: float
    test_set_standard_error: float
    per_item: Tensor
    per_item_standard_error: Tensor
    num_dims: int
    normalised: bool
    note: str


def mean_log_evidence_standard_error(log_likelihood: Tensor) -> float:
    """Delta-method standard error of ``mean_b log p_hat(x_b)`` with samples shared across rows.

    With ``r[b, n] = v[b, n] / mean_n v[b, n]`` (``v`` the likelihood ratios), the mean of the
    row logs is to first order ``const + mean_n u_n`` with ``u_n = mean_b r[b, n]``, so its
    standard error is ``std_n(u) / sqrt(N)``. This accounts for the correlation that sharing
    the proposal samples induces between rows; for one row it equals :func:`log_evidence`'s.

    Args:
        log_likelihood: ``(B, N)`` log-likelihoods, ``N >= 2``.
    """
    ll = log_likelihood.detach().double()
    ratios = torch.exp(ll - ll.amax(dim=-1, keepdim=True))  # (B, N)
    relative = ratios / ratios.mean(dim=-1, keepdim=True)  # (B, N)
    per_sample = relative.mean(dim=0)  # (N,)
    return float(per_sample.std() / math.sqrt(ll.shape[-1]))


@torch.no_grad()
def estimate_log_likelihood(
    model: Any,
    data: Tensor,
    num_samples: int,
    generator: torch.Generator | None = None,
    batch_size: int = 500,
) -> LogLikelihoodResult:
    """Importance-sampling estimate of the mean test log-likelihood in nats per dimension.

    Args:
        model: exposes ``prior.sample(n, generator)``, ``decode(z)`` and ``likelihood`` with
            ``mean(pre)`` and ``log_likelihood_matrix(x, predictions)`` (a :class:`TKAM`).
        data: ``(B, ...)`` test items.
        num_samples: ``K`` prior samples, shared by every test item (``K >= 2``).
        generator: random stream for the prior samples.
        batch_size: prior samples decoded at a time.

    Returns:
        :class:`LogLikelihoodResult`.
    """
    if data.shape[0] < 1:
        raise ValueError("no test items")
    if num_samples < 2:
        raise ValueError("need at least two importance samples")
    columns = []
    for start in range(0, num_samples, batch_size):
        z = model.prior.sample(min(batch_size, num_samples - start), generator)
        predictions = model.likelihood.mean(model.decode(z))
        columns.append(model.likelihood.log_likelihood_matrix(data, predictions).double())
    matrix = torch.cat(columns, dim=1)  # (B, K)
    num_dims = int(data[0].numel())
    likelihood = model.likelihood
    normalised = isinstance(likelihood, GaussianLikelihood)
    if normalised:
        constant = -0.5 * num_dims * math.log(2 * math.pi * float(likelihood.std) ** 2)
        matrix = matrix + constant
        note = (
            f"importance sampling, K={num_samples} prior samples shared by the test set; "
            f"Gaussian log-density including -D/2 log(2 pi sigma^2) with sigma={likelihood.std}"
            f", D={num_dims}; nats per dimension (continuous density of the [0, 1] data)"
        )
    else:
        note = (
            f"importance sampling, K={num_samples} prior samples; the tempered categorical "
            "likelihood of spec 1.4 is not normalised: not a log-probability"
        )
    per_item, per_item_se = log_evidence(matrix)
    batch = per_item.shape[0]
    spread = float(per_item.std() / math.sqrt(batch)) if batch > 1 else math.nan
    return LogLikelihoodResult(
        nats_per_dim=float(per_item.mean()) / num_dims,
        standard_error=mean_log_evidence_standard_error(matrix) / num_dims,
        test_set_standard_error=spread / num_dims,
        per_item=per_item,
        per_item_standard_error=per_item_se,
        num_dims=num_dims,
        normalised=normalised,
        note=note,
    )
