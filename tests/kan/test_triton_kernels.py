"""The Triton kernels (tkam.kan.triton_kernels) against the eager reference, in the interpreter.

Skipped without triton. With it, one subprocess with ``TRITON_INTERPRET=1`` (so an earlier
``import triton`` in this session does not matter) calls the kernel functions directly on small
CPU tensors, for every basis and all eleven base activations: the pairwise and outer evaluations
(``tkam::kan_eval`` and its backward), the features of summed layers (``tkam::kan_features`` and
its backward) and the fused weighted pairwise sum (``tkam::kan_weighted_pairwise``). Values and
the gradients of the input, the coefficients, ``w_spline``, ``w_base`` and ``tau`` are compared
with ``tkam.kan.ops.eager_*`` and torch.autograd in float64:

- float32 kernels: max |kernel - truth| <= 1e-4 * max(1, max |truth|) per tensor (the largest
  error seen is 4e-5, in tau's gradient of Fourier bases, a sum with cancellation where the eager
  float32 code errs as much; everything else stays below 3e-6);
- float64 kernels: the same with 1e-10 (errors seen: below 2e-14).

Shapes, dtypes and the empty-tensor convention of the CPU kernels (``needs`` false) are checked too.
On a machine with a CUDA device (marker ``gpu``) the same comparisons run the compiled kernels.
Run as a script (``python tests/kan/test_triton_kernels.py``, with ``TRITON_INTERPRET=1``) it
prints one JSON line: every case's error message, or null when it passed.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("triton") is None, reason="triton is not installed"
)

SRC = Path(__file__).resolve().parents[2] / "src"
TOLERANCE = {"float32": 1e-4, "float64": 1e-10}

# (basis, activation, degree, grid size, dtype, size): every basis, all eleven activations at least
# once (Chebyshev has no base branch), B-spline degrees 0-3 and float64 for every basis. "small" is
# I = 3 inputs, O = 2 outputs and a handful of samples (one program per launch); "large" is I = 5,
# O = 20 and 40 samples: several programs, partial last blocks and two blocks of outputs.
CASES = [
    ("bspline", "silu", 3, 5, "float32", "small"),
    ("bspline", "relu", 3, 4, "float32", "small"),
    ("bspline", "none", 2, 5, "float32", "small"),
    ("bspline", "gelu", 1, 3, "float32", "small"),
    ("bspline", "selu", 0, 4, "float32", "small"),
    ("bspline", "silu", 3, 5, "float64", "small"),
    ("bspline", "elu", 3, 6, "float32", "large"),
    ("rbf", "tanh", 0, 5, "float32", "small"),
    ("rbf", "sigmoid", 0, 4, "float32", "small"),
    ("rbf", "selu", 0, 5, "float64", "small"),
    ("rbf", "silu", 0, 6, "float32", "large"),
    ("rswaf", "swish", 0, 5, "float32", "small"),
    ("rswaf", "leakyrelu", 0, 4, "float32", "small"),
    ("rswaf", "elu", 0, 5, "float64", "small"),
    ("fourier", "celu", 0, 4, "float32", "small"),
    ("fourier", "none", 0, 3, "float32", "small"),
    ("fourier", "gelu", 0, 4, "float64", "small"),
    ("fourier", "tanh", 0, 3, "float32", "large"),
    ("chebyshev", "none", 4, 1, "float32", "small"),
    ("chebyshev", "none", 0, 1, "float32", "small"),
    ("chebyshev", "none", 5, 1, "float64", "small"),
    ("chebyshev", "none", 3, 1, "float32", "large"),
]
SIZES = {"small": (3, 2, 5), "large": (5, 20, 40)}  # (I, O, samples)
EVALUATIONS = ("pairwise", "outer", "features", "weighted")


def case_id(case: tuple) -> str:
    return "-".join(str(part) for part in case)


@pytest.fixture(scope="module")
def results() -> dict:
    env = dict(os.environ, TRITON_INTERPRET="1", OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, __file__], env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("evaluation", EVALUATIONS)
@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_matches_eager(results: dict, case: tuple, evaluation: str) -> None:
    key = f"{case_id(case)}/{evaluation}"
    assert key in results, f"{key} did not run"
    assert results[key] is None, results[key]


def test_conventions(results: dict) -> None:
    """Partial ``needs``, a base weight without activation, an empty batch, registration."""
    assert results["conventions"] is None, results["conventions"]


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available() and os.environ.get("TRITON_INTERPRET") != "1"


@pytest.mark.gpu
@pytest.mark.parametrize("evaluation", EVALUATIONS)
@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_cuda_matches_eager(case: tuple, evaluation: str) -> None:
    """The same comparisons with the compiled kernels on a CUDA device (same tolerances)."""
    if not _cuda():
        pytest.skip("needs a CUDA device")
    CHECKS[evaluation](case, device="cuda")


# ---------------------------------------------------------------------------------------------
# The comparison, run in the subprocess (torch and tkam are imported only here).


def _parameters(basis, activation, degree, grid_size, dtype, seed=0, I=3, O=2):
    """Random O(1) parameters of an (I -> O) layer and its grid state, as in ``UnivariateLayer``."""
    import torch

    from tkam.kan import bases

    g = torch.Generator().manual_seed(seed)
    M = bases.num_bases(basis, grid_size, degree)
    points = torch.linspace(-2.0, 2.0, grid_size + 1).repeat(I, 1)
    # A non-uniform grid, as after grid updates.
    points = torch.sort(points + 0.2 * torch.rand(points.shape, generator=g), dim=1).values
    if basis == "bspline":
        grid = bases.extend_grid(points, degree)
    elif basis in ("rbf", "rswaf"):
        grid = points
    else:
        grid = torch.empty(I, 0)
    chebyshev = basis == "chebyshev"
    params = {
        "coef": torch.randn(I, O, M, generator=g),
        "w_spline": None if chebyshev else torch.randn(I, O, generator=g),
        "w_base": None if chebyshev else torch.randn(I, O, generator=g),
        "grid": grid,
        "tau": torch.tensor(1.3 if chebyshev else 0.8),
        "bandwidth": torch.tensor(4.0 / grid_size),
    }
    params = {k: None if v is None else v.to(dtype) for k, v in params.items()}
    return params, M


def _inputs(shape, dtype, seed):
    import torch

    g = torch.Generator().manual_seed(seed)
    return (torch.randn(shape, generator=g) * 1.5).to(dtype)


def _compare(name, actual, expected, tol, dtype, device="cpu"):
    import torch

    if actual.device.type != device:
        raise AssertionError(f"{name}: on {actual.device}, expected {device}")
    actual = actual.cpu()
    if expected is None:  # a parameter the function does not use: a zero gradient
        expected = torch.zeros_like(actual, dtype=torch.float64)
    if actual.shape != expected.shape:
        raise AssertionError(f"{name}: shape {tuple(actual.shape)} != {tuple(expected.shape)}")
    if actual.dtype != dtype:
        raise AssertionError(f"{name}: dtype {actual.dtype}, expected {dtype}")
    err = (actual.double() - expected.double()).abs().max().item() if actual.numel() else 0.0
    scale = max(1.0, expected.abs().max().item() if expected.numel() else 0.0)
    if not err <= tol * scale:
        raise AssertionError(f"{name}: max error {err:.3e} > {tol:.0e} * {scale:.3g}")


def _reference(fn, leaves, *rest):
    """Value and autograd gradients of ``fn(*leaves, *rest)`` weighted by a fixed random tensor;
    float64 copies of the leaves (None stays None)."""
    import torch

    copies = [None if t is None else t.detach().double().requires_grad_() for t in leaves]
    out = fn(*copies, *rest)
    weight = _inputs(out.shape, torch.float64, seed=7)
    live = [t for t in copies if t is not None]
    if not out.requires_grad:  # constant in everything (a Chebyshev basis of degree 0)
        return out.detach(), weight, [None] * len(copies)
    grads = iter(torch.autograd.grad((out * weight).sum(), live, allow_unused=True))
    return out.detach(), weight, [None if t is None else next(grads) for t in copies]


def _to(device, *tensors):
    return [None if t is None else t.to(device) for t in tensors]


def _arguments(p, static, M, device="cpu"):
    """The KANArgs and BasisArgs of parameters ``p`` (from :func:`_parameters`) on ``device``;
    ``static``: (basis, degree, activation)."""
    from tkam.kan.arguments import BasisArgs, KANArgs

    names = ("coef", "w_spline", "w_base", "grid", "tau", "bandwidth")
    args = KANArgs(*_to(device, *(p[k] for k in names)), *static)
    b = BasisArgs(*_to(device, p["grid"], p["tau"], p["bandwidth"]), *static[:2], M)
    return args, b


def _check_eval(case, pairwise: bool, device: str = "cpu") -> None:
    import torch

    from tkam.kan import eager as reference
    from tkam.kan import triton_kernels as tk
    from tkam.kan.arguments import KANArgs

    basis, activation, degree, grid_size, dname, size = case
    dtype = getattr(torch, dname)
    I, O, S = SIZES[size]
    p, M = _parameters(basis, activation, degree, grid_size, dtype, I=I, O=O)
    x = _inputs((S, O, I) if pairwise else (S, I), dtype, seed=1)
    static = (basis, degree, activation)

    def eager(x, coef, w_spline, w_base, tau, grid, bandwidth):
        args = KANArgs(coef, w_spline, w_base, grid, tau, bandwidth, *static)
        return reference.evaluate(x, args, pairwise)

    leaves = [x, p["coef"], p["w_spline"], p["w_base"], p["tau"]]
    value, weight, grads = _reference(eager, leaves, p["grid"].double(), p["bandwidth"].double())
    args, _ = _arguments(p, static, M, device)
    xd, gd = _to(device, x, weight.to(dtype))
    tol = TOLERANCE[dname]
    _compare("value", tk.kan_eval(xd, args, pairwise), value, tol, dtype, device)
    out = tk.kan_eval_backward(gd, xd, args, pairwise, [True] * 5)
    names = ("grad x", "grad coef", "grad w_spline", "grad w_base", "grad tau")
    for name, actual, expected, leaf in zip(names, out, grads, leaves):
        if leaf is None:
            if actual.numel() != 0:
                raise AssertionError(f"{name}: expected an empty tensor for an absent parameter")
            continue
        _compare(name, actual, expected, tol, dtype, device)


def _check_features(case, device: str = "cpu") -> None:
    import torch

    from tkam.kan import eager as reference
    from tkam.kan import triton_kernels as tk
    from tkam.kan.arguments import BasisArgs

    basis, activation, degree, grid_size, dname, size = case
    dtype = getattr(torch, dname)
    I, O, S = SIZES[size]
    p, M = _parameters(basis, activation, degree, grid_size, dtype, I=I, O=O)
    x = _inputs((S + 1, I), dtype, seed=2)

    def eager(x, tau, grid, bandwidth):
        return reference.features(x, BasisArgs(grid, tau, bandwidth, basis, degree, M), activation)

    value, weight, grads = _reference(
        eager, [x, p["tau"]], p["grid"].double(), p["bandwidth"].double()
    )
    _, b = _arguments(p, (basis, degree, activation), M, device)
    xd, gd = _to(device, x, weight.to(dtype))
    tol = TOLERANCE[dname]
    _compare("features", tk.kan_features(xd, b, activation), value, tol, dtype, device)
    gx, g_tau = tk.kan_features_backward(gd, xd, b, activation, False, [True, True])
    _compare("grad x", gx, grads[0], tol, dtype, device)
    _compare("grad tau", g_tau, grads[1], tol, dtype, device)


def _check_weighted(case, device: str = "cpu") -> None:
    import torch

    from tkam.kan import eager as reference
    from tkam.kan import triton_kernels as tk
    from tkam.kan.arguments import KANArgs

    basis, activation, degree, grid_size, dname, size = case
    dtype = getattr(torch, dname)
    I, O, S = SIZES[size]
    p, M = _parameters(basis, activation, degree, grid_size, dtype, I=I, O=O)
    z = _inputs((S + 2, O, I), dtype, seed=3)
    weights = _inputs((S + 2,), dtype, seed=4)
    static = (basis, degree, activation)

    def eager(coef, w_spline, w_base, tau, grid, bandwidth):
        args = KANArgs(coef, w_spline, w_base, grid, tau, bandwidth, *static)
        return reference.weighted_pairwise(z.double(), weights.double(), args)

    leaves = [p["coef"], p["w_spline"], p["w_base"], p["tau"]]
    copies = [None if t is None else t.detach().double().requires_grad_() for t in leaves]
    value = eager(*copies, p["grid"].double(), p["bandwidth"].double())
    live = [t for t in copies if t is not None]
    grads = iter(torch.autograd.grad(value, live, allow_unused=True))
    expected = [None if t is None else next(grads) for t in copies]
    args, _ = _arguments(p, static, M, device)
    out = tk.kan_weighted_pairwise(*_to(device, z, weights), args, [True] * 4)
    tol = TOLERANCE[dname]
    _compare("value", out[0], value.detach(), tol, dtype, device)
    names = ("grad coef", "grad w_spline", "grad w_base", "grad tau")
    for name, actual, exp, leaf in zip(names, out[1:], expected, leaves):
        if leaf is None:
            if actual.numel() != 0:
                raise AssertionError(f"{name}: expected an empty tensor for an absent parameter")
            continue
        _compare(name, actual, exp, tol, dtype, device)


def _check_conventions() -> None:
    import torch

    from tkam.kan import operators
    from tkam.kan import triton_kernels as tk

    f32 = torch.float32
    p, M = _parameters("rbf", "none", 0, 4, f32)
    I, O, _ = p["coef"].shape
    args, _ = _arguments(p, ("rbf", 0, "none"), M)
    x = _inputs((4, I), f32, seed=5)
    grad = _inputs((4, O, I), f32, seed=6)
    # Only some gradients; w_base given but the branch off ("none"): zeros, as on CPU.
    gx, g_coef, g_wsp, g_wb, g_tau = tk.kan_eval_backward(
        grad, x, args, False, [False, True, False, True, False]
    )
    if gx.numel() or g_wsp.numel() or g_tau.numel():
        raise AssertionError("gradients that were not asked for must be empty tensors")
    if g_coef.shape != (I, O, M) or not torch.equal(g_wb, torch.zeros(I, O)):
        raise AssertionError("wrong coefficient gradient shape or non-zero w_base gradient")
    # B-splines do not depend on tau: its gradient is a zero scalar.
    pb, Mb = _parameters("bspline", "tanh", 3, 4, f32)
    argsb, _ = _arguments(pb, ("bspline", 3, "tanh"), Mb)
    out = tk.kan_eval_backward(grad, x, argsb, False, [False] * 4 + [True])
    if out[4].shape != () or out[4].item() != 0.0:
        raise AssertionError("B-splines: the tau gradient must be a zero scalar")
    # An empty batch.
    empty = torch.empty(0, I)
    if tk.kan_eval(empty, args, False).shape != (0, O, I):
        raise AssertionError("empty batch: wrong output shape")
    gx = tk.kan_eval_backward(torch.empty(0, O, I), empty, args, False, [True] * 5)[0]
    if gx.shape != (0, I):
        raise AssertionError("empty batch: wrong input-gradient shape")
    # Registered as the CUDA kernels of the operators when tkam.kan loaded (no device is needed
    # for that); registering again changes nothing.
    operators.register_triton_kernels()
    names = ("kan_eval", "kan_eval_backward", "kan_features", "kan_features_backward")
    for name in (*names, "kan_weighted_pairwise"):
        if not torch._C._dispatch_has_kernel_for_dispatch_key(f"tkam::{name}", "CUDA"):
            raise AssertionError(f"tkam::{name} has no CUDA kernel")


def _main() -> None:
    import traceback

    from tkam.kan import triton_kernels as tk

    if os.environ.get("TRITON_INTERPRET") != "1" or not tk.available():
        raise SystemExit("run with TRITON_INTERPRET=1 and triton installed")
    results: dict[str, str | None] = {}

    def run(key, fn, *args):
        try:
            fn(*args)
            results[key] = None
        except Exception as exc:  # reported per case to the parent test
            results[key] = f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=-3)}"

    for case in CASES:
        for evaluation in EVALUATIONS:
            run(f"{case_id(case)}/{evaluation}", CHECKS[evaluation], case)
    run("conventions", _check_conventions)
    print(json.dumps(results))


CHECKS = {
    "pairwise": lambda case, device="cpu": _check_eval(case, True, device),
    "outer": lambda case, device="cpu": _check_eval(case, False, device),
    "features": _check_features,
    "weighted": _check_weighted,
}


if __name__ == "__main__":
    _main()
