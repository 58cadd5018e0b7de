"""What the compiled CPU kernels and the Triton kernels share: the integer codes of the bases and
base activations, and the rule for the dtype they compute in."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["ACTIVATION_CODES", "BASIS_CODES", "compute_dtype"]

BASIS_CODES = {"bspline": 0, "rbf": 1, "rswaf": 2, "fourier": 3, "chebyshev": 4}
ACTIVATION_CODES = {
    "none": 0,
    "relu": 1,
    "leakyrelu": 2,
    "tanh": 3,
    "sigmoid": 4,
    "swish": 5,
    "gelu": 6,
    "selu": 7,
    "silu": 8,
    "elu": 9,
    "celu": 10,
}


def compute_dtype(*tensors: Tensor | None) -> torch.dtype:
    """float64 if any of the (non-empty) tensors is, else float32."""
    dtypes = [t.dtype for t in tensors if t is not None and t.numel() > 0]
    return torch.float64 if torch.float64 in dtypes else torch.float32
