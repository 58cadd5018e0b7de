"""Test-set log-likelihood by importance sampling with the prior as proposal (maths 4.1).

``log p(x) = log E_{z ~ prior}[p(x | z)]`` is estimated with ``K`` prior samples shared by the
whole test set, through the model's own likelihood (``model.likelihood.log_likelihood_matrix``
of the noise-free predictions ``model.likelihood.mean(model.decode(z))``). The proposal is the
prior itself, so no prior density enters the estimate (and the univariate prior's normalising
constant does not matter).

The model's Gaussian log-likelihood drops its normalising constant; here it is added back,
``-D/2 log(2 pi sigma^2)``, so the result is a proper log-density in nats. The categorical
(text) likelihood is a tempered one (maths 1.4) and has no normalised form: its value is
reported as it is and flagged as unnormalised.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import torch
from torch import Tensor

from tkam.posterior.importance import log_evidence
from tkam.posterior.tempering import ULA, temperatures, tempered_langevin, thermodynamic_integral

__all__ = [
    "LogLikelihoodResult",
    "estimate_iwae_bound",
    "estimate_log_likelihood",
    "estimate_thermodynamic_log_likelihood",
    "gaussian_constant",
    "mean_log_evidence_standard_error",
]


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


def gaussian_constant(likelihood: Any, num_dims: int) -> float:
    """What the likelihood's ``log_likelihood`` drops of its normalised form:
    ``-D/2 log(2 pi sigma^2)`` for the Gaussian, 0 for the others."""
    return likelihood.constant(num_dims)


def _result(
    per_item: Tensor,
    per_item_se: Tensor,
    num_dims: int,
    normalised: bool,
    note: str,
    standard_error: float | None = None,
) -> LogLikelihoodResult:
    """Per-item estimates (nats, whole item) summarised per dimension with both errors."""
    batch = per_item.shape[0]
    spread = float(per_item.std() / math.sqrt(batch)) if batch > 1 else math.nan
    if standard_error is None:  # independent items: the errors add in quadrature
        standard_error = float(per_item_se.square().sum().sqrt()) / batch
    return LogLikelihoodResult(
        nats_per_dim=float(per_item.mean()) / num_dims,
        standard_error=standard_error / num_dims,
        test_set_standard_error=spread / num_dims,
        per_item=per_item,
        per_item_standard_error=per_item_se,
        num_dims=num_dims,
        normalised=normalised,
        note=note,
    )


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
    rng: torch.Generator | None = None,
    batch_size: int = 500,
) -> LogLikelihoodResult:
    """Importance-sampling estimate of the mean test log-likelihood in nats per dimension.

    Args:
        model: exposes ``prior.sample(n, rng)``, ``decode(z)`` and ``likelihood`` with
            ``mean(pre)`` and ``log_likelihood_matrix(x, predictions)`` (a :class:`LatentModel`).
        data: ``(B, ...)`` test items.
        num_samples: ``K`` prior samples, shared by every test item (``K >= 2``).
        rng: random stream for the prior samples.
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
        z = model.prior.sample(min(batch_size, num_samples - start), rng)
        predictions = model.likelihood.mean(model.decode(z))
        columns.append(model.likelihood.log_likelihood_matrix(data, predictions).double())
    matrix = torch.cat(columns, dim=1)  # (B, K)
    num_dims = int(data[0].numel())
    likelihood = model.likelihood
    normalised = likelihood.normalised
    if normalised:
        matrix = matrix + gaussian_constant(likelihood, num_dims)
        note = (
            f"importance sampling, K={num_samples} prior samples shared by the test set; "
            + likelihood.describe(num_dims)
        )
    else:
        note = (
            f"importance sampling, K={num_samples} prior samples; the tempered categorical "
            "likelihood of spec 1.4 is not normalised: not a log-probability"
        )
    per_item, per_item_se = log_evidence(matrix)
    shared = mean_log_evidence_standard_error(matrix)
    return _result(per_item, per_item_se, num_dims, normalised, note, standard_error=shared)


@torch.no_grad()
def estimate_iwae_bound(
    model: Any,
    data: Tensor,
    num_samples: int,
    rng: torch.Generator | None = None,
    batch_size: int = 50,
) -> LogLikelihoodResult:
    """The VAE's importance-weighted bound (Burda et al. 2016) on a test set, nats per dimension.

    ``log 1/K sum_k p(x, z_k) / q(z_k | x)`` with ``K`` encoder samples per item, a lower bound
    on ``log p(x)`` in expectation that tightens as ``K`` grows; with the Gaussian likelihood's
    constant added back, so it is comparable with :func:`estimate_log_likelihood`. The Monte
    Carlo error of one item's bound is not estimated (``per_item_standard_error`` is NaN).

    Args:
        model: has ``iwae_bound(x, K, rng)`` (a :class:`tkam.baselines.VAE`).
        data: ``(B, ...)`` test items.
        num_samples: ``K >= 1``.
        rng: random stream of the encoder samples.
        batch_size: test items per call.
    """
    if data.shape[0] < 1:
        raise ValueError("no test items")
    bounds = torch.cat(
        [
            model.iwae_bound(data[start : start + batch_size], num_samples, rng).double()
            for start in range(0, data.shape[0], batch_size)
        ]
    )
    num_dims = int(data[0].numel())
    likelihood = model.likelihood
    normalised = likelihood.normalised
    bounds = bounds + gaussian_constant(likelihood, num_dims)
    note = f"importance-weighted bound, K={num_samples} encoder samples per test item; " + (
        "normalising constant included" if normalised else "not normalised"
    )
    nan = torch.full_like(bounds, math.nan)
    return _result(bounds, nan, num_dims, normalised, note, standard_error=math.nan)


