"""The mixture Kolmogorov-Arnold prior (maths 1.2, 3.4-3.6).

Each of the Q latents is a P-component mixture ``sum_p alpha_qp exp(f_qp(z)) pi_0(z) / Z_qp``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from tkam.config import PriorConfig
from tkam.prior.base import KANPrior
from tkam.prior.inverse_transform import invert_components

__all__ = ["MixturePrior"]


class MixturePrior(KANPrior):
    """``f_qp = phi_{q->p}``: a layer with Q inputs (grid row q) and P outputs.

    Mixture weights are ``softmax_p(logits)``; the logits are trainable (glorot-uniform start, the
    paper-version behaviour) when ``train_proportions`` is set, else fixed at zero (weights 1/P).
    """

    rows_are_inputs = False

    def __init__(
        self, config: PriorConfig, eps: float = 1e-4, rng: torch.Generator | None = None
    ) -> None:
        super().__init__(config, config.num_outputs, config.num_inputs, eps, rng)
        Q, P = config.num_outputs, config.num_inputs
        if config.train_proportions:
            bound = math.sqrt(6.0 / (Q + P))
            start = (torch.rand(Q, P, generator=rng) * 2 - 1) * bound
            self.logits = nn.Parameter(start)
        else:
            self.register_buffer("logits", torch.zeros(Q, P))

    def _components(self, values: Tensor) -> Tensor:
        return values.permute(1, 2, 0)  # (N, Q, P) -> (Q, P, N)

    @property
    def latent_shape(self) -> tuple[int]:
        return (self.num_outputs,)

    def weights(self) -> Tensor:
        """Mixture weights alpha ``(Q, P)``."""
        return torch.softmax(self.logits, dim=-1)

    @torch.no_grad()
    def sample_components(self, num_samples: int, rng: torch.Generator | None = None) -> Tensor:
        """``(S, Q)`` component indices ``p* ~ Cat(alpha_q)`` by inverting the cumulative weights."""
        cumulative = torch.cumsum(self.weights(), dim=-1)  # (Q, P)
        cumulative[:, -1] = 1.0
        v = self._uniform((self.num_outputs, num_samples), rng)
        choice = torch.searchsorted(cumulative.contiguous(), v, right=False)
        return choice.clamp_(max=self.num_inputs - 1).T.contiguous()

    @torch.no_grad()
    def sample(self, num_samples: int, rng: torch.Generator | None = None) -> Tensor:
        """``(S, Q)`` exact samples: a component per latent, then its inverse CDF."""
        table, guide = self.sampling_table(), self.sampling_guide()
        Q, P = self.num_outputs, self.num_inputs
        choice = self.sample_components(num_samples, rng)  # (S, Q)
        u = self._uniform((num_samples, Q), rng)
        component = torch.arange(Q, device=choice.device) * P + choice  # (S, Q) flat (q, p)
        n = table.cdf.shape[-1]
        return invert_components(
            table.knots.expand_as(table.cdf).reshape(Q * P, n),
            table.cdf.reshape(Q * P, n),
            component,
            u,
            guide,
            kernel=self.layer.kernel,
        )

    def normalises(self, normalise: bool) -> bool:
        """Whether components are divided by ``Z``: when asked, or with ``normalised_mixture``."""
        return normalise or self.config.normalised_mixture

    def log_prior(
        self, z: Tensor, normalise: bool = False, log_normaliser: Tensor | None = None
    ) -> Tensor:
        """``sum_q logsumexp_p [log alpha_qp + f_qp(z_q) + log(pi_0(z_q) + eps) - log Z'_qp]``.

        ``log_normaliser`` (``(Q, P)``) saves recomputing the quadrature when the caller holds it.
        """
        f = self.layer(z)  # (S, Q, P)
        value = f + self.reference.log_density(z).unsqueeze(-1) + torch.log_softmax(self.logits, -1)
        if self.normalises(normalise):
            value = value - (self.log_normaliser() if log_normaliser is None else log_normaliser)
        return torch.logsumexp(value, dim=-1).sum(dim=-1)

    def generator_input(self, z: Tensor) -> Tensor:
        return z

    def grid_inputs(self, z: Tensor) -> Tensor:
        return z
