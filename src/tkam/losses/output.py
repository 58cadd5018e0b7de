"""What every training loss returns."""

from __future__ import annotations

from typing import NamedTuple

from torch import Tensor

__all__ = ["LossOutput"]


class LossOutput(NamedTuple):
    """A scalar loss to differentiate and detached float metrics for logs."""

    loss: Tensor
    metrics: dict[str, float]
