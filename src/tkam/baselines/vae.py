"""Variational autoencoder baseline (Kingma & Welling 2014; IWAE bound of Burda et al. 2016).

Gaussian prior ``N(0, I_Q)`` on the generator's input, a Gaussian encoder ``q(z | x)`` that mirrors
the generator, and T-KAM's generator and Gaussian likelihood (maths 1.3-1.4). The likelihood drops
its normalising constant, so the ELBO and the IWAE bound are ``log p(x)`` bounds up to the same
constant as T-KAM's log-likelihoods.
"""

from __future__ import annotations

import math
from typing import cast

import torch
from torch import Tensor, nn

from tkam.config import ExperimentConfig, GeneratorConfig
from tkam.generator.init import default_init_
from tkam.generator.likelihood import GaussianLikelihood
from tkam.model import LatentModel, ModelParts
from tkam.prior import GaussianPrior

__all__ = ["VAE", "Encoder"]

# exp(log-variance) stays finite and positive in float32 whatever the encoder outputs.
LOG_VARIANCE_RANGE = (-20.0, 10.0)


class Encoder(nn.Module):
    """``x (B, *data_shape) -> (mean, log_variance)``, each ``(B, Q)``.

    For a CNN generator: Conv2d layers with the ConvTranspose layers' kernels, strides and
    paddings in reverse order and the channels reversed (``C -> ... -> hidden_1 -> hidden_1``),
    leaky-ReLU(0.2) between them, then linear mean and log-variance heads. Otherwise: an MLP over
    the flattened data with the generator's hidden widths reversed (or ``hidden``).

    Args:
        config: the generator section that the encoder mirrors.
        data_shape: data shape without the batch axis.
        hidden: MLP hidden widths, data side first (empty: mirror the generator).
        rng: random stream for the initialisation.
    """

    def __init__(
        self,
        config: GeneratorConfig,
        data_shape: tuple[int, ...],
        hidden: tuple[int, ...] = (),
        rng: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        latent = config.widths[0]
        layers: list[nn.Module] = []
        if config.kind == "cnn":
            channels = (data_shape[0], *reversed(config.hidden_channels))
            channels = (*channels, channels[-1])
            geometry = list(zip(config.kernel_sizes, config.strides, config.paddings))[::-1]
            size = data_shape[-1]
            for c_in, c_out, (k, s, p) in zip(channels, channels[1:], geometry):
                layers += [nn.Conv2d(c_in, c_out, k, s, p), nn.LeakyReLU(0.2)]
                size = (size + 2 * p - k) // s + 1
            features = channels[-1] * size * size
            layers.append(nn.Flatten())
        else:
            widths = (math.prod(data_shape), *(hidden or tuple(reversed(config.widths[1:]))))
            layers.append(nn.Flatten())
            for w_in, w_out in zip(widths, widths[1:]):
                layers += [nn.Linear(w_in, w_out), nn.LeakyReLU(0.2)]
            features = widths[-1]
        self.body = nn.Sequential(*layers)
        self.mean = nn.Linear(features, latent)
        self.log_variance = nn.Linear(features, latent)
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Conv2d)):
                default_init_(module, rng)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h = self.body(x)
        return self.mean(h), self.log_variance(h).clamp(*LOG_VARIANCE_RANGE)


