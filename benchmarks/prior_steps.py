"""Cost of drawing from the deep (Pang-style) KAN energy prior as prior-Langevin steps grow.

The reference's ``prior_steps`` benchmark (maths 8): the ``celeba-pang`` config's deep KAN
prior 100-200-200-1 (Fourier, G=50), one draw of 100 samples by N_l unadjusted Langevin steps,
N_l in {10, 20, 30, 40, 50}. For scale, 100 latents of the ``celeba`` mixture prior by its
inverse transform (one pass, no steps). The reference's GPU times beside ours.

    python benchmarks/prior_steps.py [--quick] [--device cpu|cuda] [--no-write]
"""

from __future__ import annotations

import datetime

import torch

from common import benchmark_parser, machine, median_time, write_section
from tkam.config import load_config
from tkam.prior import build_prior

#: The reference's seconds per prior draw of 100 samples (HEAD CSV, GPU), maths 8.
REFERENCE = {10: 1.0854, 20: 2.1942, 30: 3.2811, 40: 4.3784, 50: 5.4965}
NUM_SAMPLES = 100


def main() -> None:
    parser = benchmark_parser(__doc__)
    args = parser.parse_args()
    device = torch.device(args.device)
    repeats = 3 if args.quick else 5
    rng = torch.Generator(device=device).manual_seed(0)
    its_config = load_config("celeba").prior
    its = build_prior(its_config, rng=torch.Generator().manual_seed(0)).to(device)
    with torch.no_grad():
        its_time, _ = median_time(lambda: its.sample(NUM_SAMPLES, rng), repeats)
    rows, times = [], {}
    for steps, reference in REFERENCE.items():
        config = load_config("celeba-pang", [f"prior.langevin_steps={steps}"]).prior
        prior = build_prior(config, rng=torch.Generator().manual_seed(0)).to(device)
        median, std = median_time(lambda p=prior: p.sample(NUM_SAMPLES, rng), repeats)
        times[steps] = median
        rows.append(
            f"| {steps} | {median * 1e3:.1f} | {std * 1e3:.1f} | {median / its_time:.0f} |"
            f" {reference * 1e3:.0f} | {reference / median:.1f} |"
        )
        print(f"N_l={steps}: {median * 1e3:.1f} ms (reference {reference * 1e3:.0f} ms)")
    if not args.no_write:
        shape = f"Q={its_config.num_outputs}, P={its_config.num_inputs}"
        body = "\n".join(
            [
                f"Measured {datetime.date.today()} on {machine()}.",
                f"Command: `python benchmarks/prior_steps.py{' --quick' if args.quick else ''}`"
                f" (device {device}): {NUM_SAMPLES} samples of the `celeba-pang` deep KAN"
                " energy prior (100-200-200-1, Fourier G=50) by N_l prior-Langevin steps;"
                f" median of {repeats}. For scale: {NUM_SAMPLES} samples of the `celeba`"
                f" mixture prior ({shape}) by inverse transform, {its_time * 1e3:.1f} ms."
                " Reference: the Julia code's GPU times (spec 8).",
                "",
                "| N_l | median (ms) | std (ms) | vs inverse transform | reference, GPU (ms) |"
                " reference / ours |",
                "|---|---|---|---|---|---|",
                *rows,
            ]
        )
        write_section(f"Prior Langevin steps ({device.type})", body)
    print(f"prior_steps_ratio_50_vs_10={times[50] / times[10]:.4g}")
    print(f"prior_steps_50_vs_inverse_transform={times[50] / its_time:.4g}")


if __name__ == "__main__":
    main()
