"""Speed of one importance-sampling training step of the ``mnist`` config.

One step = IS loss (N=100 exact prior samples, generator, (B, N) likelihood matrix, resampling,
prior term) + backward + Adam, on a batch of B=100 Fashion-MNIST images (the Debian files; uniform
noise if they are absent). Reports the median after warm-up, the step's matmul FLOPs (counted by
``torch.utils.flop_counter``) and the fraction of this machine's float32 matmul rate they reach.
The reference implementation needed 0.35 s per step on a GPU (maths 8, latent_dim n_z=40).

    python benchmarks/train_step.py [--quick] [--device cpu|cuda] [--no-write]
"""

from __future__ import annotations

import datetime

import torch
from torch.utils.flop_counter import FlopCounterMode

from common import benchmark_parser, machine, median_time, synchronize, write_section
from tkam.build import build_model
from tkam.config import load_config
from tkam.data import DataError, load_dataset
from tkam.train.loop import make_optimizer, train_step

REFERENCE_GPU_STEP = 0.35


def matmul_rate(device: torch.device, size: int = 2048, repeats: int = 10) -> float:
    """Measured float32 matmul rate (FLOP/s) of this machine: median over square matmuls."""
    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    median, _ = median_time(lambda: a @ b, repeats, warmup=2)
    return 2 * size**3 / median


def batch_of_data(config, device: torch.device) -> tuple[torch.Tensor, str]:
    try:
        data = load_dataset(config.data)
        return data.train[:100].to(device), f"{data.name} (first 100 training images)"
    except DataError:
        rng = torch.Generator().manual_seed(0)
        return torch.rand(100, 1, 28, 28, generator=rng).to(device), "uniform noise"


def measure(overrides: list[str], device: torch.device, repeats: int) -> dict[str, float]:
    # Each compiled variant starts from an empty compile cache: kernels left by an earlier
    # variant would count against torch.compile's recompile limit and send this one to eager.
    torch._dynamo.reset()
    config = load_config("mnist", ["data.name=fmnist", "data.num_train=1000", *overrides])
    x, source = batch_of_data(config, device)
    model = build_model(config, tuple(x.shape[1:])).to(device)
    if config.train.compile:
        model.compile_kernels()
    optimizer = make_optimizer(model, config.train.learning_rate)
    rng = torch.Generator(device=device).manual_seed(0)
    # Move off the initial state first (grid update at step 1, a few updates), as in training.
    model.update_grids(model.prior.sample(config.grid_update.num_samples, rng))
    for step in range(2, 12):
        train_step(model, optimizer, x, config, rng, step)
    used = []

    def one_step() -> None:
        out = train_step(model, optimizer, x, config, rng, 20)
        used.append(out.metrics["proposals_used"])

    median, std = median_time(one_step, repeats, warmup=2)
    with FlopCounterMode(display=False) as counter:
        train_step(model, optimizer, x, config, rng, 21)
    synchronize()
    return {
        "median": median,
        "std": std,
        "flops": float(counter.get_total_flops()),
        "proposals_used": sum(used) / len(used),
        "source": source,
    }


def main() -> None:
    parser = benchmark_parser(__doc__)
    args = parser.parse_args()
    device = torch.device(args.device)
    repeats = 5 if args.quick else 30
    rate = matmul_rate(device)
    variants = {
        "mnist (contrastive prior gradient, as the reference)": [],
        "mnist, prior.kernel=eager, generator.kernel=eager (the PyTorch reference code)": [
            "prior.kernel=eager",
            "generator.kernel=eager",
        ],
        "mnist, train.negatives=proposals (the proposals as contrastive negatives)": [
            "train.negatives=proposals"
        ],
        "mnist, train.compile=true": ["train.compile=true"],
        "mnist, train.contrastive=false (exact log Z by quadrature)": ["train.contrastive=false"],
        "mnist, train.contrastive=false, train.compile=true": [
            "train.contrastive=false",
            "train.compile=true",
        ],
    }
    rows, results = [], {}
    for name, overrides in variants.items():
        r = measure(overrides, device, repeats)
        results[name] = r
        fraction = r["flops"] / r["median"] / rate
        rows.append(
            f"| {name} | {r['median'] * 1e3:.1f} | {r['std'] * 1e3:.1f} | {r['flops'] / 1e9:.2f} |"
            f" {fraction:.3f} | {r['proposals_used']:.0f} | {r['median'] / REFERENCE_GPU_STEP:.2f} |"
        )
        print(f"{name}: {r['median'] * 1e3:.1f} ms, {r['flops'] / 1e9:.2f} GFLOP (matmul)")
    base = results[next(iter(variants))]
    if not args.no_write:
        body = "\n".join(
            [
                f"Measured {datetime.date.today()} on {machine()}.",
                f"Command: `python benchmarks/train_step.py{' --quick' if args.quick else ''}`"
                f" (device {device}). One step = IS loss + backward + Adam, B=100, N=100,"
                f" data: {base['source']}; median of {repeats} steps after warm-up."
                f" Measured float32 matmul rate: {rate / 1e9:.1f} GFLOP/s.",
                "",
                "| variant | median (ms) | std (ms) | matmul GFLOP | fraction of matmul rate |"
                " proposals in the prior term | ratio to the reference's 0.35 s (GPU) |",
                "|---|---|---|---|---|---|---|",
                *rows,
            ]
        )
        write_section(f"Training step ({device.type})", body)
    names = list(variants)
    print(f"train_step_s={results[names[0]]['median']:.6g}")
    print(f"train_step_eager_kernels_s={results[names[1]]['median']:.6g}")
    print(f"train_step_eager_vs_fused={results[names[1]]['median'] / base['median']:.4g}")
    print(f"train_step_proposal_negatives_s={results[names[2]]['median']:.6g}")
    print(f"train_step_compiled_s={results[names[3]]['median']:.6g}")
    print(f"train_step_exact_normaliser_s={results[names[4]]['median']:.6g}")
    print(f"train_step_exact_normaliser_compiled_s={results[names[5]]['median']:.6g}")
    print(f"train_step_gflop={base['flops'] / 1e9:.4g}")
    print(f"matmul_gflops={rate / 1e9:.4g}")
    print(f"train_step_vs_reference_gpu={base['median'] / REFERENCE_GPU_STEP:.4g}")


if __name__ == "__main__":
    main()
