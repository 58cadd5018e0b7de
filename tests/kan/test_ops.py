"""The fused univariate-function operators against the eager reference (tkam.kan.ops).

Every basis x base activation x evaluation (pairwise, outer, summed): values and the gradients of
the input, the coefficients, ``w_spline``, ``w_base`` and ``tau`` agree with the eager PyTorch
code in float64 to 1e-9 (relative to the largest entry); in float32 the fused error against the
float64 truth is at most a few times the eager float32 error. ``gradcheck`` in float64, the
operators' registration (``torch.library.opcheck``), ``torch.compile`` and ``torch.func``.
"""

from __future__ import annotations

import itertools

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from tests.helpers import requires_native
from tkam.config import BASE_ACTIVATIONS, KANConfig
from tkam.kan import native, ops
from tkam.kan.layer import UnivariateLayer

pytestmark = requires_native

ALL_BASES = ("bspline", "rbf", "rswaf", "fourier", "chebyshev")
EVALUATIONS = ("pairwise", "outer", "summed")
COMBINATIONS = [
    (basis, act)
    for basis, act in itertools.product(ALL_BASES, BASE_ACTIVATIONS)
    if basis != "chebyshev" or act == "none"  # Chebyshev has no base branch
]


def random_layer(
    basis: str,
    activation: str,
    in_dim: int,
    out_dim: int,
    grid_size: int = 5,
    degree: int = 3,
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
) -> UnivariateLayer:
    """A layer with O(1) random parameters (the initial ones are tiny) and a trainable tau."""
    tau = 1.3 if basis == "chebyshev" else 0.9
    config = KANConfig(
        basis=basis,
        base_activation=activation,
        grid_size=grid_size,
        spline_degree=degree,
        init_tau=tau,
        tau_trainable=True,
    )
    layer = UnivariateLayer(in_dim, out_dim, config, rng=torch.Generator().manual_seed(seed))
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for p in layer.parameters():
            if p.dim() > 0:
                p.copy_(torch.randn(p.shape, generator=g))
        if basis in ("bspline", "rbf", "rswaf"):
            # A non-uniform grid, as after grid updates.
            jitter = torch.rand(layer.grid.shape, generator=g) * 0.05
            layer.grid.copy_(torch.sort(layer.grid + jitter, dim=1).values)
    return layer.to(dtype)


def inputs(evaluation: str, layer: UnivariateLayer, samples: int, seed: int) -> torch.Tensor:
    shape = (samples, layer.out_dim, layer.in_dim) if evaluation == "pairwise" else None
    shape = shape or (samples, layer.in_dim)
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g, dtype=layer.coef.dtype) * 1.5


