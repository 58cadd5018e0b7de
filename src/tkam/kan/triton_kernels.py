"""Triton kernels of the univariate-function operators for CUDA tensors (tkam.kan.operators).

The same maths as the fused CPU kernels (``csrc/kan_kernels.cpp``) and the eager reference
(:mod:`tkam.kan.eager`): ``phi_{i->o}(x) = w_spline[i, o] * sum_m coef[i, o, m] B_m(x) + w_base[i, o] *
b(x)``. Every program evaluates a block of inputs; it computes the basis values one basis function
at a time in registers and contracts them with the coefficients at once, so no ``(S, O, I, M)``
tensor exists. The backward kernels recompute the basis values (and their derivatives in x and
tau) and accumulate the parameter gradients with atomic adds into tensors of the parameters'
size; the gradient of tau (and the weighted sum of :func:`kan_weighted_pairwise`) is one partial
sum per program, added up afterwards. Memory is O(inputs + outputs + parameters).

Bases, as in ``eager.basis``: B-splines by Cox-de Boor on the extended knot rows (only the
``degree + 1`` splines that are non-zero on the input's knot interval are formed), Gaussian RBFs
with width ``bandwidth * tau``, RSWAF ``1 - tanh^2((x - g) / tau)``, Fourier ``cos / sin(2 pi tau k
x)`` for k = 0..M/2-1 (cosines first; the multiples by the angle-addition recurrence) and
Chebyshev ``T_n(tanh(x) / tau)`` by the three-term recurrence.

Layouts (contiguous): ``coef_t (M, O, I)``, ``w_spline`` and ``w_base`` as ``(O, I)``, the grid as
``(I, K)``. An outer evaluation has the ``C = I`` columns of a sample and ``O`` outputs; a pairwise
one is the same with one output over the ``C = O I`` columns ``c = o I + i`` (grid row ``c % I``),
which index the very same tables.

Float32 and float64 run natively (the compute type is float64 when ``x`` or the coefficients are;
other floating types run in float32 and the results are cast back, as on CPU).
Triton is optional: without it this module imports, :func:`available` is false and nothing else
may be called. :func:`tkam.kan.operators.register_triton_kernels` installs the functions below
as the operators' CUDA kernels; they take the operators' arguments as
:class:`~tkam.kan.arguments.KANArgs` (or :class:`~tkam.kan.arguments.BasisArgs`), like the eager
and fused CPU code. The basis and activation codes are those of :mod:`tkam.kan.codes`, as
constants of this module (``BSPLINE``, ..., ``A_RELU``, ...) that the kernels compare with.
With ``TRITON_INTERPRET=1`` (set before triton is imported) they run on CPU tensors, which is how
``tests/kan/test_triton_kernels.py`` checks them.
"""

from __future__ import annotations

import contextlib
import os

import torch
from torch import Tensor

from tkam.kan.arguments import BasisArgs, KANArgs
from tkam.kan.codes import ACTIVATION_CODES, BASIS_CODES, compute_dtype

# Triton is imported only where its kernels can run: with a CUDA device, or interpreted on the CPU
# (TRITON_INTERPRET=1, for tests); elsewhere importing tkam never imports it.
_WANTED = os.environ.get("TRITON_INTERPRET") == "1" or torch.cuda.is_available()
try:
    if not _WANTED:
        raise ImportError("no CUDA device")
    import triton
    import triton.language as tl
except Exception:  # triton is optional: a missing or broken install must not break tkam
    triton = None
    tl = None

__all__ = [
    "available",
    "kan_eval",
    "kan_eval_backward",
    "kan_features",
    "kan_features_backward",
    "kan_weighted_pairwise",
]


def available() -> bool:
    """Whether triton imported, so that the kernels can be compiled (or interpreted)."""
    return triton is not None


def _jit(fn):
    # Without triton the kernels are plain functions that are never called; the annotations are
    # strings (postponed evaluation), so ``tl.constexpr`` needs no triton either.
    return fn if triton is None else triton.jit(fn)


def _constant(code: int):
    # A global that kernels read must be a triton constexpr; a plain int without triton.
    return code if tl is None else tl.constexpr(code)


# The codes of tkam.kan.codes, which the kernels compare their BASIS and ACT arguments with.
BSPLINE = _constant(BASIS_CODES["bspline"])
RBF = _constant(BASIS_CODES["rbf"])
RSWAF = _constant(BASIS_CODES["rswaf"])
FOURIER = _constant(BASIS_CODES["fourier"])
CHEBYSHEV = _constant(BASIS_CODES["chebyshev"])
A_NONE = _constant(ACTIVATION_CODES["none"])
A_RELU = _constant(ACTIVATION_CODES["relu"])
A_LEAKYRELU = _constant(ACTIVATION_CODES["leakyrelu"])
A_TANH = _constant(ACTIVATION_CODES["tanh"])
A_SIGMOID = _constant(ACTIVATION_CODES["sigmoid"])
A_SWISH = _constant(ACTIVATION_CODES["swish"])
A_GELU = _constant(ACTIVATION_CODES["gelu"])
A_SELU = _constant(ACTIVATION_CODES["selu"])
A_SILU = _constant(ACTIVATION_CODES["silu"])
A_ELU = _constant(ACTIVATION_CODES["elu"])
A_CELU = _constant(ACTIVATION_CODES["celu"])


