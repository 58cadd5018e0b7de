"""The univariate-function layer's evaluations, each run natively or eagerly by one rule.

``phi_{i->o}(x) = w_spline[i, o] * sum_m coef[i, o, m] B_m(x; grid_i, tau) + w_base[i, o] * b(x)``
(maths 2.1; Chebyshev has neither ``w_spline`` nor the base branch) evaluated three ways:

- :func:`pairwise`: ``phi_{i->o}(z[s, o, i])``, every function at its own input (the univariate
  prior's log-density), ``(S, O, I) -> (S, O, I)``;
- :func:`outer`: ``phi_{i->o}(x[s, i])`` for every output, ``(S, I) -> (S, I, O)`` (quadrature
  nodes, the mixture prior, grid refits);
- :func:`summed`: ``sum_i phi_{i->o}(x[s, i])``, ``(S, I) -> (S, O)`` (generator and deep-prior
  layers): basis features ``(S, M+1, I)`` times laid-out weights ``(M+1, I, O)`` in one matmul.

Each takes the input, the layer's :class:`~tkam.kan.arguments.KANArgs` (``layer.arguments()``)
and its ``kernel`` setting. Where :func:`~tkam.kan.native.native_applies` says so (``kernel =
"fused"``, a CPU tensor with the built library or a CUDA tensor with triton) it runs the custom
operators of :mod:`tkam.kan.operators`; otherwise the eager PyTorch reference of
:mod:`tkam.kan.eager` (also here as ``eager_*``).
"""

from __future__ import annotations

from typing import Any, cast

import torch
from torch import Tensor

from tkam.kan import eager
from tkam.kan.arguments import BasisArgs, KANArgs
from tkam.kan.native import native_applies
from tkam.kan.operators import (
    Eval,
    Features,
    WeightedPairwise,
    Weights,
    call,
    kan_eval,
    kan_features,
    kan_weights,
)

__all__ = [
    "native_applies",
    "pairwise",
    "weighted_pairwise",
    "outer",
    "summed",
    "basis_values",
    "basis_by_input",
    "basis_rows",
    "contract",
    "eager_basis",
    "eager_pairwise",
    "eager_weighted_pairwise",
    "eager_outer",
    "eager_summed",
]

eager_basis = eager.basis
eager_pairwise = eager.pairwise
eager_weighted_pairwise = eager.weighted_pairwise
eager_outer = eager.outer
eager_summed = eager.summed


def pairwise(z: Tensor, args: KANArgs, kernel: str = "fused") -> Tensor:
    """``phi_{i->o}(z[s, o, i])``: ``(S, O, I) -> (S, O, I)``."""
    if not native_applies(z, kernel=kernel):
        return eager.pairwise(z, args)
    return call(kan_eval, Eval, z, *args, True)


def outer(x: Tensor, args: KANArgs, kernel: str = "fused") -> Tensor:
    """``phi_{i->o}(x[s, i])``: ``(S, I) -> (S, I, O)`` (a permuted view where fused).

    Every input's outputs share its basis values, so the contraction is one batched matmul,
    ``(S, M) @ (M, O)`` per input, of the fused basis values laid out ``(I, S, M)``.
    """
    if not native_applies(x, kernel=kernel):
        return eager.outer(x, args)
    values = basis_by_input(x, args.basis_args())
    splines = torch.bmm(values, args.coef.transpose(1, 2)).permute(1, 0, 2)  # (S, I, O)
    return eager.scale_outer(splines, x, args)


def basis_by_input(x: Tensor, b: BasisArgs) -> Tensor:
    """Basis values ``(S, I) -> (I, S, M)`` (contiguous: a batched-matmul operand), fused; for
    callers that have checked :func:`native_applies`."""
    return call(kan_features, Features, x, *b, "none", True)


def basis_rows(x: Tensor, b: BasisArgs, kernel: str = "fused") -> Tensor:
    """Basis values ``(S, I) -> (I, S, M)``, contiguous (the grid refits' design matrices):
    the fused layout where it applies, else the eager values permuted once."""
    if native_applies(x, kernel=kernel):
        return basis_by_input(x, b)
    return eager.basis(x, b).permute(1, 0, 2).contiguous()


def basis_values(x: Tensor, b: BasisArgs, kernel: str = "fused") -> Tensor:
    """Basis values ``(..., I) -> (..., I, M)`` (a transposed view where fused: ``(S, I)``
    inputs)."""
    if x.dim() != 2 or not native_applies(x, kernel=kernel):
        return eager.basis(x, b)
    return call(kan_features, Features, x, *b, "none", False).transpose(1, 2)


