"""Inverse-transform sampling speed of the T-KAM priors.

Times one exact prior draw (quadrature of every component + inverse transform) of 100 and 10,000
latents for the univariate prior (P=40, Q=81, 100 Gauss-Legendre nodes, RBF) and the mixture prior
(Q=41, P=20, 200 nodes, Chebyshev degree 5, the paper-version image setting), median of repeats
after warm-up. The reference implementation needed 1.21 ms on a GPU for 100 mixture samples
(benches/results, v4 ITS_single).

    python benchmarks/prior_sampling.py [--quick] [--device cpu|cuda] [--no-write]
"""

from __future__ import annotations

import datetime

import torch

from common import benchmark_parser, machine, median_time, write_section
from tkam.config import PriorConfig
from tkam.prior import build_prior

REFERENCE_GPU_MIXTURE_100 = 1.21e-3

SETTINGS = {
    "univariate": PriorConfig(
        widths=(40, 81), basis="rbf", grid_size=20, reference="ebm", num_nodes=100
    ),
    "mixture": PriorConfig(
        widths=(20, 41),
        basis="chebyshev",
        spline_degree=5,
        init_tau=1.001,
        tau_trainable=False,
        base_activation="none",
        reference="gaussian",
        num_nodes=200,
        mixture=True,
        train_proportions=True,
        eps_scale=1.0,
    ),
}


def main() -> None:
    parser = benchmark_parser(__doc__)
    args = parser.parse_args()
    device = torch.device(args.device)
    rows, figures = [], {}
    for name, config in SETTINGS.items():
        rng = torch.Generator(device=device).manual_seed(0)
        prior = build_prior(config, rng=torch.Generator().manual_seed(0)).to(device)
        for num in (100, 10_000):
            repeats = 5 if args.quick else (50 if num == 100 else 10)
            median, std = median_time(lambda p=prior, n=num, g=rng: p.sample(n, g), repeats)
            figures[f"{name}_{num}"] = median
            rows.append(f"| {name} | {num:,} | {median * 1e3:.3f} | {std * 1e3:.3f} | {repeats} |")
            print(f"{name:10s} {num:6d} samples: {median * 1e3:8.3f} ms (std {std * 1e3:.3f})")
    ratio = figures["mixture_100"] / REFERENCE_GPU_MIXTURE_100
    if not args.no_write:
        body = "\n".join(
            [
                f"Measured {datetime.date.today()} on {machine()}.",
                f"Command: `python benchmarks/prior_sampling.py{' --quick' if args.quick else ''}`"
                f" (device {device}). One call = quadrature of every component + inverse"
                " transform of the requested number of latents; median of repeats after 3"
                " warm-up calls.",
                "",
                "| prior | latents | median (ms) | std (ms) | repeats |",
                "|---|---|---|---|---|",
                *rows,
                "",
                f"Mixture, 100 latents, against the reference implementation's 1.21 ms on a GPU:"
                f" ratio {ratio:.3f} (below 1 = faster).",
            ]
        )
        write_section(f"Prior sampling ({device.type})", body)
    for key, value in figures.items():
        print(f"prior_sampling_{key}_s={value:.6g}")
    print(f"prior_sampling_mixture_100_vs_reference_gpu={ratio:.4g}")


if __name__ == "__main__":
    main()
