"""Every call into the compiled CPU library (:mod:`tkam.kan.native`), behind typed functions.

This is the one module that hands tensor pointers to native code: the CPU kernels of the KAN
operators (:mod:`tkam.kan.operators` registers them) and the prior's fused quadrature table and
inverse-transform sampling (:mod:`tkam.prior.quadrature`, :mod:`tkam.prior.inverse_transform`).
Each function lays its tensors out as the C entry point expects (contiguous, in the compute
dtype), allocates the outputs, calls the entry point with ``torch.get_num_threads()`` threads and
returns tensors; the callers decide whether native code runs at all
(:func:`tkam.kan.native.native_applies`), and these functions raise where the library is missing.
"""

from __future__ import annotations

import ctypes
import math
from typing import Literal, overload

import torch
from torch import Tensor

from tkam.kan.arguments import BasisArgs, KANArgs
from tkam.kan.codes import ACTIVATION_CODES, BASIS_CODES, compute_dtype
from tkam.kan.native import library

__all__ = [
    "evaluate",
    "evaluate_backward",
    "weighted_pairwise",
    "features",
    "features_backward",
    "weights",
    "weights_backward",
    "quadrature_table",
    "guide_table",
    "invert_rows",
    "invert_shared_lanes",
    "invert_shared_sorted",
]


def _run(name: str, *arguments):
    """Call entry point ``name`` with ``arguments`` and the thread count: tensors go as pointers
    to their data (``None`` as a null pointer). The tensors are held here until it returns."""
    lib = library()
    if lib is None:
        raise RuntimeError(
            "the fused KAN kernels are unavailable (see the earlier warning); the layers use the "
            "eager code then, and the backward operators cannot run"
        )
    pointers = [a.data_ptr() if isinstance(a, Tensor) else a for a in arguments]
    return getattr(lib, name)(*pointers, torch.get_num_threads())


def _typed(name: str, dtype: torch.dtype) -> str:
    return f"tkam_{name}_{'f64' if dtype == torch.float64 else 'f32'}"


@overload
def _prepare(t: Tensor, dtype: torch.dtype) -> Tensor: ...


@overload
def _prepare(t: None, dtype: torch.dtype) -> None: ...


@overload
def _prepare(t: Tensor | None, dtype: torch.dtype) -> Tensor | None: ...


def _prepare(t: Tensor | None, dtype: torch.dtype) -> Tensor | None:
    return None if t is None else t.to(dtype).contiguous()


# ---------------------------------------------------------------------------------------------
# The KAN operators


def _spec(b: BasisArgs, activation: str, grid_t: Tensor, I: int, O: int):
    """The kernels' integer and real arguments; ``grid_t`` is the ``(K, I)`` grid table."""
    t = float(b.tau.detach())
    scale = {
        "rbf": lambda: 1.0 / (float(b.bandwidth.detach()) * t),
        "rswaf": lambda: 1.0 / t,
        "fourier": lambda: 2.0 * math.pi * t,
        "chebyshev": lambda: 1.0 / t,
        "bspline": lambda: 0.0,
    }[b.basis]()
    dims = (ctypes.c_int64 * 7)(
        I,
        O,
        b.num_bases,
        grid_t.shape[0],
        BASIS_CODES[b.basis],
        b.degree,
        ACTIVATION_CODES[activation],
    )
    reals = (ctypes.c_double * 2)(scale, t)
    return dims, reals


def _eval_tables(args: KANArgs, is_pairwise: bool, dtype: torch.dtype):
    """The kernel's tables: grid ``(K, I')``, coefficients ``(O', M, I')``, scales ``(O', I')``.

    Outer: ``I' = I``, ``O' = O``. Pairwise: every (o, i) has its own input, so it is the outer
    evaluation of one output over the flattened ``I' = O I`` columns, with the grid row of
    column ``(o, i)`` that of input i; the tables are small (the size of the coefficients).
    Returns the tables, ``(I', O')`` and the kernels' integer and real arguments.
    """
    I, O, M = args.coef.shape
    grid_t = args.grid.to(dtype).T  # (K, I)
    coef = args.coef.to(dtype)
    base = args.base()
    if is_pairwise:
        K = grid_t.shape[0]
        grid_t = grid_t.unsqueeze(1).expand(K, O, I).reshape(K, O * I).contiguous()
        coef_t = coef.permute(2, 1, 0).reshape(1, M, O * I).contiguous()
        flat = lambda w: None if w is None else w.to(dtype).T.reshape(1, O * I)
        tables, I_, O_ = (grid_t, coef_t, flat(args.w_spline), flat(base)), O * I, 1
    else:
        coef_t = coef.permute(1, 2, 0).contiguous()  # (O, M, I)
        scale = lambda w: None if w is None else w.to(dtype).T.contiguous()
        tables, I_, O_ = (grid_t.contiguous(), coef_t, scale(args.w_spline), scale(base)), I, O
    return tables, (I_, O_), _spec(args.basis_args(), args.activation, tables[0], I_, O_)


