"""The CNN generator (maths 1.3): a ConvTranspose2d stack from the latent to the image."""

from __future__ import annotations

from typing import cast

import torch
from torch import Tensor, nn

from tkam.config import GeneratorConfig
from tkam.generator.init import default_init_
from tkam.kan.bases import activation

__all__ = ["CNNGenerator", "cnn_output_size"]


def cnn_output_size(
    size: int, kernel_sizes: tuple[int, ...], strides: tuple[int, ...], paddings: tuple[int, ...]
) -> list[int]:
    """Spatial sizes after each ConvTranspose layer: ``(n - 1) s - 2 p + k``, from ``size``."""
    sizes = [size]
    for k, s, p in zip(kernel_sizes, strides, paddings):
        sizes.append((sizes[-1] - 1) * s - 2 * p + k)
    return sizes


class CNNGenerator(nn.Module):
    """``h (B, Q) -> (B, Q, 1, 1) -> ConvTranspose2d stack -> (B, C, H, W)`` pre-activation.

    Channels ``(Q, *hidden_channels, C)``. Between layers the reference applies no nonlinearity
    (a linear generator followed by the output activation, departures A11); ``cnn_activation``
    adds one. With ``latent_concat`` the latent is tiled to the feature map and concatenated on
    the channels before every layer after the first.

    Raises:
        ValueError: if the stack does not produce the data's ``(H, W)``, naming the sizes.
    """

    def __init__(
        self,
        config: GeneratorConfig,
        image_shape: tuple[int, ...],
        rng: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.image_shape = tuple(image_shape)
        channels, height, width = self.image_shape
        latent = config.widths[0]
        sizes = cnn_output_size(1, config.kernel_sizes, config.strides, config.paddings)
        if height != width or sizes[-1] != height:
            raise ValueError(
                f"generator kernel_sizes {config.kernel_sizes}, strides {config.strides} and "
                f"paddings {config.paddings} give spatial sizes {sizes}, but the data is "
                f"{height}x{width}"
            )
        widths = (latent, *config.hidden_channels, channels)
        self.latent_concat = config.latent_concat
        self.layers = nn.ModuleList()
        for i, (c_in, c_out, k, s, p) in enumerate(
            zip(widths, widths[1:], config.kernel_sizes, config.strides, config.paddings)
        ):
            extra = latent if (self.latent_concat and i > 0) else 0
            self.layers.append(nn.ConvTranspose2d(c_in + extra, c_out, k, s, p, bias=True))
        self.activation_name = config.cnn_activation
        self.activation = activation(config.cnn_activation)
        if rng is not None:
            self._reset(rng)

    def _reset(self, rng: torch.Generator) -> None:
        # PyTorch's default ConvTranspose2d initialisation (kaiming-uniform, a = sqrt(5)), drawn
        # from the run's stream so that runs are reproducible without the global RNG.
        for layer in self.layers:
            default_init_(layer, rng)

    @property
    def input_width(self) -> int:
        return cast(nn.ConvTranspose2d, self.layers[0]).in_channels

    def forward(self, h: Tensor) -> Tensor:
        """``(B, Q) -> (B, C, H, W)`` pre-activation output."""
        latent = h[:, :, None, None]
        x = latent
        for i, layer in enumerate(self.layers):
            if i > 0:
                if self.activation_name != "none":
                    x = self.activation(x)
                if self.latent_concat:
                    x = torch.cat([x, latent.expand(-1, -1, *x.shape[-2:])], dim=1)
            x = layer(x)
        return x

    def update_grid(self, h: Tensor) -> None:
        """CNN generators have no grids (maths 2.6)."""
