"""T-KAM (importance sampling), VAE and latent EBM side by side on the full Fashion-MNIST.

Trains the three ``model.kind`` values of the ``fmnist`` config (KAN generator 81-162-784,
B=100, Adam 1e-3; the latent EBM's energy net at Pang et al.'s 2e-5) with the same number of
updates on all 60,000 training images, each with ``tkam train``; then evaluates every run with
``tkam evaluate`` (the same cached feature network, the same 1,000 official test images, the
same seed) and times generation of 1,000 samples in this process. Writes the table to
``benchmarks/RESULTS.md`` and the three final sample grids side by side to
``benchmarks/figures/side_by_side_fmnist.png``.

    python benchmarks/side_by_side.py [--steps 3000] [--runs runs/side] [--skip-train]
        [--skip-evaluate] [--remark TEXT]
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

KINDS = ("tkam", "vae", "lebm")
LABELS = {
    "tkam": "T-KAM, importance sampling (N=100)",
    "vae": "VAE",
    "lebm": "latent EBM (Pang et al.)",
}
FIGURE = Path(__file__).with_name("figures") / "side_by_side_fmnist.png"


def overrides(kind: str, steps: int) -> list[str]:
    values = [
        f"model.kind={kind}",
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


def side_by_side_figure(runs: dict[str, Path]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(runs), figsize=(5 * len(runs), 5.8), layout="constrained")
    for ax, (kind, run) in zip(axes, runs.items(), strict=True):
        ax.imshow(final_grid(run))
        ax.set_title(LABELS[kind], fontsize=13)
        ax.axis("off")
    FIGURE.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(FIGURE, dpi=80)
    plt.close(fig)


def number(value: float | None, digits: str = ".3g") -> str:
    return "n/a" if value is None else format(value, digits)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3000, help="updates per model")
    parser.add_argument("--runs", default="runs/side", help="run folder prefix")
    parser.add_argument("--kinds", nargs="+", default=list(KINDS), choices=KINDS)
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
        for kind, run in runs.items():
            start = time.perf_counter()
            tkam(
                "train", "fmnist", "--out", str(run), "--no-progress", *overrides(kind, args.steps)
            )
            print(f"{kind}: trained in {time.perf_counter() - start:.0f} s", flush=True)
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
    side_by_side_figure(runs)
    if args.no_write:
        return
    body = "\n".join(
        [
            f"Measured {datetime.date.today()} on {machine()}.",
            f"Command: `python benchmarks/side_by_side.py --steps {args.steps}`. The `fmnist`"
            " config (KAN generator 81-162-784, B=100, Adam 1e-3; the latent EBM's energy MLP"
            " at 2e-5, Pang et al.'s rate) on all 60,000 training images, the same number of"
            f" updates for every model; then `tkam evaluate RUN --num {args.num}`: FID/KID on"
            f" the features of `{feature_network}` (shared by all three"
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
            f"Final sample grids: `{FIGURE.relative_to(Path(__file__).parent.parent)}`.",
            *([args.remark] if args.remark else []),
        ]
    )
    write_section("Side by side on Fashion-MNIST, equal update budgets (cpu)", body)


if __name__ == "__main__":
    main()