def evaluate(x: Tensor, args: KANArgs, is_pairwise: bool) -> Tensor:
    """Pairwise ``(S, O, I) -> (S, O, I)`` or outer ``(S, I) -> (S, O, I)`` evaluation."""
    dtype = compute_dtype(x, args.coef)
    I, O, _ = args.coef.shape
    S = x.shape[0]
    tables, _, (dims, reals) = _eval_tables(args, is_pairwise, dtype)
    out = torch.empty(S, O, I, dtype=dtype)
    _run(_typed("eval_fwd", dtype), dims, reals, *tables, _prepare(x, dtype), S, out)
    return out.to(torch.result_type(x, args.coef))


def _eval_backward(grad, row_weights, x, args: KANArgs, is_pairwise: bool, needs, need_value):
    """Run ``eval_bwd``: gradients for (x, coef, w_spline, w_base, tau) where ``needs`` asks for
    them (empty tensors like ``grad``, else ``x``, for the others), laid out as those tensors,
    then the weighted sum of values (``need_value``, with ``row_weights``; else ``None``)."""
    coef, w_spline, w_base, tau = args.coef, args.w_spline, args.w_base, args.tau
    dtype = compute_dtype(x, coef)
    I, O, M = coef.shape
    S = x.shape[0]
    need_x, need_coef, need_wsp, need_wb, need_tau = needs
    tables, (I_, O_), (dims, reals) = _eval_tables(args, is_pairwise, dtype)
    _, _, wsp_t, wb_t = tables
    xc = _prepare(x, dtype)
    gx = torch.empty(xc.shape, dtype=dtype) if need_x else None
    g_coef = torch.empty(O_, M, I_, dtype=dtype) if need_coef else None
    g_wsp = torch.empty(O_, I_, dtype=dtype) if (need_wsp and wsp_t is not None) else None
    g_wb = torch.empty(O_, I_, dtype=dtype) if (need_wb and wb_t is not None) else None
    g_tau = torch.zeros((), dtype=dtype) if need_tau else None
    value = torch.zeros((), dtype=dtype) if need_value else None
    outputs = (gx, g_coef, g_wsp, g_wb, g_tau, value)
    gc, rw = _prepare(grad, dtype), _prepare(row_weights, dtype)
    _run(_typed("eval_bwd", dtype), dims, reals, *tables, xc, gc, rw, S, *outputs)
    if g_coef is not None:  # (O', M, I') -> (I, O, M), contiguous as the parameter
        g_coef = (
            g_coef.reshape(M, O, I).permute(2, 1, 0) if is_pairwise else g_coef.permute(2, 0, 1)
        )
        g_coef = g_coef.contiguous()
    scale = lambda g: g.reshape(O, I).T.contiguous()
    empty = lambda: (x if grad is None else grad).new_empty(0)
    if need_wb and w_base is not None and g_wb is None:  # base branch off: no gradient flows
        g_wb = torch.zeros(O, I, dtype=dtype)
    grads = (
        gx.to(x.dtype) if gx is not None else empty(),
        g_coef.to(coef.dtype) if g_coef is not None else empty(),
        scale(g_wsp).to(w_spline.dtype) if g_wsp is not None and w_spline is not None else empty(),
        scale(g_wb).to(w_base.dtype) if g_wb is not None and w_base is not None else empty(),
        g_tau.to(tau.dtype) if g_tau is not None else empty(),
    )
    return grads, value


