"""T-KAM (importance sampling), VAE and latent EBM side by side on the full Fashion-MNIST.

Trains variants of the three ``model.kind`` values of the ``fmnist`` config (KAN generator
81-162-784, B=100, Adam 1e-3; the latent EBM's energy net at Pang et al.'s 2e-5) with the same
number of updates on all 60,000 training images, each with ``tkam train``: T-KAM with fresh or
proposal negatives, the VAE at KL weights 0.25, 0.5 and 1, the latent EBM as configured and with
Pang et al.'s optimiser (generator 1e-4, Adam beta1 0.5). Then evaluates every run with
``tkam evaluate`` (the same cached feature network, the same 1,000 official test images, the
same seed) and times generation of 1,000 samples in this process. Writes the table to
``benchmarks/RESULTS.md`` and the final sample grids side by side to
``benchmarks/figures/side_by_side_fmnist[_STEPS].png``.

    python benchmarks/side_by_side.py [--steps 3000] [--runs runs/side] [--kinds ...]
        [--jobs 1] [--threads 0] [--skip-train] [--skip-evaluate] [--remark TEXT]
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from common import machine, median_time, write_section

# name -> (label, settings beyond the fmnist config)
VARIANTS = {
    "tkam": ("T-KAM, importance sampling (N=100), fresh negatives", ["model.kind=tkam"]),
    "tkam-proposals": (
        "T-KAM, importance sampling (N=100), proposal negatives",
        ["model.kind=tkam", "train.negatives=proposals"],
    ),
    "vae": ("VAE", ["model.kind=vae"]),
    "vae-kl0.5": ("VAE, KL weight 0.5", ["model.kind=vae", "model.kl_weight=0.5"]),
    "vae-kl0.25": ("VAE, KL weight 0.25", ["model.kind=vae", "model.kl_weight=0.25"]),
    "lebm": ("latent EBM (Pang et al.)", ["model.kind=lebm"]),
    "lebm-pang": (
        "latent EBM, Pang et al.'s optimiser (generator 1e-4, beta1 0.5)",
        ["model.kind=lebm", "train.learning_rate=1e-4", "train.adam_beta1=0.5"],
    ),
}
KINDS = ("tkam", "vae", "lebm")
LABELS = {name: label for name, (label, _) in VARIANTS.items()}
FIGURE = Path(__file__).with_name("figures") / "side_by_side_fmnist.png"


def overrides(kind: str, steps: int, threads: int = 0) -> list[str]:
    values = [
        *VARIANTS[kind][1],
        f"train.threads={threads}",
        f"train.max_steps={steps}",
        f"train.log_every={max(steps // 12, 1)}",
        "data.split=official",
        "data.num_train=0",
        "data.num_test=1000",
    ]
    return [item for value in values for item in ("--set", value)]


def tkam(*args: str) -> None:
    command = [sys.executable, "-m", "tkam.cli", *args]
    print("$ tkam " + " ".join(args), flush=True)
    subprocess.run(command, check=True)


def train_all(runs: dict[str, Path], steps: int, jobs: int, threads: int) -> None:
    """``tkam train`` every variant, ``jobs`` at once (their output in ``RUN.log``)."""
    pending, running = list(runs.items()), []
    while pending or running:
        while pending and len(running) < jobs:
            kind, run = pending.pop(0)
            args = ["train", "fmnist", "--out", str(run), "--no-progress", "--overwrite"]
            args += overrides(kind, steps, threads)
            print("$ tkam " + " ".join(args), flush=True)
            log = run.with_name(run.name + ".log").open("w")
            command = [sys.executable, "-m", "tkam.cli", *args]
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
            running.append((kind, process, time.perf_counter()))
        for item in list(running):
            kind, process, start = item
            if process.poll() is not None:
                running.remove(item)
                if process.returncode != 0:
                    raise SystemExit(f"{kind}: tkam train failed ({process.returncode})")
                print(f"{kind}: trained in {time.perf_counter() - start:.0f} s", flush=True)
        time.sleep(1)


def seconds_per_update(run: Path) -> tuple[float, float, int]:
    """(s / update, total training seconds, updates) from the run's ``loss.csv``."""
    with (run / "loss.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    first, last = rows[0], rows[-1]
    steps = int(last["Step"]) - int(first["Step"])
    seconds = float(last["Time (s)"]) - float(first["Time (s)"])
    return seconds / steps, float(last["Time (s)"]), int(last["Step"])


def generation_seconds(run: Path) -> float:
    from tkam.runs import load_run

    _, model = load_run(run)
    rng = torch.Generator().manual_seed(0)
    with torch.no_grad():
        return median_time(lambda: model.sample(1000, rng, batch_size=1000), 5, warmup=2)[0]


def final_grid(run: Path) -> np.ndarray:
    path = sorted((run / "samples").glob("step_*.png"))[-1]
    return np.asarray(Image.open(path).convert("RGB"))


def side_by_side_figure(runs: dict[str, Path], figure: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = min(len(runs), 4)
    rows = -(-len(runs) // columns)
    fig, axes = plt.subplots(
        rows, columns, figsize=(5 * columns, 5.8 * rows), layout="constrained", squeeze=False
    )
    for ax in axes.flat:
        ax.axis("off")
    for ax, (kind, run) in zip(axes.flat, runs.items()):
        ax.imshow(final_grid(run))
        ax.set_title(LABELS[kind], fontsize=11)
    figure.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(figure, dpi=80)
    plt.close(fig)


def number(value: float | None, digits: str = ".3g") -> str:
    return "n/a" if value is None else format(value, digits)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3000, help="updates per model")
    parser.add_argument("--runs", default="runs/side", help="run folder prefix")
    parser.add_argument("--kinds", nargs="+", default=list(KINDS), choices=list(VARIANTS))
    parser.add_argument("--jobs", type=int, default=1, help="trainings at once")
    parser.add_argument("--threads", type=int, default=0, help="threads per training (0: all)")
    parser.add_argument("--skip-train", action="store_true", help="evaluate existing runs")
    parser.add_argument(
        "--skip-evaluate", action="store_true", help="reuse the runs' metrics.json files"
    )
    parser.add_argument("--remark", default="", help="a sentence appended to the section")
    parser.add_argument("--num", type=int, default=3000, help="generated images for FID/KID")
    parser.add_argument("--no-write", action="store_true", help="do not touch RESULTS.md")
    args = parser.parse_args()
    runs = {kind: Path(f"{args.runs}-{kind}") for kind in args.kinds}
    if not args.skip_train:
        train_all(runs, args.steps, args.jobs, args.threads)
    rows = []
    for kind, run in runs.items():
        if not args.skip_evaluate:
            tkam("evaluate", str(run), "--num", str(args.num))
        metrics = json.loads((run / "metrics.json").read_text())
        per_update, total, steps = seconds_per_update(run)
        generation = generation_seconds(run)
        iwae = metrics.get("iwae_bound_nats_per_dim")
        loglik = (
            f"{number(metrics['log_likelihood_nats_per_dim'], '.3f')} ±"
            f" {number(metrics['log_likelihood_test_set_standard_error'], '.3f')}"
        )
        rows.append(
            f"| {LABELS[kind]} | {steps} | {per_update:.3f} | {total / 60:.1f} |"
            f" {number(metrics['fid_infinity'], '.1f')} | {number(metrics['kid_infinity'], '.2f')}"
            f" | {number(metrics['fid_at_n'], '.1f')} | {loglik} |"
            f" {number(iwae, '.3f')} | {generation * 1e3:.0f} |"
        )
        print(rows[-1], flush=True)
        feature_network = metrics["feature_network"]
        accuracy = metrics.get("feature_network_accuracy")
    figure = FIGURE if args.steps == 3000 else FIGURE.with_stem(f"{FIGURE.stem}_{args.steps}")
    side_by_side_figure(runs, figure)
    if args.no_write:
        return
    body = "\n".join(
        [
            f"Measured {datetime.date.today()} on {machine()}.",
            f"Command: `python benchmarks/side_by_side.py --steps {args.steps} --kinds"
            f" {' '.join(args.kinds)} --jobs {args.jobs} --threads {args.threads}` ({args.jobs}"
            " training(s) at once). The `fmnist`"
            " config (KAN generator 81-162-784, B=100, Adam 1e-3; the latent EBM's energy MLP"
            " at 2e-5, Pang et al.'s rate) on all 60,000 training images, the same number of"
            f" updates for every model; then `tkam evaluate RUN --num {args.num}`: FID/KID on"
            f" the features of `{feature_network}` (shared by all models"
            + (f"; held-out accuracy {accuracy:.3f}" if accuracy is not None else "")
            + ") against the same"
            " training images, log-likelihood on the same 1,000 official test images by"
            " importance sampling with K=1000 prior samples (± the test-set standard error),"
            " the VAE's importance-weighted bound with the same K; generation of 1,000 samples"
            " in one batch, median of 5.",
            "",
            "| model | updates | s / update | train (min) | FID-inf | KID-inf |"
            f" FID (n={args.num}) | log-lik. (nats/dim) | IWAE bound (nats/dim) |"
            " generation of 1,000 (ms) |",
            "|---|---|---|---|---|---|---|---|---|---|",
            *rows,
            "",
            f"Final sample grids: `{figure.relative_to(Path(__file__).parent.parent)}`.",
            *([args.remark] if args.remark else []),
        ]
    )
    budget = "" if args.steps == 3000 else f", {args.steps} updates"
    write_section(f"Side by side on Fashion-MNIST, equal update budgets{budget} (cpu)", body)


if __name__ == "__main__":
    main()
