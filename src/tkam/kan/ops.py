"""The univariate-function layer's evaluations as PyTorch custom operators.

``phi_{i->o}(x) = w_spline[i, o] * sum_m coef[i, o, m] B_m(x; grid_i, tau) + w_base[i, o] * b(x)``
(maths 2.1; Chebyshev has neither ``w_spline`` nor the base branch) evaluated three ways:

- ``pairwise``: ``phi_{i->o}(z[s, o, i])``, every function at its own input (the univariate
  prior's log-density), ``(S, O, I) -> (S, O, I)``;
- ``outer``: ``phi_{i->o}(x[s, i])`` for every output, ``(S, I) -> (S, I, O)`` (quadrature nodes,
  the mixture prior, grid refits);
- ``summed``: ``sum_i phi_{i->o}(x[s, i])``, ``(S, I) -> (S, O)`` (generator and deep-prior
  layers): basis features ``(S, M+1, I)`` times laid-out weights ``(M+1, I, O)`` in one matmul.

Each is a ``torch.library`` custom operator (``tkam::kan_eval``, ``tkam::kan_features``,
``tkam::kan_weights``) with a hand-written backward (``..._backward`` operators) that recomputes
the basis values instead of storing them, so the forward and backward hold no ``(S, O, I, M)``
tensor. They run the fused C++ kernels of :mod:`tkam.kan.native` on CPU tensors and the Triton
kernels of :mod:`tkam.kan.triton_kernels` on CUDA tensors, and work with autograd,
``torch.compile`` and ``torch.func`` (first-order). The public functions below use them where
they apply (a built CPU library, an installed triton); otherwise (other devices, no compiler, no
triton) they run the eager PyTorch reference (``eager_*``), which is also the
``kernel = "eager"`` path of the layers.
"""

from __future__ import annotations

import ctypes
import functools
import math
import os

import torch
from torch import Tensor

from tkam.kan import bases, triton_kernels
from tkam.kan.codes import ACTIVATION_CODES, BASIS_CODES, compute_dtype
from tkam.kan.native import library

__all__ = [
    "BASIS_CODES",
    "ACTIVATION_CODES",
    "pairwise",
    "weighted_pairwise",
    "outer",
    "summed",
    "basis_values",
    "basis_by_input",
    "eager_basis",
    "eager_pairwise",
    "eager_weighted_pairwise",
    "eager_outer",
    "eager_summed",
]


# ---------------------------------------------------------------------------------------------
# Eager reference (any device): the formulas of maths 2.1-2.2 with materialised basis tensors.


