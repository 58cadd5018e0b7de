"""The T-KAM model: a Kolmogorov-Arnold prior and a generator (spec section 1)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from tkam.config import ExperimentConfig
from tkam.generator import build_generator, build_likelihood
from tkam.kan.layer import UnivariateLayer
from tkam.prior import build_prior

__all__ = ["TKAM"]


class TKAM(nn.Module):
    """Prior + generator + likelihood.

    Args:
        config: the experiment config (prior, generator and ``train.eps`` are read).
        image_shape: ``(C, H, W)`` of the data.
        generator: random stream for the initialisation.
    """

    def __init__(
        self,
        config: ExperimentConfig,
        image_shape: tuple[int, int, int],
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.image_shape = tuple(int(s) for s in image_shape)
        self.prior = build_prior(config.prior, eps=config.train.eps, generator=generator)
        self.generator = build_generator(config.generator, self.image_shape, generator=generator)
        gen = config.generator
        self.likelihood = build_likelihood(gen, config.train.eps)
        self.bf16 = config.train.precision == "bf16"
        self.update_prior_grid = config.prior.update_grid and any(
            m.has_grid for m in self.prior.modules() if isinstance(m, UnivariateLayer)
        )
        self.update_generator_grid = gen.update_grid and any(
            m.has_grid for m in self.generator.modules() if isinstance(m, UnivariateLayer)
        )

    def compile_kernels(self) -> None:
        """``torch.compile`` the KAN evaluations of the prior and the generator (opt-in)."""
        for module in self.modules():
            if isinstance(module, UnivariateLayer):
                module.compile_kernels()

    def decode(self, z: Tensor) -> Tensor:
        """Latents ``(S, *latent_shape)`` -> pre-activation outputs ``(S, C, H, W)``.

        With ``train.precision = "bf16"`` the generator runs under bfloat16 autocast and its
        output is returned in float32; the prior (quadrature, sampling) always stays float32.
        """
        return self.decode_input(self.prior.generator_input(z))

    def decode_input(self, h: Tensor) -> Tensor:
        """Generator inputs ``(S, Q)`` -> pre-activation outputs ``(S, C, H, W)`` (bf16 as
        ``decode``)."""
        if not self.bf16:
            return self.generator(h)
        with torch.autocast(device_type=h.device.type, dtype=torch.bfloat16):
            out = self.generator(h)
        return out.float()

    @torch.no_grad()
    def sample(
        self,
        num_samples: int,
        generator: torch.Generator | None = None,
        batch_size: int = 1000,
        return_latent: bool = False,
    ) -> Tensor | tuple[Tensor, Tensor]:
        """Generate: inverse-transform prior samples, then the noise-free generator output.

        Returns:
            ``(S, C, H, W)`` outputs (in [0, 1] with the sigmoid activation), and the latents
            ``(S, *latent_shape)`` when ``return_latent``.
        """
        images, latents = [], []
        for start in range(0, num_samples, batch_size):
            count = min(batch_size, num_samples - start)
            if return_latent:
                z = self.prior.sample(count, generator)
                h = self.prior.generator_input(z)
                latents.append(z)
            else:  # the univariate prior sums its latents as it draws them
                h = self.prior.sample_generator_input(count, generator)
            images.append(self.likelihood.mean(self.decode_input(h)))
        x = torch.cat(images)
        return (x, torch.cat(latents)) if return_latent else x

    @torch.no_grad()
    def update_grids(self, z: Tensor) -> bool:
        """Refit the prior and generator grids to latents ``z`` (spec 2.6); True if any changed."""
        if self.update_prior_grid:
            self.prior.update_grid(z)
        if self.update_generator_grid:
            self.generator.update_grid(self.prior.generator_input(z))
        return self.update_prior_grid or self.update_generator_grid
