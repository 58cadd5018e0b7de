"""One KAN layer, forward + backward: tkam's ``UnivariateLayer`` against pykan's ``KANLayer``.

Equal widths, basis and grid: cubic B-splines on 5 intervals over [-1, 1] plus a SiLU base term,
float32, a batch of B inputs drawn uniformly from [-1, 1]. One call = forward, sum of the outputs,
backward into every parameter. tkam's layer runs as a generator layer does (``summed``: one
matmul of the basis values with the scaled coefficients); pykan's through its ``forward`` (which
also returns its per-function activations, as every pykan model asks of it).

Time: median of repeats after warm-up, the two alternating in rounds, in this process. Peak
memory: a fresh subprocess per measurement builds the layer and the batch, notes its resident
set size, runs one forward + backward and reports the high-water mark of the resident set above
that baseline (``ru_maxrss``), so allocator caches and the torch runtime do not count.

Needs pykan (``pip install -e .[bench]``).

    python benchmarks/pykan_layer.py [--quick] [--no-write]
"""

from __future__ import annotations

import datetime

import torch

from common import (
    benchmark_parser,
    machine,
    peak_in_subprocess,
    report_peak,
    reset_peak,
    write_section,
)
from generation import interleaved_times

SHAPES = ((81, 162, 1000), (162, 784, 1000), (162, 784, 100))  # (in, out, batch)
GRID, DEGREE = 5, 3


def build(impl: str, in_dim: int, out_dim: int):  # noqa: ANN201 - a torch module of either library
    torch.manual_seed(0)
    if impl == "tkam":
        from tkam.config import KANConfig
        from tkam.kan.layer import UnivariateLayer

        config = KANConfig(
            basis="bspline",
            grid_size=GRID,
            spline_degree=DEGREE,
            grid_range=(-1.0, 1.0),
            base_activation="silu",
        )
        layer = UnivariateLayer(in_dim, out_dim, config)
        return layer, layer.summed
    from kan.KANLayer import KANLayer

    layer = KANLayer(in_dim, out_dim, num=GRID, k=DEGREE, grid_range=[-1, 1])
    return layer, lambda x: layer(x)[0]


def step(layer: torch.nn.Module, fn, x: torch.Tensor) -> None:  # noqa: ANN001
    layer.zero_grad(set_to_none=True)
    fn(x).sum().backward()


def peak_child(impl: str, in_dim: int, out_dim: int, batch: int) -> None:
    """In a fresh process: KiB of resident memory one forward + backward adds at its peak.

    A one-row call first loads every lazily initialised library; then the high-water mark is
    reset and compared with the resident set just before the call.
    """
    layer, fn = build(impl, in_dim, out_dim)
    step(layer, fn, torch.rand(1, in_dim) * 2 - 1)
    x = torch.rand(batch, in_dim) * 2 - 1
    before = reset_peak()
    step(layer, fn, x)
    report_peak(before)


def peak_memory(impl: str, in_dim: int, out_dim: int, batch: int) -> float:
    """MiB, measured in a subprocess (see :func:`peak_child`)."""
    return peak_in_subprocess("pykan_layer", "peak_child", impl, in_dim, out_dim, batch)


def main() -> None:
    parser = benchmark_parser(__doc__)
    args = parser.parse_args()
    try:
        import kan  # noqa: F401
    except ImportError:
        raise SystemExit("pykan is not installed: pip install -e .[bench]") from None
    repeats, rounds = (3, 1) if args.quick else (7, 3)
    rows, ratios = [], []
    for in_dim, out_dim, batch in SHAPES:
        x = torch.rand(batch, in_dim, generator=torch.Generator().manual_seed(1)) * 2 - 1
        calls = {}
        for impl in ("tkam", "pykan"):
            layer, fn = build(impl, in_dim, out_dim)
            calls[impl] = lambda layer=layer, fn=fn, x=x: step(layer, fn, x)
        times = interleaved_times(calls, repeats, rounds)
        memory = {impl: peak_memory(impl, in_dim, out_dim, batch) for impl in calls}
        time_ratio = times["pykan"][0] / times["tkam"][0]
        memory_ratio = memory["pykan"] / memory["tkam"]
        ratios.append((time_ratio, memory_ratio))
        rows.append(
            f"| {in_dim} -> {out_dim}, B={batch} | {times['tkam'][0] * 1e3:.2f} |"
            f" {times['pykan'][0] * 1e3:.2f} | {time_ratio:.1f} | {memory['tkam']:.1f} |"
            f" {memory['pykan']:.1f} | {memory_ratio:.1f} |"
        )
        print(rows[-1], flush=True)
    if not args.no_write:
        import kan

        body = "\n".join(
            [
                f"Measured {datetime.date.today()} on {machine()}; pykan"
                f" {getattr(kan, '__version__', '0.2.8')}.",
                f"Command: `python benchmarks/pykan_layer.py{' --quick' if args.quick else ''}`."
                f" Cubic B-splines, {GRID} grid intervals on [-1, 1], SiLU base, float32; one"
                " call = forward + sum + backward into all parameters; time: median of"
                f" {repeats} calls after warm-up, alternating in {rounds} rounds; peak memory:"
                " resident-set high-water mark of one call above the process's baseline, each"
                " in a fresh subprocess.",
                "",
                "| layer | tkam (ms) | pykan (ms) | time pykan / tkam | tkam peak (MiB) |"
                " pykan peak (MiB) | memory pykan / tkam |",
                "|---|---|---|---|---|---|---|",
                *rows,
            ]
        )
        write_section("KAN layer against pykan (cpu)", body)
    print(f"pykan_time_ratio={ratios[1][0]:.4g}")
    print(f"pykan_memory_ratio={ratios[1][1]:.4g}")


if __name__ == "__main__":
    main()
