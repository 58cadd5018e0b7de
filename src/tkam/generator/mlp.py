"""A plain MLP generator: the textbook VAE's decoder (Kingma & Welling 2014), for comparing priors
on one standard decoder."""

from __future__ import annotations

import math
from typing import cast

import torch
from torch import Tensor, nn

from tkam.config import GeneratorConfig
from tkam.generator.init import default_init_
from tkam.kan.bases import activation

__all__ = ["MLPGenerator"]


class MLPGenerator(nn.Module):
    """``h (B, Q) -> Linear -> act -> ... -> Linear -> (B, *data_shape)`` pre-activation.

    Widths ``(*config.widths, prod(data_shape))``: ``widths = [20, 400]`` is the textbook
    20-400-784 decoder for 28x28 images. ``config.mlp_activation`` sits between the layers.

    Args:
        config: the generator section.
        data_shape: data shape without the batch axis.
        rng: random stream for PyTorch's default initialisation.
    """

    def __init__(
        self,
        config: GeneratorConfig,
        data_shape: tuple[int, ...],
        rng: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.data_shape = tuple(int(s) for s in data_shape)
        widths = (*config.widths, math.prod(self.data_shape))
        self.layers = nn.ModuleList(nn.Linear(i, o) for i, o in zip(widths, widths[1:]))
        self.activation = activation(config.mlp_activation)
        for layer in self.layers:
            default_init_(layer, rng)

    @property
    def input_width(self) -> int:
        return cast(nn.Linear, self.layers[0]).in_features

    def forward(self, h: Tensor) -> Tensor:
        """``(B, Q) -> (B, *data_shape)`` pre-activation output."""
        x = h
        for i, layer in enumerate(self.layers):
            if i > 0:
                x = self.activation(x)
            x = layer(x)
        return x.view(-1, *self.data_shape)

    def update_grid(self, h: Tensor) -> None:
        """MLP generators have no grids."""
