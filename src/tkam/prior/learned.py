"""What a prior learned: how far its components moved from pi_0, and how many directions of the
generator's input its draws use.

Each component ``p_qp = e^{f_qp} pi_0 / Z_qp`` of a Kolmogorov-Arnold prior is compared with its
reference density pi_0 restricted and renormalised to the component's domain, both integrated
with the prior's own quadrature rule (:meth:`~tkam.prior.base.KANPrior.quadrature_rule`, the rule
of its normaliser): a prior with ``f = 0`` is exactly pi_0 and scores 0 up to rounding. The
Kullback-Leibler divergence ``KL(p_qp || pi_0)`` weighs where the component puts its mass; the
total-variation distance ``0.5 * integral |p_qp - pi_0|`` is bounded by 1 and reads as the share of
mass that moved.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from tkam.prior.base import KANPrior
from tkam.prior.protocol import Prior

__all__ = [
    "DIVERGENCE_KEYS",
    "TV_THRESHOLD",
    "component_divergences",
    "effective_dimension",
    "largest_components",
    "prior_report",
    "summarise",
]

#: A component whose total-variation distance from pi_0 exceeds this counts as moved away from it.
TV_THRESHOLD = 0.1

#: The keys of :func:`summarise` (``None`` in :func:`prior_report` for priors without components).
DIVERGENCE_KEYS = (
    "tv_median",
    "tv_p90",
    "tv_max",
    "kl_median",
    "kl_p90",
    "share_tv_above_0.1",
    "num_components",
)


def _by_component(prior: KANPrior, rows: Tensor) -> Tensor:
    """A per-row tensor ``(R, n)`` as a view broadcastable to the components ``(Q, P, n)``."""
    return rows.unsqueeze(0) if prior.rows_are_inputs else rows.unsqueeze(1)


@torch.no_grad()
def component_divergences(prior: Prior) -> tuple[Tensor, Tensor]:
    """``KL(p_qp || pi_0)`` and the total-variation distance of every component from pi_0.

    Both integrals use the prior's quadrature nodes and weights (Gauss-Legendre or the trapezium
    rule, as its normaliser), with the component density of the prior's quadrature table and
    pi_0 normalised by the same rule on the same domain. Both densities are renormalised in
    float64, so that a component equal to pi_0 gives 0 up to float64 rounding even when the table
    is float32. One quadrature table, the cached one when the prior has not changed.

    Args:
        prior: a univariate or mixture Kolmogorov-Arnold prior (``has_components``).

    Returns:
        ``kl`` and ``tv``, ``(Q, P)`` float64 tensors on the prior's device.

    Raises:
        ValueError: for a prior without univariate components (a deep or energy prior, the
            standard normal), or one whose quadrature has no finite mass.
    """
    if not isinstance(prior, KANPrior) or not prior.has_components:
        raise ValueError(
            f"{type(prior).__name__} has no univariate components to compare with a reference "
            "density; divergences need a univariate or mixture Kolmogorov-Arnold prior"
        )
    table = prior.quadrature()
    nodes, log_weights = prior.quadrature_rule()
    log_reference = prior.reference.log_pdf(nodes.T).T  # (R, n), as the table used it
    log_w = _by_component(prior, log_weights.double())
    log_p = table.log_density.double()
    log_p = log_p - torch.logsumexp(log_w + log_p, dim=-1, keepdim=True)
    log_q = _by_component(prior, log_reference.double())
    log_q = log_q - torch.logsumexp(log_w + log_q, dim=-1, keepdim=True)
    weights, p, q = log_w.exp(), log_p.exp(), log_q.exp()
    # Where p vanishes (a reference without support there) the term is 0, not 0 * (-inf + inf).
    kl_terms = torch.where(p > 0, p * (log_p - log_q), torch.zeros_like(p))
    kl = (weights * kl_terms).sum(dim=-1)
    tv = 0.5 * (weights * (p - q).abs()).sum(dim=-1)
    return kl, tv


def _array(values: Tensor | np.ndarray) -> np.ndarray:
    """``values`` as a float64 NumPy array (a tensor is detached and moved to the CPU)."""
    if isinstance(values, Tensor):
        values = values.detach().cpu().double().numpy()
    return np.asarray(values, dtype=np.float64)


def summarise(kl: Tensor | np.ndarray, tv: Tensor | np.ndarray) -> dict[str, float | int]:
    """The distribution of the components' divergences in a few numbers.

    Args:
        kl: per-component KL divergences (any shape, e.g. the ``(Q, P)`` of
            :func:`component_divergences`).
        tv: per-component total-variation distances, shaped like ``kl``.

    Returns:
        ``tv_median``, ``tv_p90`` (90th percentile, linear interpolation), ``tv_max``,
        ``kl_median``, ``kl_p90``, ``share_tv_above_0.1`` (the fraction of components with
        ``TV > 0.1``) and ``num_components``.

    Raises:
        ValueError: when there are no components or ``kl`` and ``tv`` differ in size.
    """
    kl_values, tv_values = _array(kl).reshape(-1), _array(tv).reshape(-1)
    if tv_values.size == 0 or kl_values.size != tv_values.size:
        raise ValueError(
            f"summarise needs as many KL as TV values, at least one: got {kl_values.size} and "
            f"{tv_values.size}"
        )
    return {
        "tv_median": float(np.median(tv_values)),
        "tv_p90": float(np.quantile(tv_values, 0.9)),
        "tv_max": float(tv_values.max()),
        "kl_median": float(np.median(kl_values)),
        "kl_p90": float(np.quantile(kl_values, 0.9)),
        "share_tv_above_0.1": float((tv_values > TV_THRESHOLD).mean()),
        "num_components": int(tv_values.size),
    }


def largest_components(
    kl: Tensor | np.ndarray, tv: Tensor | np.ndarray, count: int = 5
) -> list[dict[str, float | int]]:
    """The ``count`` components farthest from pi_0 in total variation, farthest first.

    Args:
        kl: ``(Q, P)`` per-component KL divergences.
        tv: ``(Q, P)`` per-component total-variation distances.
        count: how many to return (fewer when there are fewer components).

    Returns:
        one dict per component: ``q``, ``p`` (0-based), ``tv`` and ``kl``.
    """
    kl_values, tv_values = _array(kl), _array(tv)
    order = np.argsort(-tv_values, axis=None, kind="stable")[:count]
    rows = []
    for flat in order:
        q, p = np.unravel_index(flat, tv_values.shape)
        rows.append(
            {"q": int(q), "p": int(p), "tv": float(tv_values[q, p]), "kl": float(kl_values[q, p])}
        )
    return rows


def _principal_variances(h: Tensor | np.ndarray) -> np.ndarray:
    """The variances along the principal directions of the rows of ``h (n, Q)``, descending."""
    values = _array(h)
    if values.ndim != 2 or values.shape[0] < 2 or values.shape[1] < 1:
        raise ValueError(f"expected h of shape (n, Q) with n >= 2 rows, got {values.shape}")
    if not np.isfinite(values).all():
        raise ValueError("h has non-finite values")
    covariance = np.atleast_2d(np.cov(values, rowvar=False))
    return np.clip(np.linalg.eigvalsh(covariance)[::-1], 0.0, None)


def effective_dimension(h: Tensor | np.ndarray, share: float = 0.99) -> int:
    """How many principal directions of the rows of ``h`` hold ``share`` of its variance.

    The eigenvalues of the sample covariance, sorted descending: the smallest ``k`` whose
    cumulative sum reaches ``share`` of the total (up to rounding, 1e-12). ``h`` without any
    variance has dimension 0.

    Args:
        h: ``(n, Q)`` points, ``n >= 2`` (e.g. prior draws of the generator's input).
        share: the fraction of the variance to hold, in ``(0, 1]``.

    Raises:
        ValueError: for ``share`` outside ``(0, 1]``, or ``h`` of another shape or non-finite.
    """
    if not 0.0 < share <= 1.0:
        raise ValueError(f"share must be in (0, 1], got {share}")
    variances = _principal_variances(h)
    total = variances.sum()
    if total <= 0.0:
        return 0
    cumulative = np.cumsum(variances) / total
    return min(int(np.searchsorted(cumulative, share - 1e-12)) + 1, len(variances))


def prior_report(
    prior: Prior, num_samples: int = 2000, rng: torch.Generator | None = None
) -> dict[str, Any]:
    """What a prior learned, as one flat dict.

    Args:
        prior: any prior; the divergences need univariate components (``has_components``).
        num_samples: prior draws of the generator's input ``h`` (at least 2).
        rng: the random stream of those draws.

    Returns:
        the keys of :func:`summarise` (``None`` for a prior without components: a deep or energy
        prior, the VAE's standard normal), plus from ``num_samples`` draws of ``h`` (``None``
        where the prior cannot be sampled): ``h_effective_dimension`` (directions holding 99 % of
        its variance, :func:`effective_dimension`), ``h_leading_share`` (the first direction's
        share of the variance; ``None`` without variance) and ``h_width`` (Q).

    Raises:
        ValueError: for ``num_samples < 2``.
    """
    if num_samples < 2:
        raise ValueError(f"num_samples must be at least 2, got {num_samples}")
    report: dict[str, Any] = dict.fromkeys(DIVERGENCE_KEYS)
    if prior.has_components:
        report.update(summarise(*component_divergences(prior)))
    report |= {"h_effective_dimension": None, "h_leading_share": None, "h_width": None}
    try:
        h = prior.sample_generator_input(num_samples, rng)
    except NotImplementedError:
        return report
    h = h.detach().reshape(num_samples, -1)
    variances = _principal_variances(h)
    total = float(variances.sum())
    report["h_effective_dimension"] = effective_dimension(h)
    report["h_leading_share"] = float(variances[0]) / total if total > 0 else None
    report["h_width"] = int(h.shape[1])
    return report
