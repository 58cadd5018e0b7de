"""A layer of learned univariate functions phi_{i->o} (maths 2.1-2.3, 2.6).

``phi_{i->o}(x) = w_base[i, o] * b(x) + w_sp[i, o] * sum_m coef[i, o, m] B_m(x; grid_i, tau)``
(Chebyshev: ``phi = s``, no base branch, no ``w_sp``). ``forward`` returns the unsummed
``(S, I, O)`` tensor; ``summed`` sums over inputs (generator), ``pairwise`` evaluates every
function at its own input (prior) and ``at_nodes`` at per-row quadrature nodes.

Every evaluation runs through :mod:`tkam.kan.ops` with the layer's :meth:`arguments` and its
``kernel``: the fused operators (``kernel = "fused"``, the default, where they apply) or the eager
PyTorch reference (``kernel = "eager"``); both compute the same maths.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from tkam.config import KANConfig
from tkam.kan import bases, eager, ops
from tkam.kan.arguments import BasisArgs, KANArgs

__all__ = ["UnivariateLayer", "least_squares"]

# Singular values below this fraction of the largest are dropped by the least-squares refits:
# the design and targets carry float32 precision, and keeping directions below it would turn
# rounding noise into large swings of the fitted coefficients between neighbouring fit points.
RCOND = 1e-5


def least_squares(design: Tensor, targets: Tensor) -> Tensor:
    """Minimum-norm least-squares solutions per batch row, in float64.

    By the eigendecomposition of the normal matrix ``A^T A = V diag(s^2) V^T``:
    ``x = V diag(1 / s^2) V^T A^T b`` over the directions with ``s >= RCOND * s_max``, the others
    dropped, so rank-deficient systems never fail. This is the truncated pseudo-inverse solution
    (what LAPACK's SVD-based ``gelsd`` gives) at a fraction of its cost for tall systems: two
    batched matmuls and an ``(M, M)`` eigendecomposition. Squaring the singular values costs
    nothing that matters in float64: the kept directions' eigenvalues (``>= 1e-10`` of the
    largest) carry relative errors near 1e-6, far below the float32 noise of the inputs that
    :data:`RCOND` already allows for.

    Args:
        design: ``(I, n, M)`` basis values.
        targets: ``(I, n, O)`` values to fit.

    Returns:
        ``(I, M, O)`` coefficients, in the dtype of ``targets``.
    """
    a = design.double()
    b = targets.double()
    at = a.transpose(-1, -2)
    eigenvalues, vectors = torch.linalg.eigh(at @ a)  # ascending
    keep = eigenvalues > RCOND**2 * eigenvalues[..., -1:]
    inverse = torch.where(keep, 1.0 / torch.where(keep, eigenvalues, 1.0), 0.0)
    projected = vectors.transpose(-1, -2) @ (at @ b)  # (I, M, O)
    solution = vectors @ (inverse.unsqueeze(-1) * projected)
    return solution.to(targets.dtype)


class UnivariateLayer(nn.Module):
    """``I x O`` learned univariate functions sharing one basis family.

    Args:
        in_dim: I, number of inputs (grid rows).
        out_dim: O, number of outputs per input.
        config: the KAN section of the config.
        grid_range: initial grid/domain range; ``config.grid_range`` when omitted (the prior
            passes its reference density's domain, maths 2.2).
        rng: random stream for the initialisation.
    """

    grid: Tensor
    bandwidth: Tensor
    domain: Tensor

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        config: KANConfig,
        grid_range: tuple[float, float] | None = None,
        rng: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.in_dim, self.out_dim = in_dim, out_dim
        self.basis_name = config.basis
        self.grid_size = 1 if config.basis == "chebyshev" else config.grid_size
        self.degree = config.spline_degree if config.basis in ("bspline", "chebyshev") else 0
        self.grid_update_ratio = config.grid_update_ratio
        self.activation_name = "none" if config.basis == "chebyshev" else config.base_activation
        self.activation = bases.activation(self.activation_name)
        self.kernel = config.kernel
        self.compat_rbf_refit = config.compat_rbf_refit
        self.num_bases = bases.num_bases(self.basis_name, self.grid_size, self.degree)
        lo, hi = grid_range if grid_range is not None else config.grid_range
        I, O, G = in_dim, out_dim, self.grid_size

        # The fixed domain is used by the quadrature of bases without a grid (Fourier, Chebyshev).
        dtype = torch.get_default_dtype()
        self.register_buffer("domain", torch.tensor([[lo, hi]], dtype=dtype).repeat(I, 1))
        points = torch.linspace(lo, hi, G + 1).repeat(I, 1)  # (I, G+1)
        grid = bases.extend_grid(points, self.degree) if self.basis_name == "bspline" else points
        self.register_buffer("grid", grid if config.grid_based else torch.empty(I, 0))
        self.register_buffer("bandwidth", torch.tensor(self._rbf_bandwidth(points)))

        tau = torch.tensor(float(config.init_tau))
        if config.tau_trainable and self.basis_name != "bspline":
            self.tau = nn.Parameter(tau)
        else:
            self.register_buffer("tau", tau)

        def normal(*shape: int, std: float) -> Tensor:
            return torch.randn(*shape, generator=rng) * std

        glorot = math.sqrt(2.0 / (I + O))
        if self.basis_name != "chebyshev":
            if self.activation_name != "none":
                eta = normal(I, O, std=1.0)
                scale = config.mu_scale / math.sqrt(I) + config.sigma_base * (
                    2 * eta - 1
                ) / math.sqrt(I)
                self.w_base = nn.Parameter(normal(I, O, std=glorot) * scale)
            self.w_spline = nn.Parameter(normal(I, O, std=glorot) * config.sigma_spline)

        if config.grid_based:
            u = torch.rand(I, O, G + 1, generator=rng)
            values = (u - 0.5) * config.eps_scale / G  # (I, O, G+1) target curve at grid points
            # The eager basis, so that both kernels start from the very same coefficients.
            design = eager.basis(points.T.contiguous(), self.basis_arguments())
            design = design.permute(1, 0, 2)  # (I, G+1, M)
            coef = least_squares(design, values.permute(0, 2, 1)).permute(0, 2, 1)  # (I, O, M)
        elif self.basis_name == "fourier":
            raw = normal(2, I, O, G + 1, std=math.sqrt(1.0 / (I * (O + G + 1))))
            k = torch.arange(G + 1, dtype=dtype)
            raw = raw / (math.sqrt(I) * (k + 1).square())
            coef = torch.cat([raw[0], raw[1]], dim=-1)  # (I, O, 2(G+1)): cosines, then sines
        else:  # chebyshev
            D = self.degree
            coef = normal(I, O, D + 1, std=math.sqrt(2.0 / (I * (O + D + 1)))) / (I * (D + 1))
        self.coef = nn.Parameter(coef.contiguous())
        self._summed = self._summed_impl
        self._pairwise = self._pairwise_impl

    def _load_from_state_dict(
        self, state_dict: dict, prefix: str, *args: Any, **kwargs: Any
    ) -> None:
        # Files written before the unused ``frequencies`` buffer was removed still hold it.
        state_dict.pop(prefix + "frequencies", None)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    # ------------------------------------------------------------------------------------------
    def _rbf_bandwidth(self, points: Tensor) -> float:
        # One scalar over the whole layer grid (maths 2.2): (max - min) / (K - 1).
        return float((points.max() - points.min()) / max(points.shape[-1] - 1, 1))

    @property
    def has_grid(self) -> bool:
        """Whether grid updates apply (B-spline, RBF, RSWAF)."""
        return self.basis_name in ("bspline", "rbf", "rswaf")

    def quadrature_domain(self) -> Tensor:
        """``(I, 2)`` integration limits per row: the grid's extent, or the fixed domain."""
        if self.has_grid:
            return torch.stack([self.grid.min(dim=1).values, self.grid.max(dim=1).values], dim=1)
        return self.domain

    def arguments(self, spline_only: bool = False) -> KANArgs:
        """The operators' arguments after the input: parameters, grid state and static choices;
        ``spline_only``: the spline part alone (no ``w_spline``, no base branch)."""
        chebyshev = self.basis_name == "chebyshev"
        return KANArgs(
            coef=self.coef,
            w_spline=None if (chebyshev or spline_only) else self.w_spline,
            w_base=None if (spline_only or self.activation_name == "none") else self.w_base,
            grid=self.grid,
            tau=self.tau,
            bandwidth=self.bandwidth,
            basis=self.basis_name,
            degree=self.degree,
            activation="none" if spline_only else self.activation_name,
        )

    def basis_arguments(self) -> BasisArgs:
        """What the basis values depend on (the grid state and static choices)."""
        return BasisArgs(
            self.grid, self.tau, self.bandwidth, self.basis_name, self.degree, self.num_bases
        )

    def basis(self, x: Tensor) -> Tensor:
        """Basis values ``(..., I) -> (..., I, M)`` (fused for ``(S, I)`` inputs)."""
        return ops.basis_values(x, self.basis_arguments(), self.kernel)

    def spline(self, x: Tensor) -> Tensor:
        """The spline part ``s_io(x_i)`` alone, ``(S, I) -> (S, I, O)`` (what grid updates refit)."""
        return ops.outer(x, self.arguments(spline_only=True), self.kernel)

    def forward(self, x: Tensor) -> Tensor:
        """``phi_{i->o}(x_{s,i})``: ``(S, I) -> (S, I, O)``."""
        return ops.outer(x, self.arguments(), self.kernel)

    def compile_kernels(self, **options) -> None:  # noqa: ANN003 - torch.compile's options
        """Compile the hot evaluations (``summed``, ``pairwise``) with ``torch.compile``.

        For the eager kernel this fuses the basis expansion with its contraction (about 3x on
        the univariate log-prior on CPU; tens of seconds of compilation per shape family); the
        fused kernel is already one operator per evaluation, which the compiled graph calls.
        """
        options.setdefault("dynamic", True)
        self._summed = torch.compile(self._summed_impl, **options)
        self._pairwise = torch.compile(self._pairwise_impl, **options)

    def summed(self, x: Tensor) -> Tensor:
        """``sum_i phi_{i->o}(x_{s,i})``: ``(S, I) -> (S, O)``, a generator layer.

        One matmul of the ``(S, I*M)`` basis values with the ``(I*M, O)`` scaled coefficients, so
        the ``(S, I, O)`` tensor of single functions never exists.
        """
        return self._summed(x)

    def pairwise(self, z: Tensor) -> Tensor:
        """``phi_{i->o}(z_{s,o,i})`` where every (o, i) has its own input: ``(S, O, I) -> (S, O, I)``."""
        return self._pairwise(z)

    def weighted_pairwise(self, z: Tensor, weights: Tensor) -> Tensor:
        """``sum_s weights[s] sum_{o,i} phi_{i->o}(z_{s,o,i})``: ``(S, O, I), (S,) -> ()``; fused,
        the value and its parameter gradients come from one pass (constant ``z`` and weights)."""
        if self.kernel == "fused":
            return ops.weighted_pairwise(z, weights, self.arguments())
        # The eager kernel: through self.pairwise, which compile_kernels may have compiled.
        return (self.pairwise(z).sum(dim=(1, 2)) * weights).sum()

    def _summed_impl(self, x: Tensor) -> Tensor:
        return ops.summed(x, self.arguments(), self.kernel)

    def _pairwise_impl(self, z: Tensor) -> Tensor:
        return ops.pairwise(z, self.arguments(), self.kernel)

    def at_nodes(self, nodes: Tensor) -> Tensor:
        """Evaluate at per-row quadrature nodes: ``(I, N) -> (N, I, O)``."""
        return self.forward(nodes.T)

    # ------------------------------------------------------------------------------------------
    @torch.no_grad()
    def update_grid(self, x: Tensor) -> None:
        """Refit the grid to the inputs ``x: (n, I)`` and keep the spline curve (maths 2.6).

        The knots blend the sample quantiles with a uniform grid over the sample range
        (weight ``grid_update_ratio`` on the uniform one); the coefficients are the least-squares
        fit of the new basis to the old spline curve at the sorted inputs. Rows whose inputs
        collapse to one value keep their old grid.

        The old curve is ``coef_old @ B_old(x)``, linear in the old coefficients, so the fit is
        one transfer matrix per row, ``T = B_new(x)^+ B_old(x)`` (``(M, M)``), applied to every
        output's coefficients: the least-squares problem has M right-hand sides instead of O,
        and the same solution up to rounding (float64 throughout, no float32 curve).
        """
        if not self.has_grid:
            return
        if x.dim() != 2 or x.shape[1] != self.in_dim:
            raise ValueError(f"update_grid expects inputs (n, {self.in_dim}), got {tuple(x.shape)}")
        n, G = x.shape[0], self.grid_size
        xs = torch.sort(x.to(self.coef.dtype), dim=0).values  # (n, I)
        old_design = ops.basis_rows(xs, self.basis_arguments(), self.kernel)  # (I, n, M), old grid
        index = (torch.arange(G, device=x.device) * n) // G
        adaptive = torch.cat([xs[index], xs[-1:]], dim=0).T  # (I, G+1)
        lo, hi = adaptive[:, :1], adaptive[:, -1:]
        steps = torch.arange(G + 1, dtype=xs.dtype, device=x.device) / G
        uniform = lo + steps * (hi - lo)
        r = self.grid_update_ratio
        points = r * uniform + (1 - r) * adaptive
        collapsed = (hi - lo).squeeze(1) <= 1e-6 * (1 + lo.abs().squeeze(1))
        new_grid = (
            bases.extend_grid(points, self.degree) if self.basis_name == "bspline" else points
        )
        new_grid = torch.where(collapsed[:, None], self.grid, new_grid)
        self.grid.copy_(new_grid)
        rbf = self.basis_name == "rbf"
        if rbf and not self.compat_rbf_refit:
            # The reference refits with the old bandwidth and changes it afterwards (maths 2.6
            # step 7), which moves the curve it just fitted; refit with the bandwidth it will use.
            self.bandwidth.fill_(self._rbf_bandwidth(self.grid))
        design = ops.basis_rows(xs, self.basis_arguments(), self.kernel)  # (I, n, M)
        transfer = least_squares(design, old_design.double())  # (I, M, M_old), float64
        coef = (self.coef.double() @ transfer.transpose(1, 2)).to(self.coef.dtype)  # (I, O, M)
        if rbf and self.compat_rbf_refit:
            self.bandwidth.fill_(self._rbf_bandwidth(self.grid))
        # A collapsed row keeps its grid, so it keeps its coefficients too.
        self.coef.copy_(torch.where(collapsed[:, None, None], self.coef, coef))