def eager_basis(
    x: Tensor, grid: Tensor, tau: Tensor, bandwidth: Tensor, basis: str, degree: int, M: int
) -> Tensor:
    """Basis values ``(..., I) -> (..., I, M)`` (maths 2.2)."""
    if basis == "bspline":
        return bases.bspline_basis(x, grid, degree)
    if basis == "rbf":
        return bases.rbf_basis(x, grid, bandwidth, tau)
    if basis == "rswaf":
        return bases.rswaf_basis(x, grid, tau)
    if basis == "fourier":
        frequencies = torch.arange(M // 2, dtype=x.dtype, device=x.device)
        return bases.fourier_basis(x, frequencies, tau)
    return bases.chebyshev_basis(x, degree, tau)


def eager_pairwise(
    z: Tensor,
    coef: Tensor,
    w_spline: Tensor | None,
    w_base: Tensor | None,
    grid: Tensor,
    tau: Tensor,
    bandwidth: Tensor,
    basis: str,
    degree: int,
    activation: str,
) -> Tensor:
    """``phi_{i->o}(z[s, o, i])``: ``(S, O, I) -> (S, O, I)``."""
    b = eager_basis(z, grid, tau, bandwidth, basis, degree, coef.shape[-1])  # (S, O, I, M)
    out = torch.einsum("soim,iom->soi", b, coef)
    if w_spline is not None:
        out = out * w_spline.T
    if w_base is not None and activation != "none":
        out = out + bases.activation(activation)(z) * w_base.T
    return out


def eager_outer(
    x: Tensor,
    coef: Tensor,
    w_spline: Tensor | None,
    w_base: Tensor | None,
    grid: Tensor,
    tau: Tensor,
    bandwidth: Tensor,
    basis: str,
    degree: int,
    activation: str,
) -> Tensor:
    """``phi_{i->o}(x[s, i])``: ``(S, I) -> (S, I, O)``."""
    b = eager_basis(x, grid, tau, bandwidth, basis, degree, coef.shape[-1])  # (S, I, M)
    out = torch.einsum("sim,iom->sio", b, coef)
    if w_spline is not None:
        out = out * w_spline
    if w_base is not None and activation != "none":
        out = out + bases.activation(activation)(x).unsqueeze(-1) * w_base
    return out


def eager_summed(
    x: Tensor,
    coef: Tensor,
    w_spline: Tensor | None,
    w_base: Tensor | None,
    grid: Tensor,
    tau: Tensor,
    bandwidth: Tensor,
    basis: str,
    degree: int,
    activation: str,
) -> Tensor:
    """``sum_i phi_{i->o}(x[s, i])``: ``(S, I) -> (S, O)``, one matmul over ``(i, m)``."""
    scaled = coef if w_spline is None else coef * w_spline.unsqueeze(-1)
    b = eager_basis(x, grid, tau, bandwidth, basis, degree, coef.shape[-1])  # (S, I, M)
    out = b.flatten(-2) @ scaled.permute(0, 2, 1).reshape(-1, coef.shape[1])
    if w_base is not None and activation != "none":
        out = out + bases.activation(activation)(x) @ w_base
    return out


def _eager_features(x, grid, tau, bandwidth, basis, degree, activation, num_bases) -> Tensor:
    feats = eager_basis(x, grid, tau, bandwidth, basis, degree, num_bases).transpose(-1, -2)
    if activation != "none":
        feats = torch.cat([feats, bases.activation(activation)(x).unsqueeze(-2)], dim=-2)
    return feats.contiguous()


def _eager_weights(coef: Tensor, w_spline: Tensor | None, w_base: Tensor | None) -> Tensor:
    scaled = coef if w_spline is None else coef * w_spline.unsqueeze(-1)
    weights = scaled.permute(2, 0, 1)
    if w_base is not None:
        weights = torch.cat([weights, w_base.unsqueeze(0)], dim=0)
    return weights.contiguous()


# ---------------------------------------------------------------------------------------------
# Native CPU implementations.


def _ptr(t: Tensor | None) -> int | None:
    return None if t is None else t.data_ptr()


def _prepare(t: Tensor | None, dtype: torch.dtype) -> Tensor | None:
    return None if t is None else t.to(dtype).contiguous()


def _native(dtype: torch.dtype, name: str):
    lib = library()
    if lib is None:
        return None
    return getattr(lib, f"tkam_{name}_{'f64' if dtype == torch.float64 else 'f32'}")


def _spec(grid_t, tau, bandwidth, basis, degree, activation, I, O, M):
    """The kernels' integer and real arguments; ``grid_t`` is the ``(K, I)`` grid table."""
    t = float(tau.detach())
    scale = {
        "rbf": lambda: 1.0 / (float(bandwidth.detach()) * t),
        "rswaf": lambda: 1.0 / t,
        "fourier": lambda: 2.0 * math.pi * t,
        "chebyshev": lambda: 1.0 / t,
        "bspline": lambda: 0.0,
    }[basis]()
    dims = (ctypes.c_int64 * 7)(
        I, O, M, grid_t.shape[0], BASIS_CODES[basis], degree, ACTIVATION_CODES[activation]
    )
    reals = (ctypes.c_double * 2)(scale, t)
    return dims, reals


def _eval_tables(coef, w_spline, w_base, grid, activation, is_pairwise, dtype):
    """The kernel's tables: grid ``(K, I')``, coefficients ``(O', M, I')``, scales ``(O', I')``.

    Outer: ``I' = I``, ``O' = O``. Pairwise: every (o, i) has its own input, so it is the outer
    evaluation of one output over the flattened ``I' = O I`` columns, with the grid row of
    column ``(o, i)`` that of input i; the tables are small (the size of the coefficients).
    """
    I, O, M = coef.shape
    grid_t = grid.to(dtype).T  # (K, I)
    coef = coef.to(dtype)
    base = w_base if activation != "none" else None
    if is_pairwise:
        K = grid_t.shape[0]
        grid_t = grid_t.unsqueeze(1).expand(K, O, I).reshape(K, O * I)
        coef_t = coef.permute(2, 1, 0).reshape(1, M, O * I)
        flat = lambda w: None if w is None else w.to(dtype).T.reshape(1, O * I)
        return (grid_t.contiguous(), coef_t.contiguous(), flat(w_spline), flat(base), O * I, 1)
    coef_t = coef.permute(1, 2, 0).contiguous()  # (O, M, I)
    scale = lambda w: None if w is None else w.to(dtype).T.contiguous()
    return grid_t.contiguous(), coef_t, scale(w_spline), scale(base), I, O


def _threads() -> int:
    return torch.get_num_threads()


def _require(fn):
    if fn is None:
        raise RuntimeError(
            "the fused KAN kernels are unavailable (see the earlier warning); the layers use the "
            "eager code then, and the backward operators cannot run"
        )
    return fn


def _on_cpu(kernel, *args):
    """Run a CPU kernel on copies of the tensor arguments and return results on their device."""
    device = next(a.device for a in args if isinstance(a, Tensor))
    moved = [a.cpu() if isinstance(a, Tensor) else a for a in args]
    return tuple(t.to(device) for t in kernel(*moved))


@torch.compiler.assume_constant_result
def _library_available() -> bool:
    return library() is not None


@torch.compiler.assume_constant_result
@functools.lru_cache(maxsize=1)
def _triton_available() -> bool:
    """Whether CUDA tensors get the Triton kernels (installed as the operators' CUDA kernels on
    first use); ``TKAM_TRITON=0`` switches them off."""
    if os.environ.get("TKAM_TRITON", "1") == "0":
        return False
    if not triton_kernels.available():
        return False
    triton_kernels.register()
    return True


def native_applies(x: Tensor) -> bool:
    """Whether the fused operators run for this input: a CPU tensor with the built library, or a
    CUDA tensor with triton."""
    if x.device.type == "cuda":
        return _triton_available()
    return x.device.type == "cpu" and _library_available()


def _first_order_only(op):
    """An autograd.Function running the backward operator ``op``; differentiating it again raises.

    The backward operators are first-order only. Calling them through a Function (rather than
    directly) keeps torch.func transforms working, which record the backward pass.
    """

    class FirstOrderOnly(torch.autograd.Function):
        @staticmethod
        def forward(*inputs):
            return op(*inputs)

        @staticmethod
        def setup_context(ctx, inputs, output) -> None:
            pass

        @staticmethod
        def backward(ctx, *grads):
            raise RuntimeError(
                "second derivatives of the fused KAN kernels are not implemented; "
                "use kernel = 'eager' for higher-order gradients"
            )

    return FirstOrderOnly


def _call(op, function, *inputs):
    """Run operator ``op``, through ``function`` (its autograd.Function form) under torch.func.

    torch.func transforms need the Function form (``setup_context``); eager autograd and
    torch.compile's tracing use the operator and its registered autograd formula directly.
    """
    if torch._C._are_functorch_transforms_active():
        return function.apply(*inputs)
    return op(*inputs)


# ---------------------------------------------------------------------------------------------
# tkam::kan_eval (pairwise and outer)


@torch.library.custom_op("tkam::kan_eval", mutates_args=())
def _kan_eval(
    x: Tensor,
    coef: Tensor,
    w_spline: Tensor | None,
    w_base: Tensor | None,
    grid: Tensor,
    tau: Tensor,
    bandwidth: Tensor,
    basis: str,
    degree: int,
    activation: str,
    is_pairwise: bool,
) -> Tensor:
    """Pairwise ``(S, O, I) -> (S, O, I)`` or outer ``(S, I) -> (S, O, I)`` evaluation."""
    return _eval_reference(
        x, coef, w_spline, w_base, grid, tau, bandwidth, basis, degree, activation, is_pairwise
    )


def _eval_reference(x, coef, w_spline, w_base, grid, tau, bandwidth, basis, degree, activation,
                    is_pairwise):  # fmt: skip
    args = (x, coef, w_spline, w_base, grid, tau, bandwidth, basis, degree, activation)
    if is_pairwise:
        return eager_pairwise(*args)
    return eager_outer(*args).transpose(1, 2).contiguous()


@_kan_eval.register_kernel("cpu")
def _kan_eval_cpu(x, coef, w_spline, w_base, grid, tau, bandwidth, basis, degree, activation,
                  is_pairwise):  # fmt: skip
    dtype = compute_dtype(x, coef)
    fn = _native(dtype, "eval_fwd")
    if fn is None:
        return _eval_reference(
            x, coef, w_spline, w_base, grid, tau, bandwidth, basis, degree, activation,
            is_pairwise,
        )  # fmt: skip
    I, O, M = coef.shape
    S = x.shape[0]
    grid_t, coef_t, wsp_t, wb_t, I_, O_ = _eval_tables(
        coef, w_spline, w_base, grid, activation, is_pairwise, dtype
    )
    dims, reals = _spec(grid_t, tau, bandwidth, basis, degree, activation, I_, O_, M)
    xc = _prepare(x, dtype)
    out = torch.empty(S, O, I, dtype=dtype)
    fn(dims, reals, _ptr(grid_t), _ptr(coef_t), _ptr(wsp_t), _ptr(wb_t), _ptr(xc), S, _ptr(out),
       _threads())  # fmt: skip
    return out.to(torch.result_type(x, coef))


@_kan_eval.register_fake
def _kan_eval_fake(x, coef, w_spline, w_base, grid, tau, bandwidth, basis, degree, activation,
                   is_pairwise):  # fmt: skip
    S, O, I = x.shape[0], coef.shape[1], coef.shape[0]
    return x.new_empty(S, O, I, dtype=torch.result_type(x, coef))


@torch.library.custom_op("tkam::kan_eval_backward", mutates_args=())
def _kan_eval_backward(
    grad: Tensor,
    x: Tensor,
    coef: Tensor,
    w_spline: Tensor | None,
    w_base: Tensor | None,
    grid: Tensor,
    tau: Tensor,
    bandwidth: Tensor,
    basis: str,
    degree: int,
    activation: str,
    is_pairwise: bool,
    needs: list[bool],
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Gradients for (x, coef, w_spline, w_base, tau); empty where ``needs`` is false.

    The fused CPU kernel (Triton's on CUDA, once registered); tensors on other devices make a
    round trip through the CPU kernel (the layers use the eager code there instead).
    """
    return _on_cpu(
        _kan_eval_backward_cpu, grad, x, coef, w_spline, w_base, grid, tau, bandwidth, basis,
        degree, activation, is_pairwise, needs,
    )  # fmt: skip


@_kan_eval_backward.register_kernel("cpu")
def _kan_eval_backward_cpu(grad, x, coef, w_spline, w_base, grid, tau, bandwidth, basis, degree,
                           activation, is_pairwise, needs):  # fmt: skip
    dtype = compute_dtype(x, coef)
    fn = _require(_native(dtype, "eval_bwd"))
    I, O, M = coef.shape
    S = x.shape[0]
    need_x, need_coef, need_wsp, need_wb, need_tau = needs
    grid_t, coef_t, wsp_t, wb_t, I_, O_ = _eval_tables(
        coef, w_spline, w_base, grid, activation, is_pairwise, dtype
    )
    dims, reals = _spec(grid_t, tau, bandwidth, basis, degree, activation, I_, O_, M)
    xc, gc = _prepare(x, dtype), _prepare(grad, dtype)
    gx = torch.empty(xc.shape, dtype=dtype) if need_x else None
    g_coef = torch.empty(O_, M, I_, dtype=dtype) if need_coef else None
    g_wsp = torch.empty(O_, I_, dtype=dtype) if (need_wsp and wsp_t is not None) else None
    g_wb = torch.empty(O_, I_, dtype=dtype) if (need_wb and wb_t is not None) else None
    g_tau = torch.zeros((), dtype=dtype) if need_tau else None
    fn(dims, reals, _ptr(grid_t), _ptr(coef_t), _ptr(wsp_t), _ptr(wb_t), _ptr(xc), _ptr(gc), None,
       S, _ptr(gx), _ptr(g_coef), _ptr(g_wsp), _ptr(g_wb), _ptr(g_tau), None, _threads())  # fmt: skip
    if g_coef is not None:  # (O', M, I') -> (I, O, M), contiguous as the parameter
        g_coef = (
            g_coef.reshape(M, O, I).permute(2, 1, 0) if is_pairwise else g_coef.permute(2, 0, 1)
        )
        g_coef = g_coef.contiguous()
    scale = lambda g: g.reshape(O, I).T.contiguous()
    empty = lambda: grad.new_empty(0)
    if need_wb and w_base is not None and g_wb is None:  # base branch off: no gradient flows
        g_wb = torch.zeros(O, I, dtype=dtype)
    return (
        gx.to(x.dtype) if gx is not None else empty(),
        g_coef.to(coef.dtype) if g_coef is not None else empty(),
        scale(g_wsp).to(w_spline.dtype) if g_wsp is not None else empty(),
        scale(g_wb).to(w_base.dtype) if g_wb is not None else empty(),
        g_tau.to(tau.dtype) if g_tau is not None else empty(),
    )


@_kan_eval_backward.register_fake
def _kan_eval_backward_fake(grad, x, coef, w_spline, w_base, grid, tau, bandwidth, basis, degree,
                            activation, is_pairwise, needs):  # fmt: skip
    shapes = [x, coef, w_spline, w_base, tau]
    return tuple(
        torch.empty_like(t) if (need and t is not None) else grad.new_empty(0)
        for t, need in zip(shapes, needs)
    )


_EvalBackward = _first_order_only(_kan_eval_backward)


def _eval_setup(ctx, inputs, output) -> None:
    x, coef, w_spline, w_base, grid, tau, bandwidth, basis, degree, activation, is_pairwise = inputs
    ctx.save_for_backward(x, coef, w_spline, w_base, grid, tau, bandwidth)
    ctx.static = (basis, degree, activation, is_pairwise)


def _eval_backward(ctx, grad):
    x, coef, w_spline, w_base, grid, tau, bandwidth = ctx.saved_tensors
    needs = [bool(n) for n in (*ctx.needs_input_grad[:4], ctx.needs_input_grad[5])]
    gx, g_coef, g_wsp, g_wb, g_tau = _call(
        _kan_eval_backward, _EvalBackward, grad.contiguous(), x, coef, w_spline, w_base, grid, tau, bandwidth,
        *ctx.static, needs,
    )  # fmt: skip
    pick = lambda g, need: g if need else None
    return (
        pick(gx, needs[0]),
        pick(g_coef, needs[1]),
        pick(g_wsp, needs[2]),
        pick(g_wb, needs[3]),
        None,
        pick(g_tau, needs[4]),
        None,
        None,
        None,
        None,
        None,
    )


_kan_eval.register_autograd(_eval_backward, setup_context=_eval_setup)


# ---------------------------------------------------------------------------------------------
# tkam::kan_features and tkam::kan_weights (summed layers)


@torch.library.custom_op("tkam::kan_features", mutates_args=())
def _kan_features(
    x: Tensor,
    grid: Tensor,
    tau: Tensor,
    bandwidth: Tensor,
    basis: str,
    degree: int,
    activation: str,
    num_bases: int,
    by_input: bool,
) -> Tensor:
    """``(S, I) -> (S, M [+1], I)``: basis values, then ``b(x)`` as row M with a base branch; or,
    ``by_input`` (no base branch), ``(I, S, M)``: one matmul operand per input."""
    return _features_reference(x, grid, tau, bandwidth, basis, degree, activation, num_bases,
                               by_input)  # fmt: skip


def _features_reference(x, grid, tau, bandwidth, basis, degree, activation, num_bases, by_input):
    if by_input:
        values = eager_basis(x, grid, tau, bandwidth, basis, degree, num_bases)  # (S, I, M)
        return values.permute(1, 0, 2).contiguous()
    return _eager_features(x, grid, tau, bandwidth, basis, degree, activation, num_bases)


@_kan_features.register_kernel("cpu")
def _kan_features_cpu(x, grid, tau, bandwidth, basis, degree, activation, num_bases, by_input):
    dtype = compute_dtype(x)
    fn = _native(dtype, "features_fwd")
    if fn is None:
        return _features_reference(x, grid, tau, bandwidth, basis, degree, activation, num_bases,
                                   by_input)  # fmt: skip
    S, I = x.shape
    M = num_bases
    base = activation != "none" and not by_input
    grid_t = grid.to(dtype).T.contiguous()
    dims, reals = _spec(grid_t, tau, bandwidth, basis, degree, activation, I, 1, M)
    xc = _prepare(x, dtype)
    shape = (I, S, M) if by_input else (S, M + int(base), I)
    feats = torch.empty(shape, dtype=dtype)
    fn(dims, reals, _ptr(grid_t), _ptr(xc), S, int(base), int(by_input), _ptr(feats), _threads())
    return feats.to(x.dtype)


@_kan_features.register_fake
def _kan_features_fake(x, grid, tau, bandwidth, basis, degree, activation, num_bases, by_input):
    S, I = x.shape
    if by_input:
        return x.new_empty(I, S, num_bases)
    return x.new_empty(S, num_bases + int(activation != "none"), I)


@torch.library.custom_op("tkam::kan_features_backward", mutates_args=())
def _kan_features_backward(
    grad: Tensor,
    x: Tensor,
    grid: Tensor,
    tau: Tensor,
    bandwidth: Tensor,
    basis: str,
    degree: int,
    activation: str,
    num_bases: int,
    by_input: bool,
    needs: list[bool],
) -> tuple[Tensor, Tensor]:
    """Gradients for (x, tau) from the features' gradient (fused CPU kernel; Triton's on CUDA)."""
    return _on_cpu(
        _kan_features_backward_cpu, grad, x, grid, tau, bandwidth, basis, degree, activation,
        num_bases, by_input, needs,
    )  # fmt: skip


@_kan_features_backward.register_kernel("cpu")
def _kan_features_backward_cpu(grad, x, grid, tau, bandwidth, basis, degree, activation,
                               num_bases, by_input, needs):  # fmt: skip
    dtype = compute_dtype(x)
    fn = _require(_native(dtype, "features_bwd"))
    S, I = x.shape
    base = activation != "none" and not by_input
    grid_t = grid.to(dtype).T.contiguous()
    dims, reals = _spec(grid_t, tau, bandwidth, basis, degree, activation, I, 1, num_bases)
    xc, gc = _prepare(x, dtype), _prepare(grad, dtype)
    gx = torch.empty(S, I, dtype=dtype) if needs[0] else None
    g_tau = torch.zeros((), dtype=dtype) if needs[1] else None
    fn(dims, reals, _ptr(grid_t), _ptr(xc), _ptr(gc), S, int(base), int(by_input), _ptr(gx),
       _ptr(g_tau), _threads())  # fmt: skip
    return (
        gx.to(x.dtype) if gx is not None else grad.new_empty(0),
        g_tau.to(tau.dtype) if g_tau is not None else grad.new_empty(0),
    )


@_kan_features_backward.register_fake
def _kan_features_backward_fake(grad, x, grid, tau, bandwidth, basis, degree, activation,
                                num_bases, by_input, needs):  # fmt: skip
    return (
        torch.empty_like(x) if needs[0] else grad.new_empty(0),
        torch.empty_like(tau) if needs[1] else grad.new_empty(0),
    )


_FeaturesBackward = _first_order_only(_kan_features_backward)


def _features_setup(ctx, inputs, output) -> None:
    x, grid, tau, bandwidth, *static = inputs
    ctx.save_for_backward(x, grid, tau, bandwidth)
    ctx.static = tuple(static)


def _features_backward(ctx, grad):
    x, grid, tau, bandwidth = ctx.saved_tensors
    needs = [bool(ctx.needs_input_grad[0]), bool(ctx.needs_input_grad[2])]
    gx, g_tau = _call(
        _kan_features_backward,
        _FeaturesBackward,
        grad.contiguous(),
        x,
        grid,
        tau,
        bandwidth,
        *ctx.static,
        needs,
    )
    grads = (gx if needs[0] else None, None, g_tau if needs[1] else None)
    return grads + (None,) * 6


_kan_features.register_autograd(_features_backward, setup_context=_features_setup)


@torch.library.custom_op("tkam::kan_weights", mutates_args=())
def _kan_weights(coef: Tensor, w_spline: Tensor | None, w_base: Tensor | None) -> Tensor:
    """``W[m, i, o] = coef[i, o, m] w_spline[i, o]``, ``W[M, i, o] = w_base[i, o]``."""
    return _eager_weights(coef, w_spline, w_base)


@_kan_weights.register_kernel("cpu")
def _kan_weights_cpu(coef, w_spline, w_base):
    dtype = compute_dtype(coef)
    fn = _native(dtype, "weights_fwd")
    if fn is None:
        return _eager_weights(coef, w_spline, w_base)
    I, O, M = coef.shape
    out = torch.empty(M + int(w_base is not None), I, O, dtype=dtype)
    c, ws, wb = _prepare(coef, dtype), _prepare(w_spline, dtype), _prepare(w_base, dtype)
    fn(_ptr(c), _ptr(ws), _ptr(wb), I, O, M, _ptr(out), _threads())
    return out.to(coef.dtype)


@_kan_weights.register_fake
def _kan_weights_fake(coef, w_spline, w_base):
    I, O, M = coef.shape
    return coef.new_empty(M + int(w_base is not None), I, O)


@torch.library.custom_op("tkam::kan_weights_backward", mutates_args=())
def _kan_weights_backward(
    grad: Tensor, coef: Tensor, w_spline: Tensor | None, needs: list[bool]
) -> tuple[Tensor, Tensor]:
    """Gradients for (coef, w_spline) from the gradient of the laid-out weights."""
    M = coef.shape[-1]
    g = grad[:M].permute(1, 2, 0)  # (I, O, M)
    g_coef = (
        (g if w_spline is None else g * w_spline.unsqueeze(-1)) if needs[0] else grad.new_empty(0)
    )
    g_wsp = (g * coef).sum(-1) if (needs[1] and w_spline is not None) else grad.new_empty(0)
    return g_coef.contiguous(), g_wsp


@_kan_weights_backward.register_kernel("cpu")
def _kan_weights_backward_cpu(grad, coef, w_spline, needs):
    dtype = compute_dtype(coef)
    fn = _require(_native(dtype, "weights_bwd"))
    I, O, M = coef.shape
    c, ws, gW = _prepare(coef, dtype), _prepare(w_spline, dtype), _prepare(grad, dtype)
    g_coef = torch.empty(I, O, M, dtype=dtype) if needs[0] else None
    g_wsp = torch.empty(I, O, dtype=dtype) if (needs[1] and w_spline is not None) else None
    fn(_ptr(c), _ptr(ws), _ptr(gW), I, O, M, _ptr(g_coef), _ptr(g_wsp), _threads())
    return (
        g_coef.to(coef.dtype) if g_coef is not None else grad.new_empty(0),
        g_wsp.to(w_spline.dtype) if g_wsp is not None else grad.new_empty(0),
    )


@_kan_weights_backward.register_fake
def _kan_weights_backward_fake(grad, coef, w_spline, needs):
    return (
        torch.empty_like(coef) if needs[0] else grad.new_empty(0),
        torch.empty_like(w_spline) if (needs[1] and w_spline is not None) else grad.new_empty(0),
    )


_WeightsBackward = _first_order_only(_kan_weights_backward)


def _weights_setup(ctx, inputs, output) -> None:
    coef, w_spline, w_base = inputs
    ctx.save_for_backward(coef, w_spline)
    ctx.has_base = w_base is not None


def _weights_backward(ctx, grad):
    coef, w_spline = ctx.saved_tensors
    needs = [bool(ctx.needs_input_grad[0]), bool(ctx.needs_input_grad[1])]
    g_coef, g_wsp = _call(
        _kan_weights_backward, _WeightsBackward, grad.contiguous(), coef, w_spline, needs
    )
    g_wb = grad[coef.shape[-1]] if (ctx.has_base and ctx.needs_input_grad[2]) else None
    return (g_coef if needs[0] else None, g_wsp if needs[1] else None, g_wb)


_kan_weights.register_autograd(_weights_backward, setup_context=_weights_setup)


# ---------------------------------------------------------------------------------------------
# tkam::kan_weighted_pairwise: sum_s w_s sum_{o,i} phi_{i->o}(z[s, o, i]) and its parameter
# gradients in one pass (the prior term of the training losses, whose latents and weights are
# constants).


@torch.library.custom_op("tkam::kan_weighted_pairwise", mutates_args=())
def _kan_weighted_pairwise(
    z: Tensor,
    weights: Tensor,
    coef: Tensor,
    w_spline: Tensor | None,
    w_base: Tensor | None,
    grid: Tensor,
    tau: Tensor,
    bandwidth: Tensor,
    basis: str,
    degree: int,
    activation: str,
    needs: list[bool],
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """The weighted sum (a 0-d tensor) and the gradients of (coef, w_spline, w_base, tau) that
    ``needs`` asks for (empty tensors for the others); fused CPU kernel (Triton's on CUDA, a round
    trip through the CPU kernel elsewhere)."""
    return _on_cpu(
        _kan_weighted_pairwise_cpu, z, weights, coef, w_spline, w_base, grid, tau, bandwidth,
        basis, degree, activation, needs,
    )  # fmt: skip


@_kan_weighted_pairwise.register_kernel("cpu")
def _kan_weighted_pairwise_cpu(z, weights, coef, w_spline, w_base, grid, tau, bandwidth, basis,
                               degree, activation, needs):  # fmt: skip
    dtype = compute_dtype(z, coef)
    fn = _require(_native(dtype, "eval_bwd"))
    I, O, M = coef.shape
    S = z.shape[0]
    need_coef, need_wsp, need_wb, need_tau = needs
    grid_t, coef_t, wsp_t, wb_t, I_, O_ = _eval_tables(
        coef, w_spline, w_base, grid, activation, True, dtype
    )
    dims, reals = _spec(grid_t, tau, bandwidth, basis, degree, activation, I_, O_, M)
    zc, wc = _prepare(z, dtype), _prepare(weights, dtype)
    g_coef = torch.empty(O_, M, I_, dtype=dtype) if need_coef else None
    g_wsp = torch.empty(O_, I_, dtype=dtype) if (need_wsp and wsp_t is not None) else None
    g_wb = torch.empty(O_, I_, dtype=dtype) if (need_wb and wb_t is not None) else None
    g_tau = torch.zeros((), dtype=dtype) if need_tau else None
    value = torch.zeros((), dtype=dtype)
    fn(dims, reals, _ptr(grid_t), _ptr(coef_t), _ptr(wsp_t), _ptr(wb_t), _ptr(zc), None, _ptr(wc),
       S, None, _ptr(g_coef), _ptr(g_wsp), _ptr(g_wb), _ptr(g_tau), _ptr(value), _threads())  # fmt: skip
    empty = lambda: z.new_empty(0)
    if need_wb and w_base is not None and g_wb is None:  # base branch off: no gradient flows
        g_wb = torch.zeros(O, I, dtype=dtype)
    # Gradients laid out as the parameters (contiguous), as the fake implementation says.
    layout = lambda g, *order: g.permute(*order).contiguous()
    return (
        value.to(torch.result_type(z, coef)),
        layout(g_coef.reshape(M, O, I), 2, 1, 0).to(coef.dtype) if g_coef is not None else empty(),
        layout(g_wsp.reshape(O, I), 1, 0).to(w_spline.dtype) if g_wsp is not None else empty(),
        layout(g_wb.reshape(O, I), 1, 0).to(w_base.dtype) if g_wb is not None else empty(),
        g_tau.to(tau.dtype) if g_tau is not None else empty(),
    )


@_kan_weighted_pairwise.register_fake
def _kan_weighted_pairwise_fake(z, weights, coef, w_spline, w_base, grid, tau, bandwidth, basis,
                                degree, activation, needs):  # fmt: skip
    grads = [
        torch.empty_like(t) if (need and t is not None) else z.new_empty(0)
        for t, need in zip([coef, w_spline, w_base, tau], needs)
    ]
    return (z.new_empty((), dtype=torch.result_type(z, coef)), *grads)


class _WeightedPairwise(torch.autograd.Function):
    """Returns the weighted sum; its backward scales the gradients computed with it."""

    @staticmethod
    def forward(ctx, z, weights, coef, w_spline, w_base, grid, tau, bandwidth, basis, degree,
                activation):  # fmt: skip
        needs = [bool(n) for n in (*ctx.needs_input_grad[2:5], ctx.needs_input_grad[6])]
        value, *grads = _kan_weighted_pairwise(
            z, weights, coef, w_spline, w_base, grid, tau, bandwidth, basis, degree, activation,
            needs,
        )  # fmt: skip
        ctx.needs = needs
        ctx.save_for_backward(*grads)
        return value

    @staticmethod
    def backward(ctx, grad):
        g_coef, g_wsp, g_wb, g_tau = ctx.saved_tensors
        scaled = [
            grad * g if need else None for g, need in zip((g_coef, g_wsp, g_wb, g_tau), ctx.needs)
        ]
        return (None, None, scaled[0], scaled[1], scaled[2], None, scaled[3], None, None, None,
                None)  # fmt: skip


# ---------------------------------------------------------------------------------------------
# autograd.Function wrappers: the same backward as the operators' registrations, with the
# ``setup_context`` form that torch.func transforms (grad, vjp, jacrev) require.


def _function(op, setup, backward) -> type[torch.autograd.Function]:
    """An autograd.Function that runs the operator ``op`` with its registered backward."""

    class Function(torch.autograd.Function):
        @staticmethod
        def forward(*inputs):
            return op(*inputs)

        setup_context = staticmethod(setup)

    Function.backward = staticmethod(backward)
    return Function


# The registered operators (not the Python definitions), which torch.compile traces as such.
_Eval = _function(torch.ops.tkam.kan_eval.default, _eval_setup, _eval_backward)
_Features = _function(torch.ops.tkam.kan_features.default, _features_setup, _features_backward)
_Weights = _function(torch.ops.tkam.kan_weights.default, _weights_setup, _weights_backward)


# ---------------------------------------------------------------------------------------------
# Public functions


def pairwise(
    z: Tensor,
    coef: Tensor,
    w_spline: Tensor | None,
    w_base: Tensor | None,
    grid: Tensor,
    tau: Tensor,
    bandwidth: Tensor,
    basis: str,
    degree: int,
    activation: str,
) -> Tensor:
    """``phi_{i->o}(z[s, o, i])``: ``(S, O, I) -> (S, O, I)``, fused where it applies."""
    if not native_applies(z):
        return eager_pairwise(
            z, coef, w_spline, w_base, grid, tau, bandwidth, basis, degree, activation
        )
    return _call(
        _kan_eval,
        _Eval,
        z,
        coef,
        w_spline,
        w_base,
        grid,
        tau,
        bandwidth,
        basis,
        degree,
        activation,
        True,
    )


def outer(
    x: Tensor,
    coef: Tensor,
    w_spline: Tensor | None,
    w_base: Tensor | None,
    grid: Tensor,
    tau: Tensor,
    bandwidth: Tensor,
    basis: str,
    degree: int,
    activation: str,
) -> Tensor:
    """``phi_{i->o}(x[s, i])``: ``(S, I) -> (S, I, O)`` (a permuted view), fused where it applies.

    Every input's outputs share its basis values, so the contraction is one batched matmul,
    ``(S, M) @ (M, O)`` per input, of the fused basis values laid out ``(I, S, M)``.
    """
    if not native_applies(x):
        return eager_outer(
            x, coef, w_spline, w_base, grid, tau, bandwidth, basis, degree, activation
        )
    values = basis_by_input(x, grid, tau, bandwidth, basis, degree, coef.shape[-1])
    out = torch.bmm(values, coef.transpose(1, 2)).permute(1, 0, 2)  # (S, I, O)
    if w_spline is not None:
        out = out * w_spline
    if w_base is not None and activation != "none":
        out = out + bases.activation(activation)(x).unsqueeze(-1) * w_base
    return out


def basis_by_input(
    x: Tensor, grid: Tensor, tau: Tensor, bandwidth: Tensor, basis: str, degree: int, M: int
) -> Tensor:
    """Basis values ``(S, I) -> (I, S, M)`` (contiguous: a batched-matmul operand), fused."""
    return _call(_kan_features, _Features, x, grid, tau, bandwidth, basis, degree, "none", M, True)


def basis_values(
    x: Tensor, grid: Tensor, tau: Tensor, bandwidth: Tensor, basis: str, degree: int, M: int
) -> Tensor:
    """Basis values ``(S, I) -> (S, I, M)`` (a transposed view), fused where it applies."""
    if not native_applies(x):
        return eager_basis(x, grid, tau, bandwidth, basis, degree, M)
    feats = _call(
        _kan_features, _Features, x, grid, tau, bandwidth, basis, degree, "none", M, False
    )
    return feats.transpose(1, 2)


def weighted_pairwise(
    z: Tensor,
    weights: Tensor,
    coef: Tensor,
    w_spline: Tensor | None,
    w_base: Tensor | None,
    grid: Tensor,
    tau: Tensor,
    bandwidth: Tensor,
    basis: str,
    degree: int,
    activation: str,
) -> Tensor:
    """``sum_s weights[s] sum_{o,i} phi_{i->o}(z[s, o, i])``: ``(S, O, I), (S,) -> ()``.

    For constant latents and weights (the prior terms of the training losses) the fused kernel
    computes the value and every parameter gradient in one pass over the bases, half the work of
    an evaluation followed by its backward. Otherwise (gradients for ``z`` or the weights, or no
    fused kernel) it is the weighted sum of :func:`pairwise`.
    """
    args = (coef, w_spline, w_base, grid, tau, bandwidth, basis, degree, activation)
    if native_applies(z) and not (z.requires_grad or weights.requires_grad):
        return _WeightedPairwise.apply(z, weights, *args)
    return (pairwise(z, *args).sum(dim=(1, 2)) * weights).sum()


def eager_weighted_pairwise(z: Tensor, weights: Tensor, *args) -> Tensor:
    """The eager reference of :func:`weighted_pairwise`."""
    return (eager_pairwise(z, *args).sum(dim=(1, 2)) * weights).sum()


# Rows per summed-layer chunk without gradients: bounds the (rows, M+1, I) features buffer.
SUMMED_CHUNK = 2048


def summed(
    x: Tensor,
    coef: Tensor,
    w_spline: Tensor | None,
    w_base: Tensor | None,
    grid: Tensor,
    tau: Tensor,
    bandwidth: Tensor,
    basis: str,
    degree: int,
    activation: str,
) -> Tensor:
    """``sum_i phi_{i->o}(x[s, i])``: ``(S, I) -> (S, O)``, fused basis features and one matmul.

    Without gradients, large batches go through in chunks of :data:`SUMMED_CHUNK` rows so the
    features buffer stays bounded. Where no fused kernel applies the eager code runs.
    """
    if not native_applies(x):
        return eager_summed(
            x, coef, w_spline, w_base, grid, tau, bandwidth, basis, degree, activation
        )
    I, O, M = coef.shape
    base = w_base if activation != "none" else None
    weights = _call(_kan_weights, _Weights, coef, w_spline, base).reshape(-1, O)  # ((M+1) I, O)
    act = activation if base is not None else "none"

    def apply(rows: Tensor) -> Tensor:
        feats = _call(
            _kan_features, _Features, rows, grid, tau, bandwidth, basis, degree, act, M, False
        )
        return feats.reshape(rows.shape[0], -1) @ weights

    if torch.is_grad_enabled() or x.shape[0] <= SUMMED_CHUNK:
        return apply(x)
    return torch.cat([apply(chunk) for chunk in x.split(SUMMED_CHUNK)])
