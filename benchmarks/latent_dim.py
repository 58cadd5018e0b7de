"""Cost of one importance-sampling training step as the latent dimension grows.

The reference's ``latent_dim`` benchmark (maths 8): the ``mnist`` config with prior
widths ``(n_z, 2 n_z + 1)`` and KAN generator widths ``(2 n_z + 1, 4 n_z + 2)`` (then 784),
N=100 importance samples, one step on a batch of 100 images, for n_z in {10, 20, 30, 40, 50}.
One step = IS loss + backward + Adam. The reference's GPU times are listed beside ours.

    python benchmarks/latent_dim.py [--quick] [--device cpu|cuda] [--no-write]
"""

from __future__ import annotations

import datetime

import torch

from common import benchmark_parser, machine, median_time, write_section
from tkam.build import build_model
from tkam.config import load_config
from tkam.train.loop import make_optimizer, train_step
from train_step import batch_of_data

#: The reference's seconds per IS loss + gradient (HEAD CSV, GPU), maths 8.
REFERENCE = {10: 0.1255, 20: 0.1754, 30: 0.2499, 40: 0.3510, 50: 0.5276}


def measure(latent: int, device: torch.device, repeats: int) -> tuple[float, float]:
    config = load_config(
        "mnist",
        [
            "data.name=fmnist",
            "data.num_train=1000",
            f"prior.widths=[{latent}, {2 * latent + 1}]",
            f"generator.widths=[{2 * latent + 1}, {4 * latent + 2}]",
        ],
    )
    x, _ = batch_of_data(config, device)
    model = build_model(config, tuple(x.shape[1:])).to(device)
    optimizer = make_optimizer(model, config.train.learning_rate)
    rng = torch.Generator(device=device).manual_seed(0)
    model.update_grids(model.prior.sample(config.grid_update.num_samples, rng))
    return median_time(lambda: train_step(model, optimizer, x, config, rng, 20), repeats, warmup=2)


def main() -> None:
    parser = benchmark_parser(__doc__)
    args = parser.parse_args()
    device = torch.device(args.device)
    repeats = 3 if args.quick else 9
    rows, times = [], {}
    for latent, reference in REFERENCE.items():
        median, std = measure(latent, device, repeats)
        times[latent] = median
        rows.append(
            f"| {latent} | {2 * latent + 1} | {median * 1e3:.1f} | {std * 1e3:.1f} |"
            f" {median / times[10]:.2f} | {reference * 1e3:.1f} | {reference / median:.2f} |"
        )
        print(f"n_z={latent}: {median * 1e3:.1f} ms (reference {reference * 1e3:.1f} ms)")
    if not args.no_write:
        body = "\n".join(
            [
                f"Measured {datetime.date.today()} on {machine()}.",
                f"Command: `python benchmarks/latent_dim.py{' --quick' if args.quick else ''}`"
                f" (device {device}): one IS training step (N=100, loss + backward + Adam) of"
                " the `mnist` config with prior widths (n_z, 2n_z+1) and KAN generator"
                " (2n_z+1, 4n_z+2, 784), batch 100 Fashion-MNIST images; median of"
                f" {repeats} after warm-up. Reference: the Julia code's GPU times (spec 8).",
                "",
                "| n_z | Q | median (ms) | std (ms) | ratio to n_z=10 | reference, GPU (ms) |"
                " reference / ours |",
                "|---|---|---|---|---|---|---|",
                *rows,
            ]
        )
        write_section(f"Latent dimension sweep ({device.type})", body)
    print(f"latent_dim_ratio_50_vs_10={times[50] / times[10]:.4g}")


if __name__ == "__main__":
    main()