# ---------------------------------------------------------------------------------------------
# Element-wise helpers. Real constants are written inline: triton converts a literal operand to
# the other operand's type (float64 keeps full precision), but a literal bound to a local name
# becomes a float32 scalar first. ``tanh`` comes from one exponential because triton's core
# language has none and libdevice does not run in the interpreter.


@_jit
def _tanh(x):
    e = tl.exp(-2.0 * tl.abs(x))  # in (0, 1]: no overflow
    t = (1.0 - e) / (1.0 + e)
    return tl.where(x < 0.0, -t, t)


@_jit
def _activation(x, ACT: tl.constexpr):
    """The base activation ``b(x)`` and ``b'(x)`` (zero for ``A_NONE``)."""
    zero = tl.zeros_like(x)
    one = zero + 1.0
    a = zero
    da = zero
    if ACT == A_RELU:
        a = tl.where(x > 0.0, x, zero)
        da = tl.where(x > 0.0, one, zero)
    elif ACT == A_LEAKYRELU:  # slope 0.01
        a = tl.where(x > 0.0, x, 0.01 * x)
        da = tl.where(x > 0.0, one, zero + 0.01)
    elif ACT == A_TANH:
        a = _tanh(x)
        da = 1.0 - a * a
    elif ACT == A_SIGMOID:
        a = 1.0 / (1.0 + tl.exp(-x))
        da = a * (1.0 - a)
    elif ACT == A_SWISH:  # hard-swish (the reference's "swish"), torch's one-sided derivative
        a = tl.where(x <= -3.0, zero, tl.where(x >= 3.0, x, x * (x + 3.0) / 6.0))
        da = tl.where(x < -3.0, zero, tl.where(x <= 3.0, x / 3.0 + 0.5, one))
    elif ACT == A_GELU:  # tanh approximation: sqrt(2 / pi) = 0.79788..., kappa = 0.044715
        th = _tanh(0.7978845608028654 * (x + 0.044715 * x * x * x))
        a = 0.5 * x * (1.0 + th)
        slope = 0.7978845608028654 * (1.0 + 0.134145 * x * x)  # d/dx of tanh's argument
        da = 0.5 * (1.0 + th) + 0.5 * x * (1.0 - th * th) * slope
    elif ACT == A_SELU:  # scale 1.0507..., scale * alpha (alpha = 1.6732...) as torch rounds it
        e = tl.exp(tl.minimum(x, zero))
        a = tl.where(x > 0.0, 1.0507009873554804934 * x, 1.7580993408473766 * (e - 1.0))
        da = tl.where(x > 0.0, zero + 1.0507009873554804934, 1.7580993408473766 * e)
    elif ACT == A_SILU:
        sg = 1.0 / (1.0 + tl.exp(-x))
        a = x * sg
        da = sg * (1.0 + x * (1.0 - sg))
    elif ACT == A_ELU or ACT == A_CELU:  # celu with alpha = 1 is elu
        e = tl.exp(tl.minimum(x, zero))
        a = tl.where(x > 0.0, x, e - 1.0)
        da = tl.where(x > 0.0, one, e)
    return a, da


# ---------------------------------------------------------------------------------------------
# Basis values. A kernel calls _prologue once per block of inputs and then _slot for
# j = 0..NSLOT-1; slot j yields the index m of one basis function (per input: B-splines differ
# between inputs), whether it exists, its value and its x- and tau-derivatives. The recurrences
# of Fourier and Chebyshev bases carry their state (u1..u4) from slot to slot.


@_jit
def _column(tile, j, RP: tl.constexpr):
    """Column j of a ``(BN, RP)`` tile."""
    return tl.sum(tl.where(tl.arange(0, RP)[None, :] == j, tile, 0.0), axis=1)


@_jit
def _bspline_local(x, row_off, grid_ptr, K, mask, DEGREE: tl.constexpr, RP: tl.constexpr):
    """The B-splines of degree DEGREE that can be non-zero at x, and their x-derivatives.

    Returns ``mu (BN,)``, the knot interval ``t_mu <= x < t_{mu+1}`` of the ``(I, K)`` knot rows
    (-1 or K-1 outside them), and ``(BN, RP)`` tiles whose column r holds ``B_{mu-DEGREE+r}``.
    Cox-de Boor level d keeps ``B_{mu-d+r,d}`` in column r, so
    ``B_{j,d} = L B_{j,d-1} + R B_{j+1,d-1}`` reads columns r-1 and r of level d-1; terms with a
    zero denominator are dropped as in ``bases.bspline_basis``. Columns of splines outside the
    knot row see masked (zero) knots; their values stay finite and never reach a valid spline.
    """
    count = tl.zeros(x.shape, tl.int32)
    for k in range(K):
        t = tl.load(grid_ptr + row_off + k, mask=mask, other=0.0)
        count += (x >= t).to(tl.int32)
    mu = count - 1
    inside = (mu >= 0) & (mu <= K - 2)
    r = tl.arange(0, RP)
    tile = tl.zeros((1, RP), x.dtype) + tl.zeros_like(x)[:, None]
    nb = tl.where((r[None, :] == 0) & inside[:, None], tile + 1.0, tile)
    nx = tile
    xe = x[:, None]
    for d in tl.static_range(1, DEGREE + 1):
        j = mu[:, None] - d + r[None, :]  # spline index of column r at level d
        ok = (j >= 0) & (j + d + 1 <= K - 1) & mask[:, None]
        base = grid_ptr + row_off[:, None] + j
        tj = tl.load(base, mask=ok, other=0.0)
        tj1 = tl.load(base + 1, mask=ok, other=0.0)
        tjd = tl.load(base + d, mask=ok, other=0.0)
        tjd1 = tl.load(base + d + 1, mask=ok, other=0.0)
        left_den = tjd - tj
        right_den = tjd1 - tj1
        lpos = left_den > 0.0
        rpos = right_den > 0.0
        left_inv = tl.where(lpos, 1.0 / tl.where(lpos, left_den, tile + 1.0), tile)
        right_inv = tl.where(rpos, 1.0 / tl.where(rpos, right_den, tile + 1.0), tile)
        left = (xe - tj) * left_inv
        right = (tjd1 - xe) * right_inv
        nb_prev = tile
        nx_prev = tile
        for q in tl.static_range(1, d + 1):  # level d-1 has columns 0..d-1
            nb_prev = tl.where(r[None, :] == q, _column(nb, q - 1, RP)[:, None], nb_prev)
            nx_prev = tl.where(r[None, :] == q, _column(nx, q - 1, RP)[:, None], nx_prev)
        nx = left_inv * nb_prev + left * nx_prev - right_inv * nb + right * nx
        nb = left * nb_prev + right * nb
    return mu, nb, nx