def estimate_thermodynamic_log_likelihood(
    model: Any,
    data: Tensor,
    posterior: Any,
    thermodynamic: Any,
    power: float,
    rng: torch.Generator | None = None,
    chains_per_item: int = 4,
    prior_samples: int = 256,
    batch_size: int = 100,
    rule: str = "trapezoid",
) -> LogLikelihoodResult:
    """Thermodynamic-integration estimate of the test log-likelihood (maths 4.3), nats per dim.

    ``log p(x) = int_0^1 E_{p_t(z | x)}[log p(x | z)] dt`` over ``t_k = (k / N_t)^power``: for
    every test item, ``chains_per_item`` independent chains per temperature run the training
    sampler (ULA with replica exchange, ``posterior.steps`` iterations from prior draws); ``E_k``
    is the mean noise-free log-likelihood of the final states, ``E_0`` that of
    ``prior_samples`` prior draws. Each replica gives its own integral; the per-item estimate is
    their mean and its standard error their spread over ``sqrt(chains_per_item)``. Biased by the
    finite chains and the temperature grid (unlike :func:`estimate_log_likelihood`), and costs
    ``N_t x chains_per_item x posterior.steps`` generator passes per item.

    Args:
        model: a :class:`LatentModel` (``prior``, ``decode``, ``likelihood``).
        data: ``(B, ...)`` test items.
        posterior: the run's posterior config (sampler, step size, steps).
        thermodynamic: the run's thermodynamic config (``num_temps``, replica exchange).
        power: the temperature power ``p``.
        rng: random stream.
        chains_per_item: replicas per item and temperature (>= 2 for a standard error).
        prior_samples: prior draws for ``E_0``.
        batch_size: test items per batched run.
        rule: ``trapezoid`` (default here: the consistent rule) or ``reference`` (departures A6).
    """
    if data.shape[0] < 1:
        raise ValueError("no test items")
    if chains_per_item < 2:
        raise ValueError(f"chains_per_item must be >= 2, got {chains_per_item}")
    num_temps, likelihood = thermodynamic.num_temps, model.likelihood
    temps = temperatures(num_temps, power, device=data.device, dtype=data.dtype)
    with torch.no_grad():
        predictions = likelihood.mean(model.decode(model.prior.sample(prior_samples, rng)))
    estimates = []
    for start in range(0, data.shape[0], batch_size):
        x = data[start : start + batch_size]
        b, reps = x.shape[0], chains_per_item
        with torch.no_grad():
            e0 = likelihood.log_likelihood_matrix(x, predictions).double().mean(-1)  # (b,)
        x_reps = x.repeat(reps, *([1] * (x.dim() - 1)))  # (R b, ...), replica-major
        x_chains = x_reps.repeat(num_temps, *([1] * (x.dim() - 1)))  # (N_t R b, ...)
        z0 = model.prior.sample(num_temps * reps * b, rng)
        z = tempered_langevin(
            z0,
            model.tempered_target(x_chains),
            temps[1:],
            rng,
            sampler=ULA(),
            steps=posterior.steps,
            step_size=posterior.step_size,
            exchange_every=thermodynamic.replica_exchange_frequency,
            swap_per_chain=thermodynamic.swap_per_chain,
        ).z
        with torch.no_grad():
            log_lik = likelihood.log_likelihood(x_chains, likelihood.mean(model.decode(z)))
        ek = log_lik.double().view(num_temps, reps, b)
        expectations = torch.cat([e0.expand(1, reps, b), ek])  # (N_t + 1, R, b)
        estimates.append(thermodynamic_integral(expectations, temps.double(), rule=rule))
    replicas = torch.cat(estimates, dim=1)  # (R, B)
    num_dims = int(data[0].numel())
    normalised = likelihood.normalised
    replicas = replicas + gaussian_constant(likelihood, num_dims)
    per_item = replicas.mean(0)
    per_item_se = replicas.std(0) / math.sqrt(chains_per_item)
    note = (
        f"thermodynamic integration, N_t={num_temps} temperatures (power {power:g}, {rule} "
        f"rule), {chains_per_item} ULA chains per item and temperature, "
        f"{posterior.steps} steps of size {posterior.step_size:g} with replica exchange; "
        + ("normalising constant included" if normalised else "not normalised")
    )
    return _result(per_item, per_item_se, num_dims, normalised, note)
