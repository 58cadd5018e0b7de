"""The KAN evaluations as PyTorch custom operators: definitions, kernels per device, fake (meta)
implementations and autograd formulas.

- ``tkam::kan_eval``: pairwise ``(S, O, I) -> (S, O, I)`` or outer ``(S, I) -> (S, O, I)``;
- ``tkam::kan_features``: ``(S, I) -> (S, M [+1], I)`` basis values (and ``b(x)``), or the
  ``(I, S, M)`` basis values ``by_input``; ``tkam::kan_weights``: the ``(M [+1], I, O)`` weights
  they are contracted with (summed layers);
- ``tkam::kan_weighted_pairwise``: ``sum_s w_s sum_{o,i} phi_{i->o}(z[s, o, i])`` with the
  parameter gradients, in one pass.

The operators take the fields of :class:`~tkam.kan.arguments.KANArgs` (or
:class:`~tkam.kan.arguments.BasisArgs`) one by one, as their schemas (written from those types)
say; every implementation takes the named tuple whole. Each operator has a hand-written backward
(the ``..._backward`` operators) that recomputes the basis values instead of storing them, so the
forward and backward hold no ``(S, O, I, M)`` tensor. The kernels: the eager code
(:mod:`tkam.kan.eager`) by default, the fused C++ kernels (:mod:`tkam.kan.native_calls`) on CPU
(the eager code where the library is missing), the Triton kernels
(:mod:`tkam.kan.triton_kernels`) on CUDA where triton is installed; the backward operators run on
other devices by a round trip through the CPU kernel. They work with autograd, ``torch.compile``
and ``torch.func`` (first-order); :func:`call` picks the form each needs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor

from tkam.kan import eager, native_calls, triton_kernels
from tkam.kan.arguments import BasisArgs, KANArgs, schema, split
from tkam.kan.native import native_applies, triton_enabled

__all__ = [
    "call",
    "kan_eval",
    "kan_features",
    "kan_weights",
    "kan_weighted_pairwise",
    "Eval",
    "Features",
    "Weights",
    "WeightedPairwise",
    "register_triton_kernels",
]

_FIVE = "(Tensor, Tensor, Tensor, Tensor, Tensor)"


def _unpacking(fn: Callable, start: int, kind: type[NamedTuple] = KANArgs) -> Callable:
    """``fn(*head, args, *tail)`` as an operator kernel, which gets the fields of ``args`` (a
    ``kind``) one by one from position ``start``."""
    n = len(kind._fields)

    def kernel(*inputs):
        return fn(*inputs[:start], kind._make(inputs[start : start + n]), *inputs[start + n :])

    kernel.__name__ = kernel.__qualname__ = fn.__name__
    return kernel


def _define(name: str, signature: str, default: Callable) -> torch.library.CustomOpDef:
    return torch.library.custom_op(f"tkam::{name}", default, mutates_args=(), schema=signature)


def _on_cpu(kernel: Callable) -> Callable:
    """``kernel`` run on CPU copies of the tensor inputs, its results moved back to their device."""

    def run(*inputs):
        device = next(a.device for a in inputs if isinstance(a, Tensor))
        moved = [a.cpu() if isinstance(a, Tensor) else a for a in inputs]
        return tuple(t.to(device) for t in kernel(*moved))

    return run


def _native_or_eager(native: Callable, reference: Callable) -> Callable:
    """A CPU kernel: ``native`` where the library is built, else ``reference``."""

    def kernel(first: Tensor, *rest):
        return (native if native_applies(first) else reference)(first, *rest)

    return kernel


def _field_grads(kind: type[NamedTuple], **grads: Tensor | None) -> tuple:
    """The gradients of the fields of ``kind``, in their order (``None`` for those not named)."""
    return tuple(grads.get(name) for name in kind._fields)


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


def call(op, function, *inputs):
    """Run operator ``op``, through ``function`` (its autograd.Function form) under torch.func.

    torch.func transforms need the Function form (``setup_context``); eager autograd and
    torch.compile's tracing use the operator and its registered autograd formula directly.
    """
    if torch._C._are_functorch_transforms_active():
        return function.apply(*inputs)
    return op(*inputs)


# ---------------------------------------------------------------------------------------------
# tkam::kan_eval (pairwise and outer)

kan_eval = _define(
    "kan_eval",
    f"(Tensor x, {schema(KANArgs)}, bool is_pairwise) -> Tensor",
    _unpacking(eager.evaluate, 1),
)
kan_eval.register_kernel("cpu")(
    _unpacking(_native_or_eager(native_calls.evaluate, eager.evaluate), 1)
)


def _eval_fake(x: Tensor, args: KANArgs, is_pairwise: bool) -> Tensor:
    (I, O, _), S = args.coef.shape, x.shape[0]
    return x.new_empty(S, O, I, dtype=torch.result_type(x, args.coef))


kan_eval.register_fake(_unpacking(_eval_fake, 1))

# Gradients for (x, coef, w_spline, w_base, tau); empty where ``needs`` is false.
_kan_eval_backward = _define(
    "kan_eval_backward",
    f"(Tensor grad, Tensor x, {schema(KANArgs)}, bool is_pairwise, bool[] needs) -> {_FIVE}",
    _on_cpu(_unpacking(native_calls.evaluate_backward, 2)),
)
_kan_eval_backward.register_kernel("cpu")(_unpacking(native_calls.evaluate_backward, 2))


def _eval_backward_fake(grad: Tensor, x: Tensor, args: KANArgs, is_pairwise: bool, needs):
    shapes = [x, args.coef, args.w_spline, args.w_base, args.tau]
    return tuple(
        torch.empty_like(t) if (need and t is not None) else grad.new_empty(0)
        for t, need in zip(shapes, needs)
    )


_kan_eval_backward.register_fake(_unpacking(_eval_backward_fake, 2))
_EvalBackward = _first_order_only(_kan_eval_backward)


def _eval_setup(ctx, inputs, output) -> None:
    x, *fields, is_pairwise = inputs
    tensors, static = split(KANArgs, fields)
    ctx.save_for_backward(x, *tensors)
    ctx.static = (*static, is_pairwise)


def _eval_backward(ctx, grad):
    x, *tensors = ctx.saved_tensors
    wanted = KANArgs._make(ctx.needs_input_grad[1:-1])
    needs = [
        bool(n)
        for n in (ctx.needs_input_grad[0], wanted.coef, wanted.w_spline, wanted.w_base, wanted.tau)
    ]
    gx, g_coef, g_wsp, g_wb, g_tau = call(
        _kan_eval_backward, _EvalBackward, grad.contiguous(), x, *tensors, *ctx.static, needs
    )
    pick = lambda g, need: g if need else None
    grads = _field_grads(
        KANArgs,
        coef=pick(g_coef, needs[1]),
        w_spline=pick(g_wsp, needs[2]),
        w_base=pick(g_wb, needs[3]),
        tau=pick(g_tau, needs[4]),
    )
    return (pick(gx, needs[0]), *grads, None)


kan_eval.register_autograd(_eval_backward, setup_context=_eval_setup)


# ---------------------------------------------------------------------------------------------
# tkam::kan_features and tkam::kan_weights (summed layers)

kan_features = _define(
    "kan_features",
    f"(Tensor x, {schema(BasisArgs)}, str activation, bool by_input) -> Tensor",
    _unpacking(eager.features, 1, BasisArgs),
)
kan_features.register_kernel("cpu")(
    _unpacking(_native_or_eager(native_calls.features, eager.features), 1, BasisArgs)
)


def _features_fake(x: Tensor, b: BasisArgs, activation: str, by_input: bool) -> Tensor:
    S, I = x.shape
    if by_input:
        return x.new_empty(I, S, b.num_bases)
    return x.new_empty(S, b.num_bases + int(activation != "none"), I)


kan_features.register_fake(_unpacking(_features_fake, 1, BasisArgs))

# Gradients for (x, tau) from the features' gradient; empty where ``needs`` is false.
_kan_features_backward = _define(
    "kan_features_backward",
    f"(Tensor grad, Tensor x, {schema(BasisArgs)}, str activation, bool by_input, bool[] needs)"
    " -> (Tensor, Tensor)",
    _on_cpu(_unpacking(native_calls.features_backward, 2, BasisArgs)),
)
_kan_features_backward.register_kernel("cpu")(
    _unpacking(native_calls.features_backward, 2, BasisArgs)
)


def _features_backward_fake(grad, x, b: BasisArgs, activation, by_input, needs):
    return (
        torch.empty_like(x) if needs[0] else grad.new_empty(0),
        torch.empty_like(b.tau) if needs[1] else grad.new_empty(0),
    )


_kan_features_backward.register_fake(_unpacking(_features_backward_fake, 2, BasisArgs))
_FeaturesBackward = _first_order_only(_kan_features_backward)


def _features_setup(ctx, inputs, output) -> None:
    x, *fields = inputs
    tensors, static = split(BasisArgs, fields)
    ctx.save_for_backward(x, *tensors)
    ctx.static = static


def _features_backward(ctx, grad):
    x, *tensors = ctx.saved_tensors
    wanted = BasisArgs._make(ctx.needs_input_grad[1 : 1 + len(BasisArgs._fields)])
    needs = [bool(ctx.needs_input_grad[0]), bool(wanted.tau)]
    inputs = (grad.contiguous(), x, *tensors, *ctx.static, needs)
    gx, g_tau = call(_kan_features_backward, _FeaturesBackward, *inputs)
    grads = _field_grads(BasisArgs, tau=g_tau if needs[1] else None)
    return (gx if needs[0] else None, *grads, None, None)


kan_features.register_autograd(_features_backward, setup_context=_features_setup)


@torch.library.custom_op("tkam::kan_weights", mutates_args=())
def kan_weights(coef: Tensor, w_spline: Tensor | None, w_base: Tensor | None) -> Tensor:
    """``W[m, i, o] = coef[i, o, m] w_spline[i, o]``, ``W[M, i, o] = w_base[i, o]``."""
    return eager.weights(coef, w_spline, w_base)


kan_weights.register_kernel("cpu")(_native_or_eager(native_calls.weights, eager.weights))


@kan_weights.register_fake
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


_kan_weights_backward.register_kernel("cpu")(native_calls.weights_backward)


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
    g_coef, g_wsp = call(
        _kan_weights_backward, _WeightsBackward, grad.contiguous(), coef, w_spline, needs
    )
    g_wb = grad[coef.shape[-1]] if (ctx.has_base and ctx.needs_input_grad[2]) else None
    return (g_coef if needs[0] else None, g_wsp if needs[1] else None, g_wb)


kan_weights.register_autograd(_weights_backward, setup_context=_weights_setup)


# ---------------------------------------------------------------------------------------------
# tkam::kan_weighted_pairwise: sum_s w_s sum_{o,i} phi_{i->o}(z[s, o, i]) and its parameter
# gradients in one pass (the prior term of the training losses, whose latents and weights are
# constants).

# The weighted sum (a 0-d tensor) and the gradients of (coef, w_spline, w_base, tau) that
# ``needs`` asks for (empty tensors for the others).
kan_weighted_pairwise = _define(
    "kan_weighted_pairwise",
    f"(Tensor z, Tensor weights, {schema(KANArgs)}, bool[] needs) -> {_FIVE}",
    _on_cpu(_unpacking(native_calls.weighted_pairwise, 2)),
)
kan_weighted_pairwise.register_kernel("cpu")(_unpacking(native_calls.weighted_pairwise, 2))


def _weighted_pairwise_fake(z: Tensor, weights: Tensor, args: KANArgs, needs):
    grads = [
        torch.empty_like(t) if (need and t is not None) else z.new_empty(0)
        for t, need in zip([args.coef, args.w_spline, args.w_base, args.tau], needs)
    ]
    return (z.new_empty((), dtype=torch.result_type(z, args.coef)), *grads)


kan_weighted_pairwise.register_fake(_unpacking(_weighted_pairwise_fake, 2))


class WeightedPairwise(torch.autograd.Function):
    """Returns the weighted sum; its backward scales the gradients computed with it."""

    @staticmethod
    def forward(ctx, z, weights, *fields):
        wanted = KANArgs._make(ctx.needs_input_grad[2:])
        needs = [bool(n) for n in (wanted.coef, wanted.w_spline, wanted.w_base, wanted.tau)]
        value, *grads = kan_weighted_pairwise(z, weights, *fields, needs)
        ctx.needs = needs
        ctx.save_for_backward(*grads)
        return value

    @staticmethod
    def backward(ctx, grad):
        scaled = [grad * g if need else None for g, need in zip(ctx.saved_tensors, ctx.needs)]
        coef, w_spline, w_base, tau = scaled
        fields = _field_grads(KANArgs, coef=coef, w_spline=w_spline, w_base=w_base, tau=tau)
        return (None, None, *fields)


# ---------------------------------------------------------------------------------------------
# autograd.Function wrappers: the same backward as the operators' registrations, with the
# ``setup_context`` form that torch.func transforms (grad, vjp, jacrev) require.


def _function(op, setup, registered_backward) -> type[torch.autograd.Function]:
    """An autograd.Function that runs the operator ``op`` with its registered backward."""

    class Function(torch.autograd.Function):
        @staticmethod
        def forward(*inputs):
            return op(*inputs)

        setup_context = staticmethod(setup)
        backward = staticmethod(registered_backward)

    return Function


# The registered operators (not the Python definitions), which torch.compile traces as such.
Eval = _function(torch.ops.tkam.kan_eval.default, _eval_setup, _eval_backward)
Features = _function(torch.ops.tkam.kan_features.default, _features_setup, _features_backward)
Weights = _function(torch.ops.tkam.kan_weights.default, _weights_setup, _weights_backward)


# ---------------------------------------------------------------------------------------------
# The Triton kernels as the operators' CUDA kernels

_REGISTERED = False


def register_triton_kernels() -> None:
    """Install the Triton kernels as the CUDA kernels of the tkam::kan_* operators (idempotent;
    done when this module loads wherever triton imported, unless ``TKAM_TRITON=0``).

    ``tkam::kan_weights`` and its backward need none: their default implementations are torch
    operations, which run on CUDA.
    """
    global _REGISTERED
    if not triton_kernels.available():
        raise RuntimeError("triton is not installed: the CUDA kernels of tkam.kan are unavailable")
    if _REGISTERED:
        return
    for op, fn, start, kind in (
        (kan_eval, triton_kernels.kan_eval, 1, KANArgs),
        (_kan_eval_backward, triton_kernels.kan_eval_backward, 2, KANArgs),
        (kan_features, triton_kernels.kan_features, 1, BasisArgs),
        (_kan_features_backward, triton_kernels.kan_features_backward, 2, BasisArgs),
        (kan_weighted_pairwise, triton_kernels.kan_weighted_pairwise, 2, KANArgs),
    ):
        op.register_kernel("cuda")(_unpacking(fn, start, kind))
    _REGISTERED = True


if triton_enabled():
    register_triton_kernels()