class VAE(LatentModel):
    """Gaussian prior + mirrored encoder + T-KAM's generator and likelihood.

    Args:
        prior: the standard normal prior.
        generator: as :class:`~tkam.model.LatentModel`.
        likelihood: as :class:`~tkam.model.LatentModel`.
        image_shape: as :class:`~tkam.model.LatentModel`.
        encoder: the amortised posterior ``q(z | x)``.
        **options: the keyword options of :class:`~tkam.model.LatentModel`.
    """

    has_encoder = True
    #: beta of the training loss ``E_q log p(x|z) - beta KL``; :meth:`from_parts` folds a
    #: Gaussian likelihood's beta into its std, leaving 1 (see there).
    kl_weight = 1.0

    def __init__(
        self,
        prior: GaussianPrior,
        generator: nn.Module,
        likelihood: object,
        image_shape: tuple[int, ...],
        encoder: Encoder,
        **options: bool,
    ) -> None:
        super().__init__(prior, generator, likelihood, image_shape, **options)
        self.encoder = encoder

    @classmethod
    def prior_from_config(
        cls, config: ExperimentConfig, rng: torch.Generator | None
    ) -> GaussianPrior:
        """``N(0, I)`` on ``generator.widths[0]`` (no parameters)."""
        return GaussianPrior(config.generator.widths[0])

    @classmethod
    def from_parts(
        cls, config: ExperimentConfig, parts: ModelParts, rng: torch.Generator | None
    ) -> VAE:
        """The VAE around the generator: its encoder, drawn from ``rng``; a Gaussian
        likelihood's ``model.kl_weight`` folded into its std (see below)."""
        prior, generator, likelihood, shape, options = parts
        encoder = Encoder(config.generator, shape, config.model.encoder_hidden, rng=rng)
        gaussian = cast(GaussianPrior, prior)  # from prior_from_config
        model = cls(gaussian, generator, likelihood, shape, encoder, **options)
        beta = config.model.kl_weight
        if isinstance(likelihood, GaussianLikelihood):
            # E_q log N(x; g, sigma^2) - beta KL = beta [E_q log N(x; g, beta sigma^2) - KL] up to
            # a constant: the weighted bound is the ELBO of the decoder with std sigma sqrt(beta),
            # which the model then is (its log-likelihood and IWAE bound are that decoder's).
            likelihood.std = likelihood.std * math.sqrt(beta)
            beta = 1.0
        model.kl_weight = beta
        return model

    def _log_weights(
        self, x: Tensor, num_samples: int, rng: torch.Generator | None, noised: bool
    ) -> Tensor:
        """``log p(x | z_k) + log p(z_k) - log q(z_k | x)`` for ``z_k ~ q(. | x)``: ``(K, B)``."""
        mean, log_variance = self.encoder(x)  # (B, Q)
        std = torch.exp(0.5 * log_variance)
        eps = torch.randn(
            (num_samples, *mean.shape), generator=rng, device=x.device, dtype=mean.dtype
        )
        z = mean + std * eps  # (K, B, Q)
        flat = z.reshape(-1, z.shape[-1])
        pre = self.decode(flat)
        prediction = self.likelihood.noised(pre, rng) if noised else self.likelihood.mean(pre)
        repeated = x.unsqueeze(0).expand(num_samples, *x.shape).reshape(-1, *x.shape[1:])
        log_lik = self.likelihood.log_likelihood(repeated, prediction).view(num_samples, -1)
        log_q = (-0.5 * eps.square() - 0.5 * log_variance - 0.5 * math.log(2 * math.pi)).sum(-1)
        return log_lik + self.prior.log_prior(z.reshape(-1, z.shape[-1])).view_as(log_q) - log_q

    def elbo(
        self,
        x: Tensor,
        rng: torch.Generator | None = None,
        analytic_kl: bool = True,
        noised: bool = True,
        kl_weight: float = 1.0,
    ) -> Tensor:
        """Single-sample reparameterised ELBO per datum, ``(B, ...) -> (B,)``.

        Args:
            x: data batch.
            rng: random stream of the reparameterisation (and output) noise.
            analytic_kl: ``E_q[log p(x|z)] - KL(q || p)`` with the closed-form KL (the training
                estimator); otherwise the Monte Carlo form ``log p(x|z) + log p(z) - log q(z|x)``,
                which is :meth:`iwae_bound` with one sample.
            noised: output noise inside the likelihood, as in T-KAM's training losses (maths 1.4).
            kl_weight: beta in ``E_q[log p(x|z)] - beta KL`` (closed-form KL only).
        """
        if not analytic_kl:
            if kl_weight != 1.0:
                raise ValueError("kl_weight needs the closed-form KL (analytic_kl=True)")
            return self._log_weights(x, 1, rng, noised)[0]
        mean, log_variance = self.encoder(x)
        eps = torch.randn(mean.shape, generator=rng, device=x.device, dtype=mean.dtype)
        z = mean + torch.exp(0.5 * log_variance) * eps
        pre = self.decode(z)
        prediction = self.likelihood.noised(pre, rng) if noised else self.likelihood.mean(pre)
        log_lik = self.likelihood.log_likelihood(x, prediction)
        kl = 0.5 * (mean.square() + log_variance.exp() - 1.0 - log_variance).sum(-1)
        return log_lik - kl_weight * kl

    def iwae_bound(
        self,
        x: Tensor,
        num_samples: int,
        rng: torch.Generator | None = None,
        noised: bool = False,
        chunk_size: int = 4096,
    ) -> Tensor:
        """Importance-weighted bound ``log 1/K sum_k p(x, z_k) / q(z_k | x)`` per datum, ``(B,)``.

        Increases with K towards ``log p(x)`` (Burda et al. 2016); K = 1 is the Monte Carlo
        ELBO. The K samples go through the generator in chunks of about ``chunk_size`` latents,
        combined by a running log-sum-exp.

        Args:
            x: data batch ``(B, ...)``.
            num_samples: K >= 1.
            rng: random stream.
            noised: output noise inside the likelihood (off for evaluation, maths 1.4).
            chunk_size: latents decoded at once.
        """
        if num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}")
        per_chunk = max(1, chunk_size // max(len(x), 1))
        total = None
        for start in range(0, num_samples, per_chunk):
            k = min(per_chunk, num_samples - start)
            part = torch.logsumexp(self._log_weights(x, k, rng, noised), dim=0)  # (B,)
            total = part if total is None else torch.logaddexp(total, part)
        assert total is not None  # num_samples >= 1
        return total - math.log(num_samples)
