"""The shared machinery of the Kolmogorov-Arnold priors (maths 1.2 and 3).

Every component ``(q, p)`` is a univariate energy-based density ``exp(f_qp(z)) pi_0(z) / Z_qp`` on
its row's domain. Subclasses fix which layer orientation gives ``f_qp``, which row a component uses,
how latents are drawn, and how the log-prior combines the components.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from tkam.config import PriorConfig
from tkam.kan.layer import UnivariateLayer
from tkam.posterior.state import Support
from tkam.prior.inverse_transform import guide_table
from tkam.prior.protocol import PriorModule
from tkam.prior.quadrature import (
    QuadratureTable,
    fused_gauss_legendre_table,
    gauss_legendre,
    gauss_legendre_table,
    trapezium_table,
)
from tkam.prior.reference import ReferenceDensity

__all__ = ["KANPrior"]


class KANPrior(PriorModule):
    """Base class of the univariate and mixture priors: exact normaliser (quadrature ``log Z``)
    and univariate components to export.

    Args:
        config: the prior section.
        layer_in: input width of the univariate-function layer (its grid rows).
        layer_out: output width of the univariate-function layer.
        eps: stabiliser of ``log(pi_0 + eps)`` and ``log(Z + eps)``.
        rng: random stream for the initialisation.
    """

    exact_normaliser = True
    has_components = True
    #: True where component (q, p) sits on row p (univariate) rather than row q (mixture).
    rows_are_inputs: bool = True
    #: Whether the fused kernel may build the quadrature table (its layout is the transpose).
    fused_quadrature: bool = True

    def __init__(
        self,
        config: PriorConfig,
        layer_in: int,
        layer_out: int,
        eps: float = 1e-4,
        rng: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        self.num_inputs = config.num_inputs  # P
        self.num_outputs = config.num_outputs  # Q
        self.eps = eps
        assert config.grid_range is not None  # PriorConfig resolves it
        self.reference = ReferenceDensity(config.reference, layer_in, config.grid_range, eps)
        self.layer = UnivariateLayer(
            layer_in, layer_out, config, grid_range=self.reference.domain, rng=rng
        )
        #: How many times the quadrature table has been computed (for tests and profiling).
        self.quadrature_evaluations = 0
        # (state snapshot, table, tables derived from it for the samplers)
        self._table_cache: tuple[list[Tensor], QuadratureTable, dict[str, Tensor]] | None = None

    # ------------------------------------------------------------------------------------------
    # Orientation: subclasses turn layer outputs into (Q, P) components.
    def _components(self, values: Tensor) -> Tensor:
        """Layer output ``(N, I, O)`` at row-wise inputs to ``(Q, P, N)``."""
        raise NotImplementedError

    def _row_view(self, rows: Tensor) -> Tensor:
        """A per-row tensor ``(R, N)`` as a ``(Q, P, N)`` view over components."""
        return rows.unsqueeze(0) if self.rows_are_inputs else rows.unsqueeze(1)

    def support(self) -> Support | None:
        """Each component's domain (its row's quadrature domain, which grid updates move) as a
        box broadcastable to ``latent_shape``: the inverse transform samples nothing outside it.
        None with ``compat_layout``, whose components sit on other rows' nodes (departures A2)."""
        if self.config.compat_layout:
            return None
        domain = self.layer.quadrature_domain().detach()  # (R, 2)
        lower, upper = domain[:, 0], domain[:, 1]
        if self.rows_are_inputs:  # (Q, P) latents, row p: (1, P)
            return Support(lower.unsqueeze(0), upper.unsqueeze(0))
        return Support(lower, upper)  # (Q,) latents of the mixture, row q

    def _log_unnormalised_at(self, points: Tensor) -> Tensor:
        """``f_qp + log pi_0`` at per-row points ``(R, N)``, as ``(Q, P, N)``."""
        f = self._components(self.layer.at_nodes(points))
        log_pi0 = self.reference.log_pdf(points.T).T  # (R, N)
        return f + self._row_view(log_pi0)

    def quadrature(self) -> QuadratureTable:
        """Quadrature of every component: knots, normalised log-density, CDF and ``log Z``.

        Costs one evaluation of the layer on the ``(R, N_g)`` nodes, whatever the batch size, and
        is computed once per parameter state: sampling, contrastive negatives and ``log Z`` share
        the table until a parameter or buffer of the prior changes in any way (an optimiser step,
        a grid update, a state-dict load, a move to another device). Under gradient mode the
        table is recomputed with its graph (and the cache refreshed), since a graph cannot be
        shared across backward passes.
        """
        if torch.is_grad_enabled() and any(p.requires_grad for p in self.parameters()):
            table = self._compute_quadrature()
            detached = table._replace(
                **{name: t.detach() for name, t in table._asdict().items() if t is not None}
            )
            self._table_cache = (self._state_snapshot(), detached, {})
            return table
        return self.sampling_table()

    def sampling_table(self) -> QuadratureTable:
        """The quadrature table of the current state, without gradient, computed at most once."""
        if self._table_cache is None or not self._state_matches(self._table_cache[0]):
            with torch.no_grad():
                self._table_cache = (self._state_snapshot(), self._compute_quadrature(), {})
        return self._table_cache[1]

    def sampling_guide(self) -> Tensor:
        """The guide table (:func:`~tkam.prior.inverse_transform.guide_table`) of the cached
        CDFs, rows ``q P + p``, built once per table."""
        kernel = self.layer.kernel
        return self._derived(
            "guide", lambda t: guide_table(t.cdf.reshape(-1, t.cdf.shape[-1]), kernel=kernel)
        )

    def sampling_cdf_by_row(self) -> Tensor:
        """The cached CDFs laid out ``(P, n, Q)`` (the shared-uniform sampler's layout), built
        once per table."""
        table = self.sampling_table()
        if table.cdf_by_row is not None:  # written by the fused quadrature
            return table.cdf_by_row
        return self._derived("by_row", lambda t: t.cdf.permute(1, 2, 0).contiguous())

    def _derived(self, name: str, build) -> Tensor:  # noqa: ANN001 - table -> tensor
        table = self.sampling_table()
        assert self._table_cache is not None  # sampling_table() fills it
        extras = self._table_cache[2]
        if name not in extras:
            extras[name] = build(table)
        return extras[name]

    def forget_quadrature(self) -> None:
        """Drop the cached table, so that the next use computes it (benchmarks use this; the
        cache never needs it for correctness, since any change of state invalidates it)."""
        self._table_cache = None

    def _state_tensors(self) -> list[Tensor]:
        return [*self.parameters(), *self.buffers()]

    def _state_snapshot(self) -> list[Tensor]:
        # An exact copy of the state the table was computed from. Version counters would be
        # cheaper but miss in-place updates that do not bump them (fused Adam, ``.data``).
        return [t.detach().clone() for t in self._state_tensors()]

    def _state_matches(self, snapshot: list[Tensor]) -> bool:
        current = self._state_tensors()
        return len(current) == len(snapshot) and all(
            a.shape == b.shape and a.dtype == b.dtype and a.device == b.device and torch.equal(a, b)
            for a, b in zip(current, snapshot)
        )

    def quadrature_rule(self) -> tuple[Tensor, Tensor]:
        """The nodes and log-weights of the rule that normalises the components, per row.

        ``sum_g exp(log_weights[r, g]) * g(nodes[r, g])`` is the rule's integral of a function
        ``g`` over row ``r``'s domain, and :meth:`quadrature`'s ``log Z`` is this rule applied to
        ``e^f pi_0``: Gauss-Legendre nodes and weights on the layer's
        :meth:`~tkam.kan.layer.UnivariateLayer.quadrature_domain` (``prior.quadrature =
        "gausslegendre"``), or the row's grid points with the trapezium weights
        ``(x_{g+1} - x_{g-1}) / 2``, half a width at either end (``"trapezium"``). Integrals
        taken with it are consistent with the table's normalised densities.

        Returns:
            ``nodes (R, n)`` (the table's knots, row p univariate, row q mixture) and
            ``log_weights (R, n)`` (``-inf`` for a zero weight), in the layer's dtype.
        """
        cfg = self.config
        if cfg.quadrature == "trapezium":
            points = self.layer.grid
            widths = (points[:, 1:] - points[:, :-1]).clamp_min(0.0)
            edge = torch.zeros_like(widths[:, :1])
            weights = 0.5 * (torch.cat([edge, widths], dim=1) + torch.cat([widths, edge], dim=1))
            return points, torch.log(weights)
        nodes, weights = gauss_legendre(
            self.layer.quadrature_domain(), cfg.num_nodes, compat=cfg.compat_node_map
        )
        return nodes, torch.log(weights)

    def _compute_quadrature(self) -> QuadratureTable:
        self.quadrature_evaluations += 1
        cfg = self.config
        table: QuadratureTable | None
        if cfg.quadrature == "trapezium":
            points = self.layer.grid
            table = trapezium_table(self._row_view(points), self._log_unnormalised_at(points))
        else:
            nodes, log_weights = self.quadrature_rule()
            table = None
            if not torch.is_grad_enabled() and self.fused_quadrature:
                table = fused_gauss_legendre_table(
                    self.layer,
                    self._row_view(nodes),
                    nodes,
                    log_weights,
                    self.reference.log_pdf(nodes.T).T,
                    self.rows_are_inputs,
                    rule=cfg.cdf,
                )
            if table is None:
                table = gauss_legendre_table(
                    self._row_view(nodes),
                    self._row_view(log_weights),
                    self._log_unnormalised_at(nodes),
                    rule=cfg.cdf,
                )
        if not torch.isfinite(table.log_normaliser).all():
            bad = (~torch.isfinite(table.log_normaliser)).nonzero()[0].tolist()
            raise ValueError(
                f"prior component (q, p) = {tuple(bad)} has no finite mass on its quadrature "
                f"nodes (reference {cfg.reference!r}, domain "
                f"{self.layer.quadrature_domain()[bad[1 if self.rows_are_inputs else 0]].tolist()},"
                f" quadrature {cfg.quadrature!r} with {cfg.num_nodes} nodes): no node falls in the"
                " reference density's support, or the energy overflowed; use more nodes or"
                " another reference/grid range"
            )
        return table

    def log_normaliser(self) -> Tensor:
        """``log Z_qp`` by quadrature, ``(Q, P)``, differentiable."""
        return self.quadrature().log_normaliser

    # ------------------------------------------------------------------------------------------
    def grid_inputs(self, z: Tensor) -> Tensor:
        """The layer inputs ``(n, R)`` on which a grid update refits each row (maths 2.6)."""
        raise NotImplementedError

    @torch.no_grad()
    def update_grid(self, z: Tensor) -> None:
        """Refit the prior's grid to latents ``z`` (no-op for Fourier/Chebyshev bases)."""
        self.layer.update_grid(self.grid_inputs(z))

    # ------------------------------------------------------------------------------------------
    def _uniform(self, shape: tuple[int, ...], rng: torch.Generator | None) -> Tensor:
        return torch.rand(shape, generator=rng, device=self.layer.coef.device)

    @torch.no_grad()
    def export(self) -> dict[str, np.ndarray]:
        """Per-component densities for plots and files.

        Returns:
            ``nodes (R, n)`` (row p univariate, row q mixture), ``density (Q, P, n)`` normalised
            density values, ``cdf (Q, P, n)`` the CDF the sampler inverts (linear between nodes),
            ``reference (R, n)`` the reference density pi_0 at the nodes, ``log_normaliser (Q, P)``,
            ``rows_are_inputs`` (0-d bool): component ``(q, p)`` uses row p (else row q).
        """
        table = self.quadrature()
        rows = table.knots[0] if self.rows_are_inputs else table.knots[:, 0]
        reference = self.reference.log_pdf(rows.T).T.exp()
        return {
            "nodes": rows.detach().cpu().numpy(),
            "density": table.log_density.exp().cpu().numpy(),
            "cdf": table.cdf.cpu().numpy(),
            "reference": reference.cpu().numpy(),
            "log_normaliser": table.log_normaliser.cpu().numpy(),
            "rows_are_inputs": np.array(self.rows_are_inputs),
        }
