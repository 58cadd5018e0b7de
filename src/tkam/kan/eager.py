"""The eager PyTorch reference of the KAN operators (any device, any dtype): the formulas
of maths 2.1-2.2 with materialised basis tensors.

It is the ``kernel = "eager"`` path of the layers, what runs where no native kernel applies
(:func:`tkam.kan.native.native_applies`), and the default implementation of the operators of
:mod:`tkam.kan.operators`; the fused CPU and Triton kernels compute the same functions.
"""

from __future__ import annotations

import torch
from torch import Tensor

from tkam.kan import bases
from tkam.kan.arguments import BasisArgs, KANArgs

__all__ = [
    "basis",
    "pairwise",
    "outer",
    "scale_outer",
    "summed",
    "weighted_pairwise",
    "evaluate",
    "features",
    "weights",
]


def basis(x: Tensor, b: BasisArgs) -> Tensor:
    """Basis values ``(..., I) -> (..., I, M)`` (maths 2.2)."""
    if b.basis == "bspline":
        return bases.bspline_basis(x, b.grid, b.degree)
    if b.basis == "rbf":
        return bases.rbf_basis(x, b.grid, b.bandwidth, b.tau)
    if b.basis == "rswaf":
        return bases.rswaf_basis(x, b.grid, b.tau)
    if b.basis == "fourier":
        frequencies = torch.arange(b.num_bases // 2, dtype=x.dtype, device=x.device)
        return bases.fourier_basis(x, frequencies, b.tau)
    return bases.chebyshev_basis(x, b.degree, b.tau)


def pairwise(z: Tensor, args: KANArgs) -> Tensor:
    """``phi_{i->o}(z[s, o, i])``: ``(S, O, I) -> (S, O, I)``."""
    b = basis(z, args.basis_args())  # (S, O, I, M)
    out = torch.einsum("soim,iom->soi", b, args.coef)
    if args.w_spline is not None:
        out = out * args.w_spline.T
    w_base = args.base()
    if w_base is not None:
        out = out + bases.activation(args.activation)(z) * w_base.T
    return out


def outer(x: Tensor, args: KANArgs) -> Tensor:
    """``phi_{i->o}(x[s, i])``: ``(S, I) -> (S, I, O)``."""
    b = basis(x, args.basis_args())  # (S, I, M)
    return scale_outer(torch.einsum("sim,iom->sio", b, args.coef), x, args)


def scale_outer(splines: Tensor, x: Tensor, args: KANArgs) -> Tensor:
    """``w_spline * splines + w_base * b(x)`` from the spline sums ``(S, I, O)`` of an outer
    evaluation at ``x (S, I)``."""
    out = splines
    if args.w_spline is not None:
        out = out * args.w_spline
    w_base = args.base()
    if w_base is not None:
        out = out + bases.activation(args.activation)(x).unsqueeze(-1) * w_base
    return out


def summed(x: Tensor, args: KANArgs) -> Tensor:
    """``sum_i phi_{i->o}(x[s, i])``: ``(S, I) -> (S, O)``, one matmul over ``(i, m)``."""
    coef = args.coef
    scaled = coef if args.w_spline is None else coef * args.w_spline.unsqueeze(-1)
    b = basis(x, args.basis_args())  # (S, I, M)
    out = b.flatten(-2) @ scaled.permute(0, 2, 1).reshape(-1, coef.shape[1])
    w_base = args.base()
    if w_base is not None:
        out = out + bases.activation(args.activation)(x) @ w_base
    return out


def weighted_pairwise(z: Tensor, weights: Tensor, args: KANArgs) -> Tensor:
    """``sum_s weights[s] sum_{o,i} phi_{i->o}(z[s, o, i])``: ``(S, O, I), (S,) -> ()``."""
    return (pairwise(z, args).sum(dim=(1, 2)) * weights).sum()


def evaluate(x: Tensor, args: KANArgs, is_pairwise: bool) -> Tensor:
    """Pairwise ``(S, O, I) -> (S, O, I)`` or outer ``(S, I) -> (S, O, I)`` (``tkam::kan_eval``)."""
    if is_pairwise:
        return pairwise(x, args)
    return outer(x, args).transpose(1, 2).contiguous()


def features(x: Tensor, b: BasisArgs, activation: str, by_input: bool = False) -> Tensor:
    """``(S, I) -> (S, M [+1], I)``: basis values, then ``b(x)`` as row M unless ``activation``
    is ``none``; or, ``by_input`` (no base row), ``(I, S, M)`` (``tkam::kan_features``)."""
    if by_input:
        return basis(x, b).permute(1, 0, 2).contiguous()  # (S, I, M) -> (I, S, M)
    feats = basis(x, b).transpose(-1, -2)
    if activation != "none":
        feats = torch.cat([feats, bases.activation(activation)(x).unsqueeze(-2)], dim=-2)
    return feats.contiguous()


def weights(coef: Tensor, w_spline: Tensor | None, w_base: Tensor | None) -> Tensor:
    """``W[m, i, o] = coef[i, o, m] w_spline[i, o]``, ``W[M, i, o] = w_base[i, o]``
    (``tkam::kan_weights``)."""
    scaled = coef if w_spline is None else coef * w_spline.unsqueeze(-1)
    out = scaled.permute(2, 0, 1)
    if w_base is not None:
        out = torch.cat([out, w_base.unsqueeze(0)], dim=0)
    return out.contiguous()