def evaluate(
    layer: UnivariateLayer, evaluation: str, x: torch.Tensor, fused: bool
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Values and the gradients of (x, *trainable parameters) for a random output weighting."""
    fn = getattr(ops, evaluation if fused else f"eager_{evaluation}")
    x = x.detach().requires_grad_()
    params = [p for p in layer.parameters() if p.requires_grad]
    y = fn(x, layer.arguments())
    weight = torch.randn(y.shape, generator=torch.Generator().manual_seed(7), dtype=y.dtype)
    leaves = [x, *params]
    # allow_unused: a degree-0 B-spline without base branch is constant in x between knots.
    grads = torch.autograd.grad((y * weight).sum(), leaves, allow_unused=True)
    return y.detach(), [torch.zeros_like(t) if g is None else g for t, g in zip(leaves, grads)]


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    """Largest difference relative to the largest entry of ``b`` (absolute when ``b`` is 0)."""
    return float(
        (a.double() - b.double()).abs().max()
        / b.double().abs().max().clamp_min(1.0e-300 if b.abs().max() > 0 else 1.0)
    )


@pytest.mark.parametrize("evaluation", EVALUATIONS)
@pytest.mark.parametrize(("basis", "activation"), COMBINATIONS)
def test_fused_matches_eager_in_float64(basis, activation, evaluation) -> None:
    layer = random_layer(basis, activation, in_dim=5, out_dim=4)
    x = inputs(evaluation, layer, samples=7, seed=3)
    value, grads = evaluate(layer, evaluation, x, fused=True)
    ref_value, ref_grads = evaluate(layer, evaluation, x, fused=False)
    assert value.shape == ref_value.shape
    assert relative_error(value, ref_value) < 1e-9
    names = ["x"] + [n for n, p in layer.named_parameters() if p.requires_grad]
    for name, g, ref in zip(names, grads, ref_grads):
        assert g.shape == ref.shape, name
        assert relative_error(g, ref) < 1e-9, name


@pytest.mark.parametrize("evaluation", EVALUATIONS)
@pytest.mark.parametrize(("basis", "activation"), COMBINATIONS)
def test_fused_float32_is_as_accurate_as_eager_float32(basis, activation, evaluation) -> None:
    # Against the float64 truth: the fused float32 error stays within a few times the eager
    # float32 error (both are rounding; Fourier's tau gradient cancels many terms), and small.
    layer64 = random_layer(basis, activation, in_dim=6, out_dim=5, seed=4)
    layer32 = random_layer(basis, activation, in_dim=6, out_dim=5, seed=4, dtype=torch.float32)
    x = inputs(evaluation, layer64, samples=9, seed=5)
    truth, truth_grads = evaluate(layer64, evaluation, x, fused=False)
    fused, fused_grads = evaluate(layer32, evaluation, x.float(), fused=True)
    eager, eager_grads = evaluate(layer32, evaluation, x.float(), fused=False)
    for f, e, t in zip([fused, *fused_grads], [eager, *eager_grads], [truth, *truth_grads]):
        assert f.dtype == torch.float32
        assert relative_error(f, t) <= max(8 * relative_error(e, t), 2e-6)


@given(
    basis=st.sampled_from(ALL_BASES),
    activation=st.sampled_from(["none", "silu", "relu", "gelu", "tanh"]),
    evaluation=st.sampled_from(EVALUATIONS),
    in_dim=st.integers(1, 19),
    out_dim=st.integers(1, 9),
    samples=st.integers(1, 12),
    grid_size=st.integers(1, 12),
    degree=st.integers(0, 4),
    seed=st.integers(0, 10_000),
)
def test_fused_matches_eager_on_random_shapes(
    basis, activation, evaluation, in_dim, out_dim, samples, grid_size, degree, seed
) -> None:
    if basis == "chebyshev":
        activation = "none"
    layer = random_layer(basis, activation, in_dim, out_dim, grid_size, degree, seed)
    x = inputs(evaluation, layer, samples, seed)
    value, grads = evaluate(layer, evaluation, x, fused=True)
    ref_value, ref_grads = evaluate(layer, evaluation, x, fused=False)
    assert relative_error(value, ref_value) < 1e-9
    for g, ref in zip(grads, ref_grads):
        assert relative_error(g, ref) < 1e-9


@pytest.mark.parametrize("evaluation", EVALUATIONS)
@pytest.mark.parametrize(
    ("basis", "activation"),
    [("bspline", "silu"), ("rbf", "gelu"), ("rswaf", "elu"), ("fourier", "tanh"),
     ("chebyshev", "none"), ("rbf", "sigmoid"), ("rswaf", "selu")],
)  # fmt: skip
def test_gradcheck_in_float64(basis, activation, evaluation) -> None:
    layer = random_layer(basis, activation, in_dim=3, out_dim=2, grid_size=4)
    x = inputs(evaluation, layer, samples=3, seed=11)
    if basis == "bspline":  # keep inputs away from knots, where B-splines have kinks
        x = x.clamp(-1.5, 1.5) * 0.37 + 0.011
    fn = getattr(ops, evaluation)
    args = layer.arguments()

    def f(x, coef, w_spline, w_base, tau):
        return fn(x, args._replace(coef=coef, w_spline=w_spline, w_base=w_base, tau=tau))

    leaves = [
        t.detach().clone().requires_grad_() if t is not None else None
        for t in (x, args.coef, args.w_spline, args.w_base, args.tau)
    ]
    if basis == "bspline":
        leaves[4] = leaves[4].detach()  # B-splines do not use tau
    assert torch.autograd.gradcheck(f, leaves, eps=1e-6, atol=1e-6, rtol=1e-5)


def test_operators_pass_opcheck() -> None:
    # Schema, fake (meta) implementations, autograd registration and dispatch consistency.
    # The operators take the fields of KANArgs (BasisArgs for the features) one by one.
    layer = random_layer("rbf", "silu", in_dim=4, out_dim=3)
    args = layer.arguments()
    b = layer.basis_arguments()
    coef, w_spline, w_base = args.coef, args.w_spline, args.w_base
    z = inputs("pairwise", layer, 5, 1).requires_grad_()
    x = inputs("outer", layer, 5, 2).requires_grad_()
    torch.library.opcheck(torch.ops.tkam.kan_eval.default, (z, *args, True))
    torch.library.opcheck(torch.ops.tkam.kan_eval.default, (x, *args, False))
    M = coef.shape[-1]
    for by_input in (False, True):
        act = "none" if by_input else args.activation
        torch.library.opcheck(torch.ops.tkam.kan_features.default, (x, *b, act, by_input))
    torch.library.opcheck(torch.ops.tkam.kan_weights.default, (coef, w_spline, w_base))
    # The backward operators: their outputs must match the fake (meta) implementations exactly,
    # strides included, or compiled graphs reject them.
    needs = [True, True, True, True, True]
    constant = args._replace(
        coef=coef.detach(), w_spline=w_spline.detach(), w_base=w_base.detach(), tau=b.tau.detach()
    )
    for arg, pairwise in ((z, True), (x, False)):
        grad = torch.randn(arg.shape[0], coef.shape[1], coef.shape[0], dtype=arg.dtype)
        torch.library.opcheck(
            torch.ops.tkam.kan_eval_backward.default,
            (grad, arg.detach(), *constant, pairwise, needs),
        )
    weights = torch.randn(z.shape[0], dtype=z.dtype)
    torch.library.opcheck(
        torch.ops.tkam.kan_weighted_pairwise.default, (z.detach(), weights, *constant, needs[:4])
    )
    for by_input, rows in (
        (False, (x.shape[0], M + 1, x.shape[1])),
        (True, (x.shape[1], x.shape[0], M)),
    ):
        act = "none" if by_input else args.activation
        torch.library.opcheck(
            torch.ops.tkam.kan_features_backward.default,
            (torch.randn(rows, dtype=x.dtype), x.detach(), *b._replace(tau=b.tau.detach()), act,
             by_input, [True, True]),
        )  # fmt: skip


def test_torch_compile_and_torch_func_run_through_the_operators() -> None:
    layer = random_layer("rbf", "silu", in_dim=4, out_dim=3, dtype=torch.float32)
    z = inputs("pairwise", layer, 6, 1)
    args = layer.arguments()

    def log_density(z: torch.Tensor) -> torch.Tensor:
        return ops.pairwise(z, args).sum()

    compiled = torch.compile(log_density, fullgraph=True, backend="aot_eager")
    torch.testing.assert_close(compiled(z), log_density(z))
    score = torch.func.grad(log_density)(z)
    reference = torch.func.grad(lambda z: ops.eager_pairwise(z, args).sum())(z)
    torch.testing.assert_close(score, reference, rtol=1e-5, atol=1e-6)


def test_without_the_library_the_operators_run_the_eager_reference(monkeypatch) -> None:
    layer = random_layer("fourier", "relu", in_dim=3, out_dim=2)
    x = inputs("summed", layer, 4, 1)
    fused_value, fused_grads = evaluate(layer, "summed", x, fused=True)
    monkeypatch.setattr(native, "library", lambda: None)
    value, grads = evaluate(layer, "summed", x, fused=True)
    torch.testing.assert_close(value, fused_value, rtol=1e-9, atol=1e-12)
    for g, ref in zip(grads, fused_grads):
        torch.testing.assert_close(g, ref, rtol=1e-9, atol=1e-12)


def test_layers_use_the_configured_kernel() -> None:
    x = torch.randn(8, 3, dtype=torch.float64)
    values = {}
    for kernel in ("fused", "eager"):
        config = KANConfig(basis="rbf", kernel=kernel)
        layer = UnivariateLayer(3, 4, config, rng=torch.Generator().manual_seed(0)).double()
        assert layer.kernel == kernel
        values[kernel] = (layer(x), layer.summed(x), layer.pairwise(x[:, None].expand(8, 4, 3)))
    # Both kernels start from the same parameters and compute the same functions.
    for fused, eager in zip(values["fused"], values["eager"]):
        torch.testing.assert_close(fused, eager, rtol=1e-10, atol=1e-12)


def test_large_batches_without_gradient_are_chunked(monkeypatch) -> None:
    layer = random_layer("rbf", "silu", in_dim=4, out_dim=3)
    x = inputs("summed", layer, 50, 1)
    whole = ops.summed(x, layer.arguments())
    monkeypatch.setattr(ops, "SUMMED_CHUNK", 7)
    with torch.no_grad():
        chunked = ops.summed(x, layer.arguments())
    torch.testing.assert_close(chunked, whole, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(("basis", "activation"), COMBINATIONS)
def test_weighted_pairwise_gives_the_value_and_gradients_of_the_weighted_sum(basis, activation):
    # sum_s w_s sum_{o,i} phi(z[s, o, i]) in one pass, against the eager sum and its autograd.
    layer = random_layer(basis, activation, in_dim=5, out_dim=4, seed=2)
    z = inputs("pairwise", layer, samples=6, seed=8)
    weights = torch.randn(6, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    params = [p for p in layer.parameters() if p.requires_grad]
    results = []
    for fn in (ops.weighted_pairwise, ops.eager_weighted_pairwise):
        value = fn(z, weights, layer.arguments())
        results.append((value.detach(), torch.autograd.grad(2.5 * value, params)))
    (value, grads), (ref_value, ref_grads) = results
    assert value.dim() == 0
    assert relative_error(value, ref_value) < 1e-10
    for g, ref in zip(grads, ref_grads):
        assert relative_error(g, ref) < 1e-9


@pytest.mark.parametrize("activation", ["none", "silu"])
@pytest.mark.parametrize("trainable", ["all", "coef", "tau"])
def test_float32_weighted_pairwise_matches_float64_and_ignores_the_thread_count(
    activation, trainable
) -> None:
    # The float32 RBF pass over blocks of 16 columns (7 x 5 = 35: two blocks and a tail of 3),
    # samples innermost: value and gradients within float32 rounding of the float64 eager
    # truth, and bitwise the same with one thread as with two.
    layer64 = random_layer("rbf", activation, in_dim=5, out_dim=7, grid_size=8, seed=3)
    layer32 = random_layer("rbf", activation, in_dim=5, out_dim=7, grid_size=8, seed=3)
    layer32 = layer32.to(torch.float32)
    for layer in (layer64, layer32):
        for name, p in layer.named_parameters():
            p.requires_grad_(trainable == "all" or name == trainable)
    z = inputs("pairwise", layer64, samples=13, seed=4)
    weights = torch.randn(13, generator=torch.Generator().manual_seed(5), dtype=torch.float64)

    def run(layer, fn, dtype):
        params = [p for p in layer.parameters() if p.requires_grad]
        value = fn(z.to(dtype), weights.to(dtype), layer.arguments())
        return [value.detach(), *torch.autograd.grad(value, params)]

    truth = run(layer64, ops.eager_weighted_pairwise, torch.float64)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = run(layer32, ops.weighted_pairwise, torch.float32)
        torch.set_num_threads(2)
        two = run(layer32, ops.weighted_pairwise, torch.float32)
    finally:
        torch.set_num_threads(threads)
    for a, b, ref in zip(one, two, truth, strict=True):
        assert a.dtype == torch.float32
        assert torch.equal(a, b)
        assert relative_error(a, ref) < 2e-6


@pytest.mark.parametrize("basis", ALL_BASES)
@pytest.mark.parametrize("trainable", ["none", "coef", "tau", "w_base", "all"])
def test_only_the_requested_gradients_are_computed_and_they_are_right(basis, trainable) -> None:
    # Training evaluates the prior at constant latents: gradients for some parameters only.
    activation = "none" if basis == "chebyshev" else "silu"
    layer = random_layer(basis, activation, in_dim=4, out_dim=3, seed=5)
    for name, p in layer.named_parameters():
        p.requires_grad_(trainable == "all" or name == trainable)
    z = inputs("pairwise", layer, samples=5, seed=6)
    weights = torch.randn(5, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    params = [p for p in layer.parameters() if p.requires_grad]
    for evaluation in ("pairwise", "weighted"):
        outs = []
        for fused in (True, False):
            if evaluation == "weighted":
                fn = ops.weighted_pairwise if fused else ops.eager_weighted_pairwise
                y = fn(z, weights, layer.arguments())
            else:
                y = (ops.pairwise if fused else ops.eager_pairwise)(z, layer.arguments())
                y = (y * weights[:, None, None]).sum()
            outs.append((y.detach(), torch.autograd.grad(y, params) if params else ()))
        assert relative_error(outs[0][0], outs[1][0]) < 1e-10
        for g, ref in zip(outs[0][1], outs[1][1]):
            assert relative_error(g, ref) < 1e-9


@pytest.mark.parametrize("active", [(), (3,), (0, 7, 11), tuple(range(20))])
def test_active_rows_matmul_backward_equals_the_matmul(active) -> None:
    # dY with only the `active` rows nonzero (one of them NaN-free but tiny): the gradients of x
    # and w equal the plain matmul's, whether the active-row path runs (few rows) or not (all).
    g = torch.Generator().manual_seed(3)
    x = torch.randn(20, 6, dtype=torch.float64, generator=g, requires_grad=True)
    w = torch.randn(6, 5, dtype=torch.float64, generator=g, requires_grad=True)
    grad = torch.zeros(20, 5, dtype=torch.float64)
    for row in active:
        grad[row] = torch.randn(5, dtype=torch.float64, generator=g)
    if active:
        grad[active[0], 0] = 1e-300
    y = ops.ActiveRowsMatmul.apply(x, w)
    torch.testing.assert_close(y, x @ w, rtol=0, atol=0)
    gx, gw = torch.autograd.grad(y, (x, w), grad)
    ex, ew = torch.autograd.grad(x @ w, (x, w), grad)
    torch.testing.assert_close(gx, ex, rtol=1e-14, atol=0)
    torch.testing.assert_close(gw, ew, rtol=1e-14, atol=1e-300)
    only_w = torch.autograd.grad(ops.ActiveRowsMatmul.apply(x.detach(), w), w, grad)[0]
    torch.testing.assert_close(only_w, ew, rtol=1e-14, atol=1e-300)


def test_summed_layers_train_through_active_rows_only_where_gradients_are_needed() -> None:
    layer = random_layer("rbf", "silu", in_dim=4, out_dim=3)
    x = inputs("summed", layer, 9, 1)
    calls = []
    original = ops.ActiveRowsMatmul.apply

    def counting(*args):
        calls.append(1)
        return original(*args)

    ops.ActiveRowsMatmul.apply = counting  # type: ignore[method-assign]
    try:
        with torch.no_grad():
            ops.summed(x, layer.arguments())
        assert not calls
        ops.summed(x, layer.arguments()).sum().backward()
        assert calls
    finally:
        ops.ActiveRowsMatmul.apply = original  # type: ignore[method-assign]
