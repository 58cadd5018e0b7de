"""Reproducible default initialisation of linear and convolution layers."""

from __future__ import annotations

from typing import cast

import torch
from torch import Tensor, nn

__all__ = ["default_init_"]


@torch.no_grad()
def default_init_(layer: nn.Module, rng: torch.Generator | None) -> None:
    """PyTorch's default Linear/Conv2d/ConvTranspose2d initialisation (weights and bias
    ``U(+-1/sqrt(fan_in))``), drawn from ``rng`` so runs are reproducible without the global
    random stream; without ``rng`` the layer keeps PyTorch's own draw.

    ``fan_in`` is ``weight[0].numel()``: ``in_features`` for Linear, ``in * k * k`` for Conv2d
    and ``out * k * k`` for ConvTranspose2d (whose weight is ``(in, out, k, k)``), as PyTorch
    computes it."""
    if rng is None:
        return
    weight, bias = cast(Tensor, layer.weight), cast(Tensor, layer.bias)
    bound = 1.0 / weight[0].numel() ** 0.5
    for tensor in (weight, bias):
        tensor.copy_((torch.rand(tensor.shape, generator=rng) * 2 - 1) * bound)