def weighted_pairwise(z: Tensor, weights: Tensor, args: KANArgs, kernel: str = "fused") -> Tensor:
    """``sum_s weights[s] sum_{o,i} phi_{i->o}(z[s, o, i])``: ``(S, O, I), (S,) -> ()``.

    For constant latents and weights (the prior terms of the training losses) the fused kernel
    computes the value and every parameter gradient in one pass over the bases, half the work of
    an evaluation followed by its backward. Otherwise (gradients for ``z`` or the weights, or no
    fused kernel) it is the weighted sum of :func:`pairwise`.
    """
    if native_applies(z, kernel=kernel) and not (z.requires_grad or weights.requires_grad):
        return WeightedPairwise.apply(z, weights, *args)
    return (pairwise(z, args, kernel).sum(dim=(1, 2)) * weights).sum()


#: The active-row backward of :class:`ActiveRowsMatmul` runs where at most this share of the
#: output gradient's rows is nonzero (below it, gathering the rows costs less than it saves).
ACTIVE_ROWS_SHARE = 0.8


class ActiveRowsMatmul(torch.autograd.Function):
    """``x @ w`` whose backward skips the rows of the output gradient that are exactly zero.

    A zero row of ``dY`` adds nothing to ``dW = x^T dY`` and gives a zero row of
    ``dx = dY w^T``: the importance-sampling loss weights its N proposals by their posterior
    weights, and after resampling most carry none (``mean ESS`` near 1 on images), so the
    generator's weight and input gradients need only the proposals in use. Exact (the same sums
    without their zero terms); where most rows are nonzero (the VAE, the Langevin losses) it is
    the plain matmul's backward.
    """

    @staticmethod
    def forward(ctx: Any, x: Tensor, w: Tensor) -> Tensor:
        ctx.save_for_backward(x, w)
        return x @ w

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, Tensor | None]:
        x, w = ctx.saved_tensors
        want_x, want_w = ctx.needs_input_grad[:2]
        rows = torch.nonzero((grad != 0).any(dim=1)).squeeze(1)
        if rows.numel() > ACTIVE_ROWS_SHARE * grad.shape[0]:
            return (grad @ w.T if want_x else None), (x.T @ grad if want_w else None)
        active = grad.index_select(0, rows)
        grad_x = None
        if want_x:
            grad_x = grad.new_zeros(x.shape).index_copy_(0, rows, active @ w.T)
        grad_w = x.index_select(0, rows).T @ active if want_w else None
        return grad_x, grad_w


def contract(x: Tensor, w: Tensor) -> Tensor:
    """``x @ w`` for a generator layer: with gradients on CPU, through :class:`ActiveRowsMatmul`
    (its row test synchronises, which only a CPU does for free; compiled graphs, torch.func
    transforms and autocast regions keep the plain matmul)."""
    needs = torch.is_grad_enabled() and (x.requires_grad or w.requires_grad)
    transformed = torch.compiler.is_compiling() or torch._C._are_functorch_transforms_active()
    mixed = torch.is_autocast_enabled(x.device.type)  # autocast casts the plain matmul only
    if not needs or x.device.type != "cpu" or transformed or mixed:
        return x @ w
    return cast(Tensor, ActiveRowsMatmul.apply(x, w))


# Rows per summed-layer chunk without gradients: bounds the (rows, M+1, I) features buffer.
SUMMED_CHUNK = 2048


def summed(x: Tensor, args: KANArgs, kernel: str = "fused") -> Tensor:
    """``sum_i phi_{i->o}(x[s, i])``: ``(S, I) -> (S, O)``, fused basis features and one matmul.

    Without gradients, large batches go through in chunks of :data:`SUMMED_CHUNK` rows so the
    features buffer stays bounded. Where no fused kernel applies the eager code runs.
    """
    if not native_applies(x, kernel=kernel):
        return eager.summed(x, args)
    O = args.coef.shape[1]
    base = args.base()
    weights = call(kan_weights, Weights, args.coef, args.w_spline, base).reshape(-1, O)
    activation = args.activation if base is not None else "none"
    b = args.basis_args()

    def apply(rows: Tensor) -> Tensor:
        feats = call(kan_features, Features, rows, *b, activation, False)
        return contract(feats.reshape(rows.shape[0], -1), weights)  # ((M+1) I, O) weights

    if torch.is_grad_enabled() or x.shape[0] <= SUMMED_CHUNK:
        return apply(x)
    return torch.cat([apply(chunk) for chunk in x.split(SUMMED_CHUNK)])
