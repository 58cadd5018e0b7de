"""FID-infinity and KID-infinity: metrics at several sample sizes, extrapolated in ``1/n``.

Chong & Forsyth's recipe as in maths 7: for each ``n`` draw ``n`` generated feature
vectors without replacement, compute FID and KID against the real set, fit ``metric ~ a + b / n``
by least squares and report the intercept ``a`` (the value an infinite sample would give).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from tkam.metrics.distances import frechet_distance, kernel_inception_distance

__all__ = [
    "SPEC_SAMPLE_SIZES",
    "InfinityMetrics",
    "default_sample_sizes",
    "extrapolate_to_infinity",
    "infinity_metrics",
]

#: The reference's sample sizes, n in {1000, 1200, ..., 3000} (maths 7).
SPEC_SAMPLE_SIZES: tuple[int, ...] = tuple(range(1000, 3001, 200))


def default_sample_sizes(num_generated: int, count: int = 5) -> list[int]:
    """Sample sizes for ``num_generated`` images: the reference's grid when ``>= 3000`` are drawn,
    otherwise ``count`` evenly spaced sizes from ``num_generated / count`` to ``num_generated``
    (1000 images: 200, 400, ..., 1000).
    """
    if num_generated >= SPEC_SAMPLE_SIZES[-1]:
        return list(SPEC_SAMPLE_SIZES)
    if num_generated < 4:
        raise ValueError(f"need at least 4 generated images, got {num_generated}")
    sizes = np.linspace(num_generated / count, num_generated, count).round().astype(int)
    return sorted({max(int(s), 2) for s in sizes})


def extrapolate_to_infinity(
    sample_sizes: Sequence[int], values: Sequence[float]
) -> tuple[float, float]:
    """Least-squares fit of ``values ~ intercept + slope / n``.

    Args:
        sample_sizes: the ``n`` of each value (at least two distinct).
        values: the metric at each ``n``.

    Returns:
        ``(intercept, slope)``; the intercept is the extrapolated metric at ``n = inf``.
    """
    n = np.asarray(sample_sizes, dtype=np.float64)
    y = np.asarray(values, dtype=np.float64)
    if n.shape != y.shape or len(np.unique(n)) < 2:
        raise ValueError("need matching sizes and values with at least two distinct sizes")
    design = np.stack([np.ones_like(n), 1.0 / n], axis=1)
    (intercept, slope), *_ = np.linalg.lstsq(design, y, rcond=None)
    return float(intercept), float(slope)


class InfinityMetrics(NamedTuple):
    """FID/KID at each sample size and their extrapolations (maths 7)."""

    sample_sizes: list[int]
    fid_values: list[float]
    kid_values: list[float]
    fid_infinity: float
    kid_infinity: float
    fid_at_n: float
    kid_subset_size: int
    kid_num_subsets: int


def infinity_metrics(
    real_features: Tensor | np.ndarray,
    generated_features: Tensor | np.ndarray,
    sample_sizes: Sequence[int],
    rng: torch.Generator | None = None,
    subset_size: int = 1000,
    num_subsets: int = 100,
) -> InfinityMetrics:
    """FID and KID-mean at each ``n`` (``n`` generated rows drawn without replacement against
    all real rows), extrapolated to ``n = inf``; ``fid_at_n`` is the FID at the largest ``n``.

    Args:
        real_features: ``(R, d)``.
        generated_features: ``(G, d)`` with ``G >= max(sample_sizes)``.
        sample_sizes: the ``n`` values (at least two distinct).
        rng: random stream for the draws and the KID subsets.
        subset_size: KID subset size; each KID uses ``min(subset_size, n, R)``.
        num_subsets: KID subsets per ``n``.
    """
    sizes = sorted(int(s) for s in sample_sizes)
    generated = torch.as_tensor(np.asarray(generated_features, dtype=np.float64))
    if sizes[-1] > generated.shape[0]:
        raise ValueError(f"largest sample size {sizes[-1]} > {generated.shape[0]} generated")
    fids, kids = [], []
    for n in sizes:
        rows = torch.randperm(generated.shape[0], generator=rng)[:n]
        drawn = generated[rows].numpy()
        fids.append(frechet_distance(real_features, drawn))
        kid = kernel_inception_distance(real_features, drawn, subset_size, num_subsets, rng)
        kids.append(kid.mean)
    fid_inf, _ = extrapolate_to_infinity(sizes, fids)
    kid_inf, _ = extrapolate_to_infinity(sizes, kids)
    return InfinityMetrics(
        sample_sizes=sizes,
        fid_values=fids,
        kid_values=kids,
        fid_infinity=fid_inf,
        kid_infinity=kid_inf,
        fid_at_n=fids[-1],
        kid_subset_size=min(subset_size, sizes[-1], int(np.shape(real_features)[0])),
        kid_num_subsets=num_subsets,
    )