def evaluate_backward(
    grad: Tensor, x: Tensor, args: KANArgs, is_pairwise: bool, needs: list[bool]
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Gradients for (x, coef, w_spline, w_base, tau); empty where ``needs`` is false."""
    return _eval_backward(grad, None, x, args, is_pairwise, needs, False)[0]


def weighted_pairwise(
    z: Tensor, weights: Tensor, args: KANArgs, needs: list[bool]
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """The weighted sum (0-d) and the gradients of (coef, w_spline, w_base, tau) that ``needs``
    asks for (empty tensors for the others)."""
    grads, value = _eval_backward(None, weights, z, args, True, [False, *needs], True)
    return (value.to(torch.result_type(z, args.coef)), *grads[1:])


def features(x: Tensor, b: BasisArgs, activation: str, by_input: bool) -> Tensor:
    """``(S, I) -> (S, M [+1], I)`` features, or ``(I, S, M)`` basis values ``by_input``."""
    dtype = compute_dtype(x)
    S, I = x.shape
    M = b.num_bases
    base = activation != "none" and not by_input
    grid_t = b.grid.to(dtype).T.contiguous()
    dims, reals = _spec(b, activation, grid_t, I, 1)
    shape = (I, S, M) if by_input else (S, M + int(base), I)
    feats = torch.empty(shape, dtype=dtype)
    xc = _prepare(x, dtype)
    _run(_typed("features_fwd", dtype), dims, reals, grid_t, xc, S, int(base), int(by_input), feats)
    return feats.to(x.dtype)


def features_backward(
    grad: Tensor, x: Tensor, b: BasisArgs, activation: str, by_input: bool, needs: list[bool]
) -> tuple[Tensor, Tensor]:
    """Gradients for (x, tau) from the features' gradient; empty where ``needs`` is false."""
    dtype = compute_dtype(x)
    S, I = x.shape
    base = activation != "none" and not by_input
    grid_t = b.grid.to(dtype).T.contiguous()
    dims, reals = _spec(b, activation, grid_t, I, 1)
    xc, gc = _prepare(x, dtype), _prepare(grad, dtype)
    gx = torch.empty(S, I, dtype=dtype) if needs[0] else None
    g_tau = torch.zeros((), dtype=dtype) if needs[1] else None
    layout = (int(base), int(by_input))
    _run(_typed("features_bwd", dtype), dims, reals, grid_t, xc, gc, S, *layout, gx, g_tau)
    return (
        gx.to(x.dtype) if gx is not None else grad.new_empty(0),
        g_tau.to(b.tau.dtype) if g_tau is not None else grad.new_empty(0),
    )


def weights(coef: Tensor, w_spline: Tensor | None, w_base: Tensor | None) -> Tensor:
    """``W[m, i, o] = coef[i, o, m] w_spline[i, o]``, ``W[M, i, o] = w_base[i, o]``."""
    dtype = compute_dtype(coef)
    I, O, M = coef.shape
    out = torch.empty(M + int(w_base is not None), I, O, dtype=dtype)
    c, ws, wb = _prepare(coef, dtype), _prepare(w_spline, dtype), _prepare(w_base, dtype)
    _run(_typed("weights_fwd", dtype), c, ws, wb, I, O, M, out)
    return out.to(coef.dtype)


def weights_backward(
    grad: Tensor, coef: Tensor, w_spline: Tensor | None, needs: list[bool]
) -> tuple[Tensor, Tensor]:
    """Gradients for (coef, w_spline) from the gradient of the laid-out weights."""
    dtype = compute_dtype(coef)
    I, O, M = coef.shape
    c, ws, gW = _prepare(coef, dtype), _prepare(w_spline, dtype), _prepare(grad, dtype)
    g_coef = torch.empty(I, O, M, dtype=dtype) if needs[0] else None
    g_wsp = torch.empty(I, O, dtype=dtype) if (needs[1] and w_spline is not None) else None
    _run(_typed("weights_bwd", dtype), c, ws, gW, I, O, M, g_coef, g_wsp)
    return (
        g_coef.to(coef.dtype) if g_coef is not None else grad.new_empty(0),
        g_wsp.to(w_spline.dtype)
        if g_wsp is not None and w_spline is not None
        else grad.new_empty(0),
    )


# ---------------------------------------------------------------------------------------------
# The prior (float32 only)

#: The CDF rules of :func:`quadrature_table`, by their code in the kernel.
CDF_RULES = {"midpoint": 0, "left": 1}


def quadrature_table(
    spline: Tensor,
    w_spline: Tensor | None,
    w_base: Tensor | None,
    act: Tensor | None,
    log_weights: Tensor,
    log_reference: Tensor,
    shape: tuple[int, int],
    rows_are_inputs: bool,
    rule: str,
) -> tuple[Tensor, Tensor, Tensor]:
    """The fused Gauss-Legendre table of :func:`tkam.prior.quadrature.fused_gauss_legendre_table`.

    Args:
        spline: ``(R, N, O)`` spline sums of the layer at each row's nodes.
        w_spline, w_base: ``(R, O)`` scales (``None`` where absent).
        act: ``(R, N)`` base activation at the nodes (``None`` without a base branch).
        log_weights, log_reference: ``(R, N)`` log quadrature weights and ``log pi_0``.
        shape: ``(Q, P)``, the components.
        rows_are_inputs: component ``(q, p)`` sits on row p (else row q).
        rule: a key of :data:`CDF_RULES`.

    Returns:
        ``log_density`` and ``cdf`` laid out ``(R, N, O)`` like ``spline``, and ``log_z (Q, P)``.
    """
    R, N, O = spline.shape
    Q, P = shape
    log_density, cdf, log_z = torch.empty(R, N, O), torch.empty(R, N, O), torch.empty(Q, P)
    inputs = [
        None if t is None else t.contiguous()
        for t in (spline, w_spline, w_base, act, log_weights, log_reference)
    ]
    layout = (Q, P, N, int(rows_are_inputs), CDF_RULES[rule])
    _run("tkam_quadrature_table_f32", *inputs, *layout, log_density, cdf, log_z)
    return log_density, cdf, log_z


def guide_table(cdf: Tensor, L: int) -> Tensor:
    """``(C, n) -> (C, L)`` int32 guide table of :func:`tkam.prior.inverse_transform.guide_table`."""
    C, n = cdf.shape
    guide = torch.empty(C, L, dtype=torch.int32)
    _run("tkam_guide_table_f32", cdf.contiguous(), C, n, L, guide)
    return guide


@overload
def invert_rows(
    cdf: Tensor,
    knots: Tensor,
    guide: Tensor,
    rows: Tensor,
    knot_rows: Tensor,
    u: Tensor,
    slope: Literal[False] = False,
) -> Tensor: ...


@overload
def invert_rows(
    cdf: Tensor,
    knots: Tensor,
    guide: Tensor,
    rows: Tensor,
    knot_rows: Tensor,
    u: Tensor,
    slope: Literal[True],
) -> tuple[Tensor, Tensor]: ...


def invert_rows(
    cdf: Tensor,
    knots: Tensor,
    guide: Tensor,
    rows: Tensor,
    knot_rows: Tensor,
    u: Tensor,
    slope: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """Sample k inverts row ``rows[k]`` of ``cdf (C, n)`` (knots: row ``knot_rows[k]`` of
    ``knots``) at ``u[k]``, starting from the ``guide``; flat ``(K,)`` in, flat out. With
    ``slope`` also ``dx/du`` of each sample (its interval's width over its rise)."""
    n = cdf.shape[1]
    out = torch.empty_like(u)
    slopes = torch.empty_like(u) if slope else None
    tables = (cdf.contiguous(), knots.contiguous(), guide)
    count = rows.numel()
    _run("tkam_invert_rows_f32", *tables, rows, knot_rows, u, n, guide.shape[1], count, out, slopes)
    return (out, slopes) if slopes is not None else out


def invert_shared_lanes(
    cdf_by_row: Tensor, knots: Tensor, u: Tensor, out: Tensor | None, total: Tensor | None
) -> bool:
    """Sixteen components side by side (AVX-512): ``cdf_by_row (P, n, Q)``, ``knots (P, n)``,
    ``u (P, S)``; writes the ``(S, Q, P)`` samples to ``out`` and their sums over p, ``(S, Q)``,
    to ``total`` (either may be ``None``). False where the CPU has no AVX-512 (nothing written)."""
    P, n, Q = cdf_by_row.shape
    S = u.shape[-1]
    tables = (cdf_by_row.contiguous(), knots.contiguous(), u.contiguous())
    return bool(_run("tkam_invert_shared_lanes_f32", *tables, Q, P, n, S, out, total))


def invert_shared_sorted(
    cdf: Tensor,
    knots: Tensor,
    sorted_u: Tensor,
    order: Tensor,
    out: Tensor | None,
    total: Tensor | None,
    by_interval: bool,
) -> None:
    """One component at a time: ``cdf (Q, P, n)``, each row's uniforms sorted, ``(P, S)``, and
    their ``order`` (int32); outputs as :func:`invert_shared_lanes`. ``by_interval``: the
    interpolation runs interval by interval (for many samples per knot), else sample by sample."""
    Q, P, n = cdf.shape
    S = sorted_u.shape[-1]
    name = "tkam_invert_shared_f32" if by_interval else "tkam_invert_shared_sparse_f32"
    tables = (cdf.contiguous(), knots.contiguous(), sorted_u.contiguous(), order.contiguous())
    _run(name, *tables, Q, P, n, S, out, total)
