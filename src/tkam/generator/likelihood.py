"""The likelihoods with output noise and activation (maths 1.4): Gaussian (the reference's),
Bernoulli (the textbook VAE's for [0, 1] images) and the tempered categorical of text."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

__all__ = [
    "BernoulliLikelihood",
    "CategoricalLikelihood",
    "GaussianLikelihood",
    "output_activation",
]

_OUTPUT: dict[str, Callable[[Tensor], Tensor]] = {
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "none": lambda x: x,
}


def output_activation(name: str) -> Callable[[Tensor], Tensor]:
    """The output activation applied to generator pre-activations."""
    return _OUTPUT[name]


class _NoisedPrediction:
    """Shared by the likelihoods: training predictions carry output noise before the activation.

    ``normalised`` says whether ``log_likelihood + constant(D)`` is a log-density (or
    log-probability) of the data, which the log-likelihood estimates report.
    """

    noise: float
    normalised: bool = False

    def constant(self, num_dims: int) -> float:
        """What ``log_likelihood`` drops of the normalised log-density (0: nothing dropped)."""
        return 0.0

    def describe(self, num_dims: int) -> str:
        """The log-likelihood's units, for the notes of the evaluation."""
        return "not normalised: not a log-probability"

    def mean(self, pre_activation: Tensor) -> Tensor:
        raise NotImplementedError

    def noised(self, pre_activation: Tensor, rng: torch.Generator | None) -> Tensor:
        """``mean(g + sigma_n xi)`` with fresh ``xi`` (one draw per entry of ``pre_activation``)."""
        if self.noise == 0:
            return self.mean(pre_activation)
        xi = torch.randn(
            pre_activation.shape,
            generator=rng,
            device=pre_activation.device,
            dtype=pre_activation.dtype,
        )
        return self.mean(pre_activation + self.noise * xi)


class GaussianLikelihood(_NoisedPrediction):
    """``log p(x | z) = -||x - act(g(z) + sigma_n xi)||^2 / (2 sigma^2)`` (constants dropped).

    Args:
        std: sigma (the reference's ``generator_variance``, used as a standard deviation).
        noise: sigma_n, output noise inside training likelihoods.
        activation: output activation name.
    """

    normalised = True

    def __init__(self, std: float, noise: float, activation: str) -> None:
        self.std = std
        self.noise = noise
        self.activation = output_activation(activation)

    def constant(self, num_dims: int) -> float:
        """``-D/2 log(2 pi sigma^2)``."""
        return -0.5 * num_dims * math.log(2 * math.pi * float(self.std) ** 2)

    def describe(self, num_dims: int) -> str:
        return (
            f"Gaussian log-density including -D/2 log(2 pi sigma^2) with sigma={self.std}, "
            f"D={num_dims}; nats per dimension (continuous density of the [0, 1] data)"
        )

    def mean(self, pre_activation: Tensor) -> Tensor:
        """Noise-free prediction ``act(g)`` (generation, inference)."""
        return self.activation(pre_activation)

    def log_likelihood(self, x: Tensor, prediction: Tensor) -> Tensor:
        """Paired ``(B, ...)`` data and predictions -> ``(B,)``."""
        return -(x - prediction).flatten(1).square().sum(-1) / (2 * self.std**2)

    def log_likelihood_matrix(self, x: Tensor, predictions: Tensor) -> Tensor:
        """Every datum against every prediction: ``(B, ...)``, ``(N, ...)`` -> ``(B, N)``.

        ``||x - g||^2 = ||x||^2 - 2 x.g + ||g||^2``: one matmul, never a ``(B, N, D)`` tensor.
        """
        xf = x.flatten(1)
        gf = predictions.flatten(1)
        squared = xf.square().sum(-1, keepdim=True) - 2 * xf @ gf.T + gf.square().sum(-1)
        return -squared.clamp_min(0) / (2 * self.std**2)


class BernoulliLikelihood(_NoisedPrediction):
    """``log p(x | z) = sum_d x_d log p_d + (1 - x_d) log(1 - p_d)``, ``p = sigmoid(g(z) + sigma_n
    xi)``: the textbook VAE's decoder (Kingma & Welling 2014) for data in [0, 1].

    Grey levels enter as soft targets (the binary cross-entropy of the usual VAE code), so for
    non-binary data the value is a log-probability only of the binarised pixels; ``p`` is kept in
    ``[eps, 1 - eps]`` so every log stays finite.

    Args:
        noise: sigma_n, output noise inside training likelihoods (0 for the textbook model).
        eps: the clamp of ``p``.
    """

    normalised = True

    def __init__(self, noise: float, eps: float = 1e-6) -> None:
        self.noise = noise
        self.eps = eps

    def mean(self, pre_activation: Tensor) -> Tensor:
        """Pixel probabilities ``sigmoid(g)``."""
        return torch.sigmoid(pre_activation)

    def describe(self, num_dims: int) -> str:
        return (
            f"Bernoulli log-probability over D={num_dims} pixels (grey levels as soft targets); "
            "nats per dimension"
        )

    def _logs(self, prediction: Tensor) -> tuple[Tensor, Tensor]:
        p = prediction.flatten(1).clamp(self.eps, 1 - self.eps)
        return torch.log(p), torch.log1p(-p)

    def log_likelihood(self, x: Tensor, prediction: Tensor) -> Tensor:
        """Paired ``(B, ...)`` data and probabilities -> ``(B,)``."""
        log_p, log_q = self._logs(prediction)
        xf = x.flatten(1)
        return (xf * log_p + (1 - xf) * log_q).sum(-1)

    def log_likelihood_matrix(self, x: Tensor, predictions: Tensor) -> Tensor:
        """Every datum against every prediction, ``(B, N)``: ``x.(log p - log q) + sum log q``,
        one matmul."""
        log_p, log_q = self._logs(predictions)
        return x.flatten(1) @ (log_p - log_q).T + log_q.sum(-1)


class CategoricalLikelihood(_NoisedPrediction):
    """Text: ``log p(x | z) = sum_{v,t} x_vt log(x~_vt + eps) / (n_v 2 sigma^2)`` (maths 1.4).

    ``x~ = softmax_v(g(z) + sigma_n xi)`` over the vocabulary axis (dimension 1) of
    ``(B, n_v, L)`` logits; ``x`` is one-hot.
    """

    def __init__(self, std: float, noise: float, eps: float = 1e-4) -> None:
        self.std = std
        self.noise = noise
        self.eps = eps

    def mean(self, pre_activation: Tensor) -> Tensor:
        """Token probabilities ``(B, n_v, L)``."""
        return torch.softmax(pre_activation, dim=1)

    def _scale(self, x: Tensor) -> float:
        return 1.0 / (x.shape[1] * 2 * self.std**2)

    def log_likelihood(self, x: Tensor, prediction: Tensor) -> Tensor:
        """Paired ``(B, n_v, L)`` one-hot data and probabilities -> ``(B,)``."""
        return (x * torch.log(prediction + self.eps)).flatten(1).sum(-1) * self._scale(x)

    def log_likelihood_matrix(self, x: Tensor, predictions: Tensor) -> Tensor:
        """Every datum against every prediction, ``(B, N)``: one matmul of ``x`` with the logs."""
        logs = torch.log(predictions + self.eps).flatten(1)
        return (x.flatten(1) @ logs.T) * self._scale(x)
