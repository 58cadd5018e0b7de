"""A conjugate linear-Gaussian T-KAM whose losses have closed-form expectations.

Latent ``z in R^d`` with a learnable prior ``N(mu, diag(s^2))`` (:class:`LearnableGaussianPrior`,
unnormalised unless asked), generator ``g(z) = W z + b`` (``nn.Linear(d, D)``) and the Gaussian
likelihood ``l(x | z) = -||x - g(z)||^2 / (2 sigma^2)`` without output noise. For data ``x_b``
every power posterior ``pi_t(z | x_b) ~ p(z) p(x_b | z)^t`` is Gaussian with precision
``S^-1 + t W^T W / sigma^2`` (``S = diag(s^2)``); the evidence is Gaussian in ``x``; and since
``l`` and ``log p~`` are quadratic in ``z``, their expectations under any Gaussian are closed
forms in the parameters. Differentiating such an expectation with the Gaussian's moments held
fixed gives ``E_q[grad_theta f]``; differentiating the log-evidence gives ``grad log p(x)``.

ULA on a Gaussian target is a linear Gaussian recursion, so the law of a ULA chain after ``n``
steps from a prior draw is Gaussian in closed form too (:func:`ula_law`): it bounds the step-size
bias and the burn-in of the Langevin and thermodynamic tests exactly.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor, nn

from tkam.generator.likelihood import GaussianLikelihood
from tkam.model import TKAM
from tkam.prior.protocol import PriorModule

__all__ = [
    "Gaussians",
    "LearnableGaussianPrior",
    "Replicates",
    "conjugate_model",
    "expected_log_likelihood",
    "expected_log_prior",
    "gradient",
    "log_evidence",
    "power_posterior",
    "replicate_gradients",
    "rule_weights",
    "snis_bias",
    "ula_law",
]


class LearnableGaussianPrior(PriorModule):
    """``N(mu, diag(s^2))`` with ``s = exp(log_s)``; ``log_prior`` is ``-(z - mu)^2 / (2 s^2)``
    summed (unnormalised) unless ``normalise``, which subtracts the exact
    ``log Z = sum log s + d/2 log 2 pi``; exact samples ``mu + s eps``."""

    exact_normaliser = True

    def __init__(self, mu: Tensor, log_s: Tensor) -> None:
        super().__init__()
        self.mu = nn.Parameter(mu.clone())
        self.log_s = nn.Parameter(log_s.clone())

    @property
    def latent_shape(self) -> tuple[int]:
        return (self.mu.shape[0],)

    @torch.no_grad()
    def sample(self, num_samples: int, rng: torch.Generator | None = None) -> Tensor:
        eps = torch.randn((num_samples, *self.latent_shape), generator=rng, dtype=self.mu.dtype)
        return self.mu + self.log_s.exp() * eps

    def log_normaliser(self) -> Tensor:
        return self.log_s.sum() + 0.5 * self.mu.shape[0] * math.log(2 * math.pi)

    def log_prior(
        self, z: Tensor, normalise: bool = False, log_normaliser: Tensor | None = None
    ) -> Tensor:
        value = -((z - self.mu) / self.log_s.exp()).square().sum(-1) / 2
        if normalise:
            value = value - (self.log_normaliser() if log_normaliser is None else log_normaliser)
        return value

    def generator_input(self, z: Tensor) -> Tensor:
        return z


def conjugate_model(
    d: int, num_obs: int, sigma: float, seed: int, prior_scale: float = 1.0
) -> TKAM:
    """A float64 conjugate T-KAM with parameters drawn from ``seed``: ``mu ~ 0.5 N(0, 1)``,
    ``s = prior_scale exp(0.3 N(0, 1))``, ``W ~ 0.6 N(0, 1)``, ``b ~ 0.3 N(0, 1)``."""
    g = torch.Generator().manual_seed(seed)

    def normal(*shape: int) -> Tensor:
        return torch.randn(shape, generator=g, dtype=torch.float64)

    prior = LearnableGaussianPrior(0.5 * normal(d), math.log(prior_scale) + 0.3 * normal(d))
    generator = nn.Linear(d, num_obs, dtype=torch.float64)
    with torch.no_grad():
        generator.weight.copy_(0.6 * normal(num_obs, d))
        generator.bias.copy_(0.3 * normal(num_obs))
    likelihood = GaussianLikelihood(sigma, 0.0, "none")
    return TKAM(prior, generator, likelihood, (num_obs,)).double()


def _parts(model: TKAM) -> tuple[Tensor, Tensor, Tensor, Tensor, float]:
    prior, generator = model.prior, model.generator
    return prior.mu, prior.log_s.exp(), generator.weight, generator.bias, model.likelihood.std


def log_evidence(model: TKAM, x: Tensor, t: float = 1.0) -> Tensor:
    """``log int p(z) exp(t l(x_b | z)) dz`` per datum ``(B,)``, differentiable in the
    parameters: ``log N(x; W mu + b, W S W^T + sigma^2 / t) + D/2 log(2 pi sigma^2 / t)`` (the
    likelihood's dropped constant kept out). ``t = 1`` is the model's log-evidence."""
    mu, s, weight, bias, sigma = _parts(model)
    num_obs = weight.shape[0]
    variance = sigma**2 / t
    covariance = weight @ torch.diag(s.square()) @ weight.T + variance * torch.eye(
        num_obs, dtype=weight.dtype
    )
    normal = torch.distributions.MultivariateNormal(weight @ mu + bias, covariance)
    return normal.log_prob(x) + 0.5 * num_obs * math.log(2 * math.pi * variance)


class Gaussians(NamedTuple):
    """Gaussian laws of the latents of a batch: means ``(B, d)``, one covariance ``(d, d)``
    (constants)."""

    mean: Tensor
    covariance: Tensor


def _precisions(model: TKAM, t: float) -> tuple[Tensor, Tensor]:
    mu, s, weight, _, sigma = _parts(model)
    prior_precision = torch.diag(s.detach().square().reciprocal())
    precision = prior_precision + t * weight.detach().T @ weight.detach() / sigma**2
    return prior_precision, precision


@torch.no_grad()
def power_posterior(model: TKAM, x: Tensor, t: float) -> Gaussians:
    """``pi_t(z | x_b) ~ p(z) p(x_b | z)^t``: precision ``S^-1 + t W^T W / sigma^2``, mean
    ``V (S^-1 mu + t W^T (x_b - b) / sigma^2)``; ``t = 0`` is the prior."""
    mu, _, weight, bias, sigma = _parts(model)
    prior_precision, precision = _precisions(model, t)
    covariance = torch.linalg.inv(precision)
    shift = prior_precision @ mu + t * (x - bias) @ weight / sigma**2  # (B, d)
    return Gaussians(shift @ covariance, covariance)


@torch.no_grad()
def ula_law(model: TKAM, x: Tensor, t: float, step_size: float, steps: int) -> Gaussians:
    """Law of ULA on ``pi_t`` after ``steps`` steps from a prior draw: with precision ``P`` and
    mean ``m``, ``z' = z - h P (z - m) + sqrt(2h) xi`` is linear, so ``mean_n - m = A^n (mu -
    m)`` and ``cov_n = A cov_{n-1} A^T + 2h I`` with ``A = I - h P``, ``cov_0 = S``."""
    target = power_posterior(model, x, t)
    prior_precision, precision = _precisions(model, t)
    d = precision.shape[0]
    a = torch.eye(d, dtype=precision.dtype) - step_size * precision
    mean = (
        target.mean
        + (model.prior.mu.detach() - target.mean) @ torch.linalg.matrix_power(a, steps).T
    )
    covariance = torch.linalg.inv(prior_precision)
    for _ in range(steps):
        covariance = a @ covariance @ a.T + 2 * step_size * torch.eye(d, dtype=a.dtype)
    return Gaussians(mean, covariance)


def expected_log_likelihood(model: TKAM, x: Tensor, law: Gaussians) -> Tensor:
    """``E_q[l(x_b | z)] = -(||x_b - W m_b - b||^2 + tr(W V W^T)) / (2 sigma^2)`` per datum,
    differentiable in the parameters with the law held fixed (its gradient is
    ``E_q[grad_theta l]``)."""
    _, _, weight, bias, sigma = _parts(model)
    residual = x - law.mean @ weight.T - bias
    trace = (weight @ law.covariance * weight).sum()
    return -(residual.square().sum(-1) + trace) / (2 * sigma**2)


def expected_log_prior(model: TKAM, law: Gaussians) -> Tensor:
    """``E_q[log p~(z)] = -sum_i ((m_i - mu_i)^2 + V_ii) / (2 s_i^2)`` per datum (unnormalised,
    differentiable in the prior's parameters with the law held fixed)."""
    mu, s, _, _, _ = _parts(model)
    second = (law.mean - mu).square() + law.covariance.diagonal()
    return -(second / (2 * s.square())).sum(-1)


def gradient(model: TKAM, value: Tensor) -> Tensor:
    """``grad_theta value`` flattened over the model's parameters, in ``model.parameters()``
    order."""
    params = list(model.parameters())
    grads = torch.autograd.grad(value, params, allow_unused=True)
    return torch.cat(
        [(torch.zeros_like(p) if g is None else g).reshape(-1) for p, g in zip(params, grads)]
    )


def rule_weights(temps: Tensor, rule: str) -> Tensor:
    """Weights ``w_k`` of ``E_0..E_N`` in the discretised integral ``sum_k w_k E_k`` (written
    out here, independently of the library): ``reference`` ``(dt_1, dt_1, dt_2, ..., dt_N)``
    (the first interval twice, departures A6), ``trapezoid``
    ``(dt_1, dt_1 + dt_2, ..., dt_N) / 2``."""
    gaps = temps.diff()
    if rule == "reference":
        return torch.cat([gaps[:1], gaps])
    zero = gaps.new_zeros(1)
    return (torch.cat([gaps, zero]) + torch.cat([zero, gaps])) / 2


def snis_bias(model: TKAM, x: Tensor, num_samples: int) -> Tensor:
    """Leading ``O(1/N)`` bias of the self-normalised importance estimate (prior proposals) of
    ``E_{pi_1}[grad(log p~ + l)]``, mean over the batch: by the delta method, for weights
    ``L(z) = exp(l(x | z))``, ``E[sum_n w_n f(z_n)] = mu_1 + (Z_2 / Z_1^2)(mu_1 - mu_2) / N +
    O(1/N^2)`` with ``Z_t = E_p[L^t]`` and ``mu_t = E_{pi_t}[f]`` (``pi_2 ~ p L^2``); all
    closed forms here. The loss gradient's bias is minus this."""
    ratio = torch.exp(log_evidence(model, x, 2.0) - 2 * log_evidence(model, x, 1.0)).detach()

    def target(t: float) -> Tensor:
        law = power_posterior(model, x, t)
        return expected_log_likelihood(model, x, law) + expected_log_prior(model, law)

    return gradient(model, (ratio * (target(1.0) - target(2.0))).mean()) / num_samples


class Replicates(NamedTuple):
    """Independent loss gradients: their mean, standard error and the mean loss value (with
    its standard error)."""

    mean: Tensor
    se: Tensor
    value: float
    value_se: float


def replicate_gradients(
    model: TKAM, loss_fn: Callable[[torch.Generator], Tensor], seeds: range
) -> Replicates:
    """``loss_fn(rng).backward()`` for each seed; the mean gradient and its standard error."""
    grads, values = [], []
    params = list(model.parameters())
    for seed in seeds:
        model.zero_grad(set_to_none=True)
        loss = loss_fn(torch.Generator().manual_seed(seed))
        loss.backward()
        grads.append(torch.cat([p.grad.reshape(-1) for p in params]))
        values.append(loss.detach())
    model.zero_grad(set_to_none=True)
    g, v = torch.stack(grads), torch.stack(values)
    root = math.sqrt(len(seeds))
    return Replicates(g.mean(0), g.std(0) / root, float(v.mean()), float(v.std()) / root)
