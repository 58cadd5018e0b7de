"""The Gaussian likelihood with output noise and activation (spec section 1.4): one place."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

__all__ = ["CategoricalLikelihood", "GaussianLikelihood", "output_activation"]

_OUTPUT: dict[str, Callable[[Tensor], Tensor]] = {
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "none": lambda x: x,
}


def output_activation(name: str) -> Callable[[Tensor], Tensor]:
    """The output activation applied to generator pre-activations."""
    return _OUTPUT[name]


class _NoisedPrediction:
    """Shared by the likelihoods: training predictions carry output noise before the activation."""

    noise: float

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

    def __init__(self, std: float, noise: float, activation: str) -> None:
        self.std = std
        self.noise = noise
        self.activation = output_activation(activation)

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


class CategoricalLikelihood(_NoisedPrediction):
    """Text: ``log p(x | z) = sum_{v,t} x_vt log(x~_vt + eps) / (n_v 2 sigma^2)`` (spec 1.4).

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
