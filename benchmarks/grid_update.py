"""Grid updates: one ``model.update_grids`` call of the fmnist config, T-KAM against the VAE.

A grid update refits every KAN layer's grid to fresh latents and its coefficients by least
squares (maths 2.6): T-KAM's prior layer (P = 40 rows, the Q x N = 8,100 latents of each row)
and both generator layers; the VAE's generator layers only. The refit solves one (M, M) transfer
matrix per row (``B_new^+ B_old``, by the normal matrix's eigendecomposition) and applies it to
the O outputs' coefficients. ``--direct`` times the former refit for comparison: the new basis
fitted to the old curve's O values directly, by LAPACK's SVD-based ``gelsd`` (the code before
the transfer-matrix refit), run after the current refit so that the grid is placed the same
way: its time less the current refit's is the former refit's. Median of repeats, all in one
process, alternating.

    python benchmarks/grid_update.py [--quick] [--no-write]
"""

from __future__ import annotations

import statistics
import time

import torch

from common import benchmark_parser, machine, write_section
from tkam.build import build_model
from tkam.config import load_config
from tkam.kan.layer import RCOND, UnivariateLayer

ORIGINAL = UnivariateLayer.update_grid


def direct_refit(self: UnivariateLayer, x: torch.Tensor) -> None:
    """The refit before the transfer matrix: the new basis fitted by ``gelsd`` to the old
    curve's values at the sorted inputs, O right-hand sides per row (grid placement as now)."""
    xs = torch.sort(x.to(self.coef.dtype), dim=0).values
    old_curve = self.spline(xs).permute(1, 0, 2)  # (I, n, O)
    ORIGINAL(self, x)  # grid, bandwidth and (discarded) coefficients as now
    design = self.basis(xs).permute(1, 0, 2).double()
    solution = torch.linalg.lstsq(design, old_curve.double(), rcond=RCOND, driver="gelsd")
    self.coef.copy_(solution.solution.to(self.coef.dtype).permute(0, 2, 1))


def main() -> None:
    parser = benchmark_parser(__doc__)
    parser.add_argument("--direct", action="store_true", help="also time the former refit")
    args = parser.parse_args()
    repeats = 3 if args.quick else 9
    models = {}
    for kind in ("tkam", "vae"):
        config = load_config("fmnist", [f"model.kind={kind}"])
        models[kind] = (build_model(config, (1, 28, 28)), config.grid_update.num_samples)
    rng = torch.Generator().manual_seed(0)
    latents = {
        kind: model.prior.sample(num, rng) for kind, (model, num) in models.items()
    }  # fmt: skip
    variants = [("transfer", None)]
    if args.direct:
        variants.append(("direct", direct_refit))
    times: dict[tuple[str, str], list[float]] = {}
    for _ in range(repeats):
        for name, refit in variants:
            for kind, (model, _) in models.items():
                if refit is not None:
                    UnivariateLayer.update_grid = torch.no_grad()(refit)  # type: ignore[method-assign]
                try:
                    model.update_grids(latents[kind])  # warm-up: grids settle on these latents
                    start = time.perf_counter()
                    model.update_grids(latents[kind])
                    times.setdefault((name, kind), []).append(time.perf_counter() - start)
                finally:
                    UnivariateLayer.update_grid = ORIGINAL  # type: ignore[method-assign]
    medians = {key: statistics.median(values) for key, values in times.items()}
    for (name, kind), value in medians.items():
        print(f"grid_update_{name}_{kind}_ms={1e3 * value:.1f}")
    if args.no_write:
        return
    rows = [
        f"| {name} | {kind} | {1e3 * medians[(name, kind)]:.1f} |"
        for name, _ in variants
        for kind in models
    ]
    if args.direct:
        for kind in models:
            former = medians[("direct", kind)] - medians[("transfer", kind)]
            ratio = former / medians[("transfer", kind)]
            rows.append(
                f"| former (direct less transfer) | {kind} | {1e3 * former:.1f} ({ratio:.1f}x) |"
            )
    body = "\n".join(
        [
            f"Machine: {machine()}. Command: `python benchmarks/grid_update.py"
            f"{' --direct' if args.direct else ''}`: one `model.update_grids` call of the fmnist"
            f" config on {models['tkam'][1]} latents, median of {repeats} (variants and models"
            " alternating).",
            "",
            "| refit | model | ms per grid update |",
            "|---|---|---|",
            *rows,
        ]
    )
    write_section("Grid updates (fmnist, cpu)", body)


if __name__ == "__main__":
    main()
