"""Feature-space distances between image sets: FID and KID (maths 7).

Both see only feature matrices ``(N, d)``; which network produced them is the caller's concern
(:mod:`tkam.metrics.features`). Computations run in float64 NumPy: FID subtracts traces of
similar magnitude and KID averages kernel values whose differences are tiny for close sets.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "KIDResult",
    "feature_statistics",
    "frechet_distance",
    "kernel_inception_distance",
    "mmd2_unbiased",
    "polynomial_kernel",
]


def _as_array(features: Tensor | np.ndarray) -> np.ndarray:
    if isinstance(features, Tensor):
        features = features.detach().cpu().numpy()
    array = np.asarray(features, dtype=np.float64)
    if array.ndim != 2:
        raise ValueError(f"features must have shape (N, d), got {array.shape}")
    return array


def feature_statistics(features: Tensor | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``(d,)`` and unbiased covariance ``(d, d)`` of features ``(N, d)``, ``N >= 2``."""
    x = _as_array(features)
    if x.shape[0] < 2:
        raise ValueError("feature statistics need at least two feature vectors")
    return x.mean(axis=0), np.cov(x, rowvar=False).reshape(x.shape[1], x.shape[1])


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(values.clip(min=0.0))) @ vectors.T


def frechet_distance(features_a: Tensor | np.ndarray, features_b: Tensor | np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to two feature sets (FID).

    ``||mu_a - mu_b||^2 + tr(S_a + S_b - 2 (S_a^1/2 S_b S_a^1/2)^1/2)``. The trace of the matrix
    square root is taken from the eigenvalues of the symmetric PSD matrix
    ``S_a^1/2 S_b S_a^1/2`` (same spectrum as ``S_a S_b``), which is stable for the singular
    covariances of small sets, unlike a general ``sqrtm`` of ``S_a S_b``.

    Args:
        features_a: ``(N, d)`` features, ``N >= 2``.
        features_b: ``(M, d)`` features, ``M >= 2``.

    Returns:
        The distance (non-negative up to round-off; clamped at 0).
    """
    mu_a, cov_a = feature_statistics(features_a)
    mu_b, cov_b = feature_statistics(features_b)
    if mu_a.shape != mu_b.shape:
        raise ValueError(f"feature dimensions differ: {mu_a.shape[0]} vs {mu_b.shape[0]}")
    root_a = _psd_sqrt(cov_a)
    middle = root_a @ cov_b @ root_a
    trace_root = np.sqrt(np.linalg.eigvalsh((middle + middle.T) / 2).clip(min=0.0)).sum()
    value = np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a) + np.trace(cov_b) - 2 * trace_root
    return float(max(value, 0.0))


def polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The KID kernel ``k(x, y) = (x.y / d + 1)^3``: ``(N, d)``, ``(M, d)`` -> ``(N, M)``."""
    gram = x @ y.T
    # In place, and a product instead of ** 3: the elementwise work rivals the matmul here.
    gram /= x.shape[1]
    gram += 1.0
    return gram * gram * gram


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased estimate of MMD^2 with :func:`polynomial_kernel` (diagonals left out).

    Args:
        x: ``(m, d)`` features, ``m >= 2``.
        y: ``(n, d)`` features, ``n >= 2``.
    """
    x, y = _as_array(x), _as_array(y)
    m, n = x.shape[0], y.shape[0]
    k_xx, k_yy, k_xy = polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)
    term_xx = (k_xx.sum() - np.trace(k_xx)) / (m * (m - 1))
    term_yy = (k_yy.sum() - np.trace(k_yy)) / (n * (n - 1))
    return float(term_xx + term_yy - 2 * k_xy.mean())


class KIDResult(NamedTuple):
    """Kernel inception distance over random subsets.

    Attributes:
        mean: mean unbiased MMD^2 over the subsets (the reported KID).
        std: standard deviation over the subsets.
        values: ``(num_subsets,)`` per-subset estimates.
    """

    mean: float
    std: float
    values: np.ndarray


def kernel_inception_distance(
    features_a: Tensor | np.ndarray,
    features_b: Tensor | np.ndarray,
    subset_size: int = 1000,
    num_subsets: int = 100,
    rng: torch.Generator | None = None,
) -> KIDResult:
    """KID as in torch-fidelity: unbiased MMD^2 averaged over random subsets (maths 7).

    Each subset draws ``min(subset_size, N, M)`` rows of each set without replacement.

    Args:
        features_a: ``(N, d)`` features.
        features_b: ``(M, d)`` features.
        subset_size: rows per subset (torch-fidelity's default 1000).
        num_subsets: number of subsets (default 100).
        rng: random stream for the subsets.
    """
    a, b = _as_array(features_a), _as_array(features_b)
    size = min(subset_size, a.shape[0], b.shape[0])
    if size < 2:
        raise ValueError("KID needs at least two feature vectors in each set")
    values = np.empty(num_subsets)
    for i in range(num_subsets):
        rows_a = torch.randperm(a.shape[0], generator=rng)[:size].numpy()
        rows_b = torch.randperm(b.shape[0], generator=rng)[:size].numpy()
        values[i] = mmd2_unbiased(a[rows_a], b[rows_b])
    std = float(values.std(ddof=1)) if num_subsets > 1 else math.nan
    return KIDResult(mean=float(values.mean()), std=std, values=values)
