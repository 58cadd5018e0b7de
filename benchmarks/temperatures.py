"""Cost of one thermodynamic training step as the number of temperatures grows.

One step = the thermodynamic loss (all N_t power-posterior populations moved together by ULA with
replica exchange, then the TI surrogate) + backward + Adam, on the small SVHN CNN config
(``svhn-head``: mixture prior Q=81 x P=40, CNN 81-128-64-32-3) with random 32x32 images. The
reference's cost grows 5.9x from 2 to 12 temperatures (maths 8, temperatures.jl); batching
all temperatures into one tensor is meant to keep that growth under 3x.

    python benchmarks/temperatures.py [--quick] [--batch 25] [--steps 10] [--no-write]
"""

from __future__ import annotations

import datetime

import torch
from torch.profiler import ProfilerActivity, profile

from common import benchmark_parser, machine, median_time, write_section
from tkam.build import build_model
from tkam.config import load_config
from tkam.train.loop import make_optimizer, train_step

REFERENCE_RATIO = 13.963 / 2.363  # HEAD CSV, 12 vs 2 temperatures


def main() -> None:
    parser = benchmark_parser(__doc__)
    parser.add_argument("--batch", type=int, default=25)
    parser.add_argument("--steps", type=int, default=10, help="Langevin steps per training step")
    args = parser.parse_args()
    device = torch.device(args.device)
    repeats = 3 if args.quick else 7
    rows, times, flops = [], {}, {}
    for num_temps in (2, 4, 6, 8, 10, 12):
        config = load_config(
            "svhn-head",
            [
                f"thermodynamic.num_temps={num_temps}",
                f"posterior.steps={args.steps}",
                f"train.batch_size={args.batch}",
            ],
        )
        model = build_model(config, (3, 32, 32)).to(device)
        optimizer = make_optimizer(model, config.train.learning_rate)
        rng = torch.Generator(device=device).manual_seed(0)
        x = torch.rand(args.batch, 3, 32, 32, generator=rng, device=device)
        median, std = median_time(
            lambda m=model, o=optimizer, c=config, g=rng, b=x: train_step(m, o, b, c, g, 5, 100),
            repeats,
            warmup=1,
        )
        # The profiler's FLOP count (matmuls and convolutions); FlopCounterMode cannot follow
        # the autograd.grad calls inside the Langevin steps.
        with profile(activities=[ProfilerActivity.CPU], with_flops=True) as prof:
            train_step(model, optimizer, x, config, rng, 5, 100)
        total = sum(event.flops for event in prof.key_averages())
        times[num_temps], flops[num_temps] = median, float(total)
        rows.append(
            f"| {num_temps} | {median:.3f} | {std:.3f} | {median / times[2]:.2f} |"
            f" {flops[num_temps] / 1e9:.2f} | {flops[num_temps] / flops[2]:.2f} |"
        )
        print(f"N_t={num_temps:2d}: {median:.3f} s (std {std:.3f}), {flops[num_temps]:.3g} FLOP")
    ratio = times[12] / times[2]
    flop_ratio = flops[12] / flops[2]
    if not args.no_write:
        body = "\n".join(
            [
                f"Measured {datetime.date.today()} on {machine()}.",
                f"Command: `python benchmarks/temperatures.py{' --quick' if args.quick else ''}"
                f" --batch {args.batch} --steps {args.steps}` (device {device}): one TI training"
                f" step (loss + backward + Adam) of `svhn-head`, batch {args.batch},"
                f" {args.steps} ULA steps, replica exchange every step; median of {repeats}.",
                "",
                "| N_t | median (s) | std (s) | ratio to N_t=2 | GFLOP (matmul, conv) |"
                " FLOP ratio to N_t=2 |",
                "|---|---|---|---|---|---|",
                *rows,
                "",
                f"12 vs 2 temperatures: {ratio:.2f}x (reference: {REFERENCE_RATIO:.1f}x; goal <= 3x)."
                f" The arithmetic itself grows {flop_ratio:.2f}x (all N_t B chains pass through"
                " the generator at every Langevin step): one batched tensor operation per step"
                " cannot hide that on a CPU, whose throughput is already saturated at N_t=2;"
                " on a GPU the batched chains share the kernel launches.",
            ]
        )
        write_section(f"Temperatures ({device.type})", body)
    print(f"temperatures_flop_ratio_12_vs_2={flop_ratio:.4g}")
    print(f"temperatures_ratio_12_vs_2={ratio:.4g}")


if __name__ == "__main__":
    main()
