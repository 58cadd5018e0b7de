"""The KAN generator (maths 1.3): widths ``(Q, w_1, ..., prod(image shape))``."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from typing import cast

import torch
from torch import Tensor, nn

from tkam.config import GeneratorConfig
from tkam.kan.layer import UnivariateLayer

__all__ = ["KANGenerator"]


class KANGenerator(nn.Module):
    """Stacked KAN layers ``y_o = sum_i phi_io(x_i)``; returns pre-activation images.

    Args:
        config: the generator section; ``widths[0]`` is the latent width Q.
        image_shape: ``(C, H, W)`` of the data; the last layer has ``C*H*W`` outputs.
        rng: random stream for the initialisation.
    """

    def __init__(
        self,
        config: GeneratorConfig,
        image_shape: tuple[int, ...],
        rng: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.image_shape = tuple(image_shape)
        widths = (*config.widths, math.prod(image_shape))
        self.widths = widths
        self.layers = nn.ModuleList(
            UnivariateLayer(i, o, config, rng=rng) for i, o in zip(widths, widths[1:])
        )
        self.norms = nn.ModuleList(
            nn.LayerNorm(i) if config.layernorm else nn.Identity() for i in widths[:-1]
        )

    @property
    def input_width(self) -> int:
        return self.widths[0]

    def _stack(self) -> Iterator[tuple[nn.Module, UnivariateLayer]]:
        """``(norm, layer)`` of every layer, input side first."""
        return zip(self.norms, cast("Iterable[UnivariateLayer]", self.layers))

    def forward(self, h: Tensor) -> Tensor:
        """``(S, Q) -> (S, C, H, W)`` pre-activation output."""
        x = h
        for norm, layer in self._stack():
            x = layer.summed(norm(x))
        return x.view(x.shape[0], *self.image_shape)

    @torch.no_grad()
    def update_grid(self, h: Tensor) -> None:
        """Refit every layer's grid to its inputs, pushing ``h`` through the updated layers
        (maths 2.6)."""
        x = h
        for norm, layer in self._stack():
            x = norm(x)
            layer.update_grid(x)
            x = layer.summed(x)