@_jit
def _prologue(
    x, row_off, grid_ptr, K, tau, mask, BASIS: tl.constexpr, DEGREE: tl.constexpr, RP: tl.constexpr
):
    """Per-input state of the slots: B-spline tiles, Fourier sin/cos, Chebyshev argument."""
    zero = tl.zeros_like(x)
    mu = tl.zeros(x.shape, tl.int32)
    nb = tl.zeros((1, RP), x.dtype) + zero[:, None]
    nx = nb
    v1 = zero
    v2 = zero
    v3 = zero
    u1 = zero
    if BASIS == BSPLINE:
        mu, nb, nx = _bspline_local(x, row_off, grid_ptr, K, mask, DEGREE, RP)
    elif BASIS == FOURIER:  # angle a = 2 pi tau x; the recurrence starts at cos(0 a) = 1
        angle = (6.283185307179586 * tau) * x
        v1 = tl.cos(angle)
        v2 = tl.sin(angle)
        u1 = zero + 1.0
    elif BASIS == CHEBYSHEV:  # y = tanh(x) / tau, dy/dx, dy/dtau
        th = _tanh(x)
        v1 = th / tau
        v2 = (1.0 - th * th) / tau
        v3 = -v1 / tau
    return mu, nb, nx, v1, v2, v3, u1, zero, zero, zero


@_jit
def _slot(
    j,
    x,
    row_off,
    grid_ptr,
    M,
    tau,
    bandwidth,
    mask,
    mu,
    nb,
    nx,
    v1,
    v2,
    v3,
    u1,
    u2,
    u3,
    u4,
    BASIS: tl.constexpr,
    DEGREE: tl.constexpr,
    RP: tl.constexpr,
):
    """Slot j: ``(m, exists, B_m, dB_m/dx, dB_m/dtau, u1..u4)`` for every input of the block."""
    zero = tl.zeros_like(x)
    one = zero + 1.0
    m = mu * 0 + j
    ok = mask
    b = zero
    bx = zero
    bt = zero
    if BASIS == BSPLINE:  # slot j is B_{mu - DEGREE + j}; tau does not enter
        m = mu - DEGREE + j
        ok = mask & (m >= 0) & (m < M)
        b = _column(nb, j, RP)
        bx = _column(nx, j, RP)
    elif BASIS == RBF:  # exp(-t^2 / 2), t = (x - g) / (h tau)
        g = tl.load(grid_ptr + row_off + j, mask=mask, other=0.0)
        width = bandwidth * tau
        t = (x - g) / width
        b = tl.exp(-0.5 * (t * t))
        bx = -b * t / width
        bt = b * t * t / tau
    elif BASIS == RSWAF:  # 1 - tanh^2((x - g) / tau)
        g = tl.load(grid_ptr + row_off + j, mask=mask, other=0.0)
        d = x - g
        th = _tanh(d / tau)
        b = 1.0 - th * th
        bx = -2.0 * th * b / tau
        bt = 2.0 * th * b * d / (tau * tau)
    elif BASIS == FOURIER:
        # Slots interleaved: j = 2k is cos(k a) (m = k), j = 2k + 1 is sin(k a)
        # (m = M/2 + k); an even slot advances (cos, sin)((k-1) a) to k a by angle addition.
        k = j // 2
        odd = (j % 2) == 1
        advance = ((j % 2) == 0) & (j > 0)
        c_next = u1 * v1 - u2 * v2
        s_next = u2 * v1 + u1 * v2
        u1 = tl.where(advance, c_next, u1)
        u2 = tl.where(advance, s_next, u2)
        m = mu * 0 + (k + (j % 2) * (M // 2))
        kf = k * 1.0  # float32, exact; the products below take the data's type
        kw = kf * (6.283185307179586 * tau)
        kx = kf * (6.283185307179586 * x)
        b = tl.where(odd, u2, u1)
        bx = tl.where(odd, kw * u1, -kw * u2)
        bt = tl.where(odd, kx * u1, -kx * u2)
    elif BASIS == CHEBYSHEV:
        # T_j(y) and T_j'(y) by their recurrences (u1, u2: T_{j-1}, T_{j-2};
        # u3, u4: their derivatives), then the chain rule through y = tanh(x) / tau.
        t_j = tl.where(j == 0, one, tl.where(j == 1, v1, 2.0 * v1 * u1 - u2))
        d_j = tl.where(j == 0, zero, tl.where(j == 1, one, 2.0 * u1 + 2.0 * v1 * u3 - u4))
        u2 = u1
        u1 = t_j
        u4 = u3
        u3 = d_j
        b = t_j
        bx = d_j * v2
        bt = d_j * v3
    return m, ok, b, bx, bt, u1, u2, u3, u4


# ---------------------------------------------------------------------------------------------
# Kernels


@_jit
def _eval_fwd_kernel(
    x_ptr,
    coef_ptr,
    wsp_ptr,
    wb_ptr,
    grid_ptr,
    tau_ptr,
    bw_ptr,
    out_ptr,
    N,
    C,
    I,
    NOUT,
    M,
    K,
    NSLOT,
    BASIS: tl.constexpr,
    DEGREE: tl.constexpr,
    ACT: tl.constexpr,
    HAS_WSP: tl.constexpr,
    HAS_BASE: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_O: tl.constexpr,
    RP: tl.constexpr,
):
    """out[s, o, c] = phi_{o,c}(x[s, c]) for a (BLOCK_N inputs) x (BLOCK_O outputs) tile."""
    n = tl.program_id(0).to(tl.int64) * BLOCK_N + tl.arange(0, BLOCK_N)
    mask = n < N
    s = n // C
    c = n % C
    row_off = (c % I) * K
    o = tl.program_id(1) * BLOCK_O + tl.arange(0, BLOCK_O)
    tile_mask = mask[:, None] & (o < NOUT)[None, :]
    col = o[None, :].to(tl.int64) * C + c[:, None]  # (o, c) in an (NOUT, C) table
    noc = NOUT * C
    x = tl.load(x_ptr + n, mask=mask, other=0.0)
    tau = tl.load(tau_ptr)
    bandwidth = tl.load(bw_ptr)
    mu, nb, nx, v1, v2, v3, u1, u2, u3, u4 = _prologue(
        x, row_off, grid_ptr, K, tau, mask, BASIS, DEGREE, RP
    )
    acc = tl.zeros((BLOCK_N, BLOCK_O), x.dtype)
    for j in range(NSLOT):
        m, ok, b, bx, bt, u1, u2, u3, u4 = _slot(
            j, x, row_off, grid_ptr, M, tau, bandwidth, mask, mu, nb, nx, v1, v2, v3,
            u1, u2, u3, u4, BASIS, DEGREE, RP,
        )  # fmt: skip
        offset = m[:, None].to(tl.int64) * noc + col
        coef = tl.load(coef_ptr + offset, mask=tile_mask & ok[:, None], other=0.0)
        acc += b[:, None] * coef
    y = acc
    if HAS_WSP:
        y = y * tl.load(wsp_ptr + col, mask=tile_mask, other=0.0)
    if HAS_BASE:
        a, da = _activation(x, ACT)
        y += a[:, None] * tl.load(wb_ptr + col, mask=tile_mask, other=0.0)
    tl.store(out_ptr + s[:, None] * noc + col, y, mask=tile_mask)


@_jit
def _eval_bwd_kernel(
    x_ptr,
    g_ptr,
    rw_ptr,
    coef_ptr,
    wsp_ptr,
    wb_ptr,
    grid_ptr,
    tau_ptr,
    bw_ptr,
    gx_ptr,
    gcoef_ptr,
    gwsp_ptr,
    gwb_ptr,
    part_ptr,
    N,
    C,
    I,
    NOUT,
    M,
    K,
    NSLOT,
    BASIS: tl.constexpr,
    DEGREE: tl.constexpr,
    ACT: tl.constexpr,
    HAS_WSP: tl.constexpr,
    HAS_BASE: tl.constexpr,
    ROW_WEIGHTS: tl.constexpr,
    NEED_X: tl.constexpr,
    NEED_COEF: tl.constexpr,
    NEED_WSP: tl.constexpr,
    NEED_WB: tl.constexpr,
    NEED_TAU: tl.constexpr,
    NEED_VALUE: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_O: tl.constexpr,
    RP: tl.constexpr,
):
    """Backward of _eval_fwd_kernel for BLOCK_N inputs and all outputs (in BLOCK_O chunks).

    The output gradient is ``g[s, o, c]``, or ``rw[s]`` with ROW_WEIGHTS (the weighted sum of
    function values, whose value is returned too with NEED_VALUE). dL/dx is complete per input
    and stored; the parameter gradients are added atomically into ``(M, NOUT, C)`` and
    ``(NOUT, C)`` tables; the tau gradient and the value are one partial sum per program.
    """
    pid = tl.program_id(0)
    n = pid.to(tl.int64) * BLOCK_N + tl.arange(0, BLOCK_N)
    mask = n < N
    s = n // C
    c = n % C
    row_off = (c % I) * K
    noc = NOUT * C
    x = tl.load(x_ptr + n, mask=mask, other=0.0)
    tau = tl.load(tau_ptr)
    bandwidth = tl.load(bw_ptr)
    mu, nb, nx, v1, v2, v3, w1, w2, w3, w4 = _prologue(
        x, row_off, grid_ptr, K, tau, mask, BASIS, DEGREE, RP
    )
    a, da = _activation(x, ACT)
    zero = tl.zeros_like(x)
    gx = zero
    tau_sum = zero
    value_sum = zero
    if ROW_WEIGHTS:
        row_weight = tl.load(rw_ptr + s, mask=mask, other=0.0)
    for o0 in range(0, NOUT, BLOCK_O):
        o = o0 + tl.arange(0, BLOCK_O)
        tile_mask = mask[:, None] & (o < NOUT)[None, :]
        col = o[None, :].to(tl.int64) * C + c[:, None]
        if ROW_WEIGHTS:
            g = tl.where(tile_mask, row_weight[:, None], 0.0)
        else:
            g = tl.load(g_ptr + s[:, None] * noc + col, mask=tile_mask, other=0.0)
        gw = g  # the gradient reaching the spline sum
        if HAS_WSP:
            wsp = tl.load(wsp_ptr + col, mask=tile_mask, other=0.0)
            gw = g * wsp
        spline = tl.zeros((BLOCK_N, BLOCK_O), x.dtype)
        u1 = w1
        u2 = w2
        u3 = w3
        u4 = w4
        for j in range(NSLOT):
            m, ok, b, bx, bt, u1, u2, u3, u4 = _slot(
                j, x, row_off, grid_ptr, M, tau, bandwidth, mask, mu, nb, nx, v1, v2, v3,
                u1, u2, u3, u4, BASIS, DEGREE, RP,
            )  # fmt: skip
            offset = m[:, None].to(tl.int64) * noc + col
            coef_mask = tile_mask & ok[:, None]
            coef = tl.load(coef_ptr + offset, mask=coef_mask, other=0.0)
            if NEED_COEF:
                tl.atomic_add(gcoef_ptr + offset, gw * b[:, None], mask=coef_mask, sem="relaxed")
            if NEED_WSP or NEED_VALUE:
                spline += coef * b[:, None]
            if NEED_X or NEED_TAU:
                # sum_o gw coef_m: the weight of dB_m/dx and dB_m/dtau.
                weight = tl.sum(gw * coef, axis=1)
                gx += weight * bx
                tau_sum += weight * bt
        if NEED_WSP:
            tl.atomic_add(gwsp_ptr + col, g * spline, mask=tile_mask, sem="relaxed")
        if HAS_BASE:
            wb = tl.load(wb_ptr + col, mask=tile_mask, other=0.0)
            if NEED_WB:
                tl.atomic_add(gwb_ptr + col, g * a[:, None], mask=tile_mask, sem="relaxed")
            if NEED_X:
                gx += tl.sum(g * wb, axis=1) * da
        if NEED_VALUE:
            phi = spline
            if HAS_WSP:
                phi = spline * wsp
            if HAS_BASE:
                phi += wb * a[:, None]
            value_sum += tl.sum(g * phi, axis=1)
    if NEED_X:
        tl.store(gx_ptr + n, gx, mask=mask)
    if NEED_TAU:
        tl.store(part_ptr + 2 * pid, tl.sum(tau_sum, axis=0))
    if NEED_VALUE:
        tl.store(part_ptr + 2 * pid + 1, tl.sum(value_sum, axis=0))


@_jit
def _features_fwd_kernel(
    x_ptr,
    grid_ptr,
    tau_ptr,
    bw_ptr,
    out_ptr,
    N,
    I,
    M,
    ROWS,
    K,
    NSLOT,
    BASIS: tl.constexpr,
    DEGREE: tl.constexpr,
    ACT: tl.constexpr,
    HAS_BASE: tl.constexpr,
    BLOCK_N: tl.constexpr,
    RP: tl.constexpr,
):
    """feats[s, m, i] = B_m(x[s, i]) and, with a base branch, feats[s, M, i] = b(x[s, i]).

    B-splines write only their non-zero values: the caller zero-fills the output.
    """
    n = tl.program_id(0).to(tl.int64) * BLOCK_N + tl.arange(0, BLOCK_N)
    mask = n < N
    s = n // I
    i = n % I
    row_off = i * K
    row_base = s * (ROWS * I) + i
    x = tl.load(x_ptr + n, mask=mask, other=0.0)
    tau = tl.load(tau_ptr)
    bandwidth = tl.load(bw_ptr)
    mu, nb, nx, v1, v2, v3, u1, u2, u3, u4 = _prologue(
        x, row_off, grid_ptr, K, tau, mask, BASIS, DEGREE, RP
    )
    for j in range(NSLOT):
        m, ok, b, bx, bt, u1, u2, u3, u4 = _slot(
            j, x, row_off, grid_ptr, M, tau, bandwidth, mask, mu, nb, nx, v1, v2, v3,
            u1, u2, u3, u4, BASIS, DEGREE, RP,
        )  # fmt: skip
        tl.store(out_ptr + row_base + m.to(tl.int64) * I, b, mask=ok)
    if HAS_BASE:
        a, da = _activation(x, ACT)
        tl.store(out_ptr + row_base + M * I, a, mask=mask)


@_jit
def _features_bwd_kernel(
    x_ptr,
    g_ptr,
    grid_ptr,
    tau_ptr,
    bw_ptr,
    gx_ptr,
    part_ptr,
    N,
    I,
    M,
    ROWS,
    K,
    NSLOT,
    BASIS: tl.constexpr,
    DEGREE: tl.constexpr,
    ACT: tl.constexpr,
    HAS_BASE: tl.constexpr,
    NEED_X: tl.constexpr,
    NEED_TAU: tl.constexpr,
    BLOCK_N: tl.constexpr,
    RP: tl.constexpr,
):
    """dL/dx per input and a partial dL/dtau per program from dL/dfeats."""
    pid = tl.program_id(0)
    n = pid.to(tl.int64) * BLOCK_N + tl.arange(0, BLOCK_N)
    mask = n < N
    s = n // I
    i = n % I
    row_off = i * K
    row_base = s * (ROWS * I) + i
    x = tl.load(x_ptr + n, mask=mask, other=0.0)
    tau = tl.load(tau_ptr)
    bandwidth = tl.load(bw_ptr)
    mu, nb, nx, v1, v2, v3, u1, u2, u3, u4 = _prologue(
        x, row_off, grid_ptr, K, tau, mask, BASIS, DEGREE, RP
    )
    gx = tl.zeros_like(x)
    tau_sum = tl.zeros_like(x)
    for j in range(NSLOT):
        m, ok, b, bx, bt, u1, u2, u3, u4 = _slot(
            j, x, row_off, grid_ptr, M, tau, bandwidth, mask, mu, nb, nx, v1, v2, v3,
            u1, u2, u3, u4, BASIS, DEGREE, RP,
        )  # fmt: skip
        g = tl.load(g_ptr + row_base + m.to(tl.int64) * I, mask=ok, other=0.0)
        gx += g * bx
        tau_sum += g * bt
    if NEED_X:
        if HAS_BASE:
            a, da = _activation(x, ACT)
            gx += tl.load(g_ptr + row_base + M * I, mask=mask, other=0.0) * da
        tl.store(gx_ptr + n, gx, mask=mask)
    if NEED_TAU:
        tl.store(part_ptr + pid, tl.sum(tau_sum, axis=0))


# ---------------------------------------------------------------------------------------------
# Host side: the operators' CUDA kernels, with the signatures and results of the CPU kernels.

# Tile sizes. A program holds BLOCK_N x max(BLOCK_O, RP) values of each kind in registers; these
# budgets (per float32 program of four warps, halved for float64) keep sm_90 compilations within
# about 64-150 registers without spills (ptxas -v). The backward keeps more values per element.
_FORWARD_BUDGET = 512
_BACKWARD_BUDGET = 256
_MAX_BLOCK_O = 16


def _device(t: Tensor):
    # Triton launches on the current CUDA device; tensors on another GPU need it switched.
    return torch.cuda.device(t.device) if t.is_cuda else contextlib.nullcontext()


def _next_pow2(n: int) -> int:
    return 1 << max(n - 1, 0).bit_length()


class _Layer:
    """Kernel arguments shared by the evaluations: tables in the compute dtype and constants."""

    def __init__(self, b: BasisArgs, activation: str, dtype: torch.dtype) -> None:
        self.basis, self.act = BASIS_CODES[b.basis], ACTIVATION_CODES[activation]
        self.degree = int(b.degree) if b.basis == "bspline" else 0
        self.M = int(b.num_bases)
        # Scalars stay on the device (no host sync); an absent table gets a placeholder pointer.
        self.tau = b.tau.detach().to(dtype).reshape(1).contiguous()
        self.bandwidth = b.bandwidth.detach().to(dtype).reshape(1).contiguous()
        self.K = b.grid.shape[1] if b.basis in ("bspline", "rbf", "rswaf") else 0
        self.grid = b.grid.detach().to(dtype).contiguous() if self.K > 0 else self.tau
        self.nslot = self.degree + 1 if b.basis == "bspline" else self.M
        self.rp = _next_pow2(self.degree + 1)

    def constants(self) -> dict:
        return {"BASIS": self.basis, "DEGREE": self.degree, "ACT": self.act, "RP": self.rp}

    def pick(self, t: Tensor | None) -> Tensor:
        """``t``, or a placeholder pointer for an absent table."""
        return self.tau if t is None else t

    def tables(self) -> tuple[Tensor, Tensor, Tensor]:
        """The kernels' ``grid_ptr``, ``tau_ptr`` and ``bw_ptr``."""
        return self.grid, self.tau, self.bandwidth


def _eval_tables(args: KANArgs, dtype: torch.dtype):
    """``coef_t (M, O, I)``, ``w_spline`` and ``w_base`` as ``(O, I)`` (``None`` if absent)."""
    coef_t = args.coef.detach().to(dtype).permute(2, 1, 0).contiguous()
    w_spline, base = args.w_spline, args.base()
    wsp_t = None if w_spline is None else w_spline.detach().to(dtype).T.contiguous()
    wb_t = None if base is None else base.detach().to(dtype).T.contiguous()
    return coef_t, wsp_t, wb_t


def _blocks(nout: int, rp: int, dtype: torch.dtype, budget: int) -> tuple[int, int]:
    """``(BLOCK_N, BLOCK_O)`` for ``nout`` outputs and B-spline tiles of width ``rp``."""
    block_o = min(_next_pow2(nout), _MAX_BLOCK_O)
    budget = budget // (2 if dtype == torch.float64 else 1)
    return max(16, min(256, budget // max(block_o, rp))), block_o


def kan_eval(x: Tensor, args: KANArgs, is_pairwise: bool) -> Tensor:
    """Pairwise ``(S, O, I) -> (S, O, I)`` or outer ``(S, I) -> (S, O, I)`` evaluation."""
    dtype = compute_dtype(x, args.coef)
    I, O, M = args.coef.shape
    S = x.shape[0]
    layer = _Layer(args.basis_args(), args.activation, dtype)
    coef_t, wsp_t, wb_t = _eval_tables(args, dtype)
    C, nout = (O * I, 1) if is_pairwise else (I, O)
    xc = x.detach().to(dtype).contiguous()
    out = torch.empty(S, O, I, dtype=dtype, device=x.device)
    N = S * C
    if N > 0 and O > 0:
        block_n, block_o = _blocks(nout, layer.rp, dtype, _FORWARD_BUDGET)
        launch = (triton.cdiv(N, block_n), triton.cdiv(nout, block_o))
        tables = (coef_t, layer.pick(wsp_t), layer.pick(wb_t), *layer.tables())
        sizes = (N, C, I, nout, M, layer.K, layer.nslot)
        flags = {"HAS_WSP": wsp_t is not None, "HAS_BASE": wb_t is not None}
        blocks = {"BLOCK_N": block_n, "BLOCK_O": block_o, **layer.constants()}
        with _device(x):
            _eval_fwd_kernel[launch](xc, *tables, out, *sizes, **flags, **blocks)
    return out.to(torch.result_type(x, args.coef))


def _eval_backward(grad, row_weights, x, args: KANArgs, is_pairwise, needs, need_value):
    """Launch _eval_bwd_kernel; ``needs`` for (x, coef, w_spline, w_base, tau). Returns the raw
    tables ``(gx, g_coef_t, g_wsp_t, g_wb_t, tau, value)`` in the compute dtype (None where not
    computed)."""
    dtype = compute_dtype(x, args.coef)
    I, O, M = args.coef.shape
    S = x.shape[0]
    device = x.device
    layer = _Layer(args.basis_args(), args.activation, dtype)
    coef_t, wsp_t, wb_t = _eval_tables(args, dtype)
    need_x, need_coef, need_wsp, need_wb, need_tau = (bool(n) for n in needs)
    need_wsp = need_wsp and wsp_t is not None
    need_wb = need_wb and wb_t is not None
    need_tau = need_tau and args.basis != "bspline"  # B-splines do not depend on tau
    C, nout = (O * I, 1) if is_pairwise else (I, O)
    N = S * C
    xc = x.detach().to(dtype).contiguous()
    gx = torch.empty(xc.shape, dtype=dtype, device=device) if need_x else None
    g_coef = torch.zeros(M, O, I, dtype=dtype, device=device) if need_coef else None
    g_wsp = torch.zeros(O, I, dtype=dtype, device=device) if need_wsp else None
    g_wb = torch.zeros(O, I, dtype=dtype, device=device) if need_wb else None
    block_n, block_o = _blocks(nout, layer.rp, dtype, _BACKWARD_BUDGET)
    programs = triton.cdiv(N, block_n) if N > 0 else 0
    partials = torch.zeros(max(programs, 1), 2, dtype=dtype, device=device)
    if programs > 0 and O > 0:
        if row_weights is not None:
            rw, gc = row_weights.detach().to(dtype).contiguous(), layer.tau
        else:
            rw, gc = layer.tau, grad.detach().to(dtype).contiguous()
        tables = (coef_t, layer.pick(wsp_t), layer.pick(wb_t), *layer.tables())
        outputs = (layer.pick(gx), layer.pick(g_coef), layer.pick(g_wsp), layer.pick(g_wb))
        sizes = (N, C, I, nout, M, layer.K, layer.nslot)
        flags = {
            "HAS_WSP": wsp_t is not None,
            "HAS_BASE": wb_t is not None,
            "ROW_WEIGHTS": row_weights is not None,
            "NEED_X": need_x,
            "NEED_COEF": need_coef,
            "NEED_WSP": need_wsp,
            "NEED_WB": need_wb,
            "NEED_TAU": need_tau,
            "NEED_VALUE": need_value,
        }
        blocks = {"BLOCK_N": block_n, "BLOCK_O": block_o, **layer.constants()}
        with _device(x):
            _eval_bwd_kernel[(programs,)](
                xc, gc, rw, *tables, *outputs, partials, *sizes, **flags, **blocks
            )
    elif gx is not None:  # need_x
        gx.zero_()
    # Summed here in a fixed order (an atomic scalar would not be), as separate tensors: the
    # operators' outputs must not alias each other.
    return gx, g_coef, g_wsp, g_wb, partials[:, 0].sum(), partials[:, 1].sum()


def _parameter_grads(args: KANArgs, needs, g_coef, g_wsp, g_wb, g_tau, empty) -> tuple:
    """The gradients of (coef, w_spline, w_base, tau) laid out as those tensors (``empty()``
    where ``needs`` is false)."""
    need_coef, need_wsp, need_wb, need_tau = (bool(n) for n in needs)
    w_spline, w_base = args.w_spline, args.w_base
    if need_wb and w_base is not None and g_wb is None:  # base branch off: no gradient flows
        g_wb = torch.zeros_like(w_base.T, dtype=g_tau.dtype)
    return (
        g_coef.permute(2, 1, 0).contiguous().to(args.coef.dtype) if need_coef else empty(),
        g_wsp.T.contiguous().to(w_spline.dtype)
        if g_wsp is not None and w_spline is not None
        else empty(),
        g_wb.T.contiguous().to(w_base.dtype) if (need_wb and w_base is not None) else empty(),
        g_tau.to(args.tau.dtype) if need_tau else empty(),
    )


def kan_eval_backward(
    grad: Tensor, x: Tensor, args: KANArgs, is_pairwise: bool, needs: list[bool]
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Gradients for (x, coef, w_spline, w_base, tau); empty tensors where ``needs`` is false."""
    gx, g_coef, g_wsp, g_wb, g_tau, _ = _eval_backward(
        grad, None, x, args, is_pairwise, needs, False
    )
    empty = lambda: grad.new_empty(0)
    return (
        gx.to(x.dtype) if needs[0] else empty(),
        *_parameter_grads(args, needs[1:], g_coef, g_wsp, g_wb, g_tau, empty),
    )


def kan_weighted_pairwise(
    z: Tensor, weights: Tensor, args: KANArgs, needs: list[bool]
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """``sum_s weights[s] sum_{o,i} phi_{i->o}(z[s, o, i])`` (0-d) and the gradients of (coef,
    w_spline, w_base, tau) that ``needs`` asks for (empty tensors for the others)."""
    _, g_coef, g_wsp, g_wb, g_tau, value = _eval_backward(
        None, weights, z, args, True, [False, *needs], True
    )
    empty = lambda: z.new_empty(0)
    return (
        value.to(torch.result_type(z, args.coef)),
        *_parameter_grads(args, needs, g_coef, g_wsp, g_wb, g_tau, empty),
    )


def kan_features(x: Tensor, b: BasisArgs, activation: str, by_input: bool = False) -> Tensor:
    """``(S, I) -> (S, M [+1], I)``: basis values, then ``b(x)`` as row M with a base branch; or,
    ``by_input`` (no base branch), ``(I, S, M)`` (a permuted copy)."""
    if by_input:
        return kan_features(x, b, "none").permute(2, 0, 1).contiguous()
    dtype = compute_dtype(x)
    S, I = x.shape
    M = b.num_bases
    base = activation != "none"
    layer = _Layer(b, activation, dtype)
    xc = x.detach().to(dtype).contiguous()
    alloc = torch.zeros if b.basis == "bspline" else torch.empty  # B-splines write non-zeros only
    feats = alloc(S, M + int(base), I, dtype=dtype, device=x.device)
    N = S * I
    block_n, _ = _blocks(1, layer.rp, dtype, _FORWARD_BUDGET)
    sizes = (N, I, M, M + int(base), layer.K, layer.nslot)
    blocks = {"BLOCK_N": block_n, **layer.constants()}
    if N > 0:
        with _device(x):
            launch = (triton.cdiv(N, block_n),)
            _features_fwd_kernel[launch](
                xc, *layer.tables(), feats, *sizes, HAS_BASE=base, **blocks
            )
    return feats.to(x.dtype)


def kan_features_backward(
    grad: Tensor, x: Tensor, b: BasisArgs, activation: str, by_input: bool, needs: list[bool]
) -> tuple[Tensor, Tensor]:
    """Gradients for (x, tau) from the features' gradient (laid out as the features were, see
    :func:`kan_features`); empty where ``needs`` is false."""
    if by_input:  # (I, S, M) -> the (S, M, I) layout, without a base row
        grad, activation = grad.permute(1, 2, 0).contiguous(), "none"
    need_x, need_tau = bool(needs[0]), bool(needs[1])
    dtype = compute_dtype(x)
    S, I = x.shape
    M = b.num_bases
    layer = _Layer(b, activation, dtype)
    xc = x.detach().to(dtype).contiguous()
    gx = torch.empty(S, I, dtype=dtype, device=x.device) if need_x else None
    N = S * I
    block_n, _ = _blocks(1, layer.rp, dtype, _BACKWARD_BUDGET)
    programs = triton.cdiv(N, block_n) if N > 0 else 0
    partials = torch.zeros(max(programs, 1), dtype=dtype, device=x.device)
    base = activation != "none"
    compute_tau = need_tau and b.basis != "bspline"
    if programs > 0 and (need_x or compute_tau):
        gc = grad.detach().to(dtype).contiguous()
        sizes = (N, I, M, M + int(base), layer.K, layer.nslot)
        flags = {"HAS_BASE": base, "NEED_X": need_x, "NEED_TAU": compute_tau}
        blocks = {"BLOCK_N": block_n, **layer.constants()}
        with _device(x):
            _features_bwd_kernel[(programs,)](
                xc, gc, *layer.tables(), layer.pick(gx), partials, *sizes, **flags, **blocks
            )
    elif gx is not None:  # need_x
        gx.zero_()
    return (
        gx.to(x.dtype) if gx is not None else grad.new_empty(0),
        partials.sum().to(b.tau.dtype) if need_tau else grad.new_empty(0),
    )
