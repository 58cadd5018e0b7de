"""The reference implementation's eight logged Fashion-MNIST importance-sampling runs, re-run.

The reference repository (github ``thezettascale/KAEM``) logs ten epochs of each univariate
importance-sampling run on Fashion-MNIST in
``logs/Vanilla/FMNIST/importance/{pi0}_{basis}/univariate/loss.csv``: reference densities uniform,
gaussian, lognormal and ebm, bases RBF (G = 20) and FFT (G = 50) for prior and generator, SiLU base
activations, seed 1 (configs 3-4). This script trains the same eight runs with
the packaged ``fmnist`` config (the reference's nist settings: P = 40 -> Q = 81, KAN generator
81 -> 162 -> 784, N = 100, B = 100, 50,000 training and 100 test images, Adam 1e-3, 10 epochs =
5,000 updates), logging once per epoch, so that every ``loss.csv`` row is the epoch mean of the
training loss and the test MSE at the epoch's end, the reference's columns.

    python benchmarks/reference_runs.py --reference PATH/TO/KAEM --write   # all eight, then the table
    python benchmarks/reference_runs.py --reference PATH/TO/KAEM --only ebm_RBF --set train.compat_weights=true

``--reference`` names a checkout of the reference repository (nothing is downloaded); its logs give
the comparison columns. Runs go to ``runs/reference/<pi0>_<basis>`` (``--out``); a finished run is
not trained again unless ``--retrain``. ``--write`` puts the table in benchmarks/RESULTS.md and the
sixteen curves in benchmarks/figures/reference_runs.png.
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from common import machine, write_section  # noqa: E402

REFERENCES = ("uniform", "gaussian", "lognormal", "ebm")
BASES = {"RBF": ("rbf", 20), "FFT": ("fourier", 50)}
RUNS = [f"{pi0}_{basis}" for pi0 in REFERENCES for basis in BASES]
LOG = "logs/Vanilla/FMNIST/importance/{run}/univariate/loss.csv"
FIGURE = Path(__file__).with_name("figures") / "reference_runs.png"


def overrides(run: str) -> list[str]:
    """The ``--set`` values of one run: its reference density and basis (both models)."""
    pi0, basis = run.split("_")
    name, grid = BASES[basis]
    values = [f"prior.reference={pi0}", "train.seed=1", "train.log_every=0"]
    for section in ("prior", "generator"):
        values += [f"{section}.basis={name}", f"{section}.grid_size={grid}"]
    return values


def read_log(path: Path) -> dict[int, tuple[float, float, float]]:
    """``epoch -> (train loss, test MSE, seconds)`` of a loss.csv: the rows that close epochs 1..10
    (the reference's row of epoch 0 is its state before training; ours is step 1)."""
    rows = list(csv.DictReader(path.open()))
    out = {}
    for row in rows[1:]:
        epoch = int(row["Epoch"]) + (0 if "Step" not in row else 1)
        loss = float(row["Train MLE Loss"]) if row["Train MLE Loss"] else float("nan")
        out[epoch] = (loss, float(row["Test MSE Loss"]), float(row["Time (s)"]))
    return out


def train(run: str, out: Path, extra: list[str], threads: int) -> subprocess.Popen:
    command = [sys.executable, "-m", "tkam", "train", "fmnist", "--out", str(out), "--no-progress"]
    command += ["--overwrite"]
    for value in [*overrides(run), f"train.threads={threads}", *extra]:
        command += ["--set", value]
    log = (out.parent / f"{run}.log").open("w")
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", type=Path, required=True, help="a KAEM checkout")
    parser.add_argument("--out", type=Path, default=Path("runs/reference"))
    parser.add_argument("--only", nargs="+", choices=RUNS, default=RUNS)
    parser.add_argument("--set", action="append", default=[], help="extra overrides")
    parser.add_argument("--jobs", type=int, default=1, help="runs at once")
    parser.add_argument("--threads", type=int, default=0, help="threads per run (0: torch's)")
    parser.add_argument("--retrain", action="store_true")
    parser.add_argument("--write", action="store_true", help="update RESULTS.md and the figure")
    parser.add_argument("--report-only", action="store_true", help="train nothing, only report")
    parser.add_argument("--remark", default="", help="a paragraph appended to the section")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    pending = [
        run
        for run in args.only
        if not args.report_only
        and (args.retrain or not (args.out / run / "model.safetensors").is_file())
    ]
    running: list[tuple[str, subprocess.Popen, float]] = []
    while pending or running:
        while pending and len(running) < args.jobs:
            run = pending.pop(0)
            running.append((run, train(run, args.out / run, args.set, args.threads), time.time()))
        for item in list(running):
            run, process, start = item
            if process.poll() is not None:
                running.remove(item)
                state = "done" if process.returncode == 0 else f"FAILED ({process.returncode})"
                print(f"{run}: {state} in {time.time() - start:.0f} s", flush=True)
        time.sleep(1)
    report(args)


def report(args: argparse.Namespace) -> None:
    lines = [
        f"Measured on {machine()}; `python benchmarks/reference_runs.py --jobs {args.jobs} "
        f"--threads {args.threads}` ({args.jobs} run(s) at once, {args.threads or 'all'} "
        "thread(s) each). Per run and epoch: the reference's logged train loss and test MSE, ours, "
        "the relative difference of the train loss, and our training seconds so far (the "
        "reference's in parentheses, its GPU). Extra overrides: "
        f"{' '.join(args.set) or 'none'}.",
        "",
        "| run | epoch | train loss: reference | ours | difference | test MSE: reference | ours "
        "| seconds: ours (reference) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    finals = []
    variant = " ".join(args.set)
    figure = FIGURE.with_name(f"{FIGURE.stem}{'_' + args.out.name if args.set else ''}.png")
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for index, run in enumerate(args.only):
        theirs = read_log(args.reference / LOG.format(run=run))
        path = args.out / run / "loss.csv"
        if not path.is_file():
            continue
        ours = read_log(path)
        color = f"C{index}"
        for column, axis in enumerate(axes):
            epochs = sorted(theirs)
            axis.plot(epochs, [theirs[e][column] for e in epochs], "--", color=color)
            epochs = sorted(ours)
            axis.plot(epochs, [ours[e][column] for e in epochs], "-", color=color, label=run)
        for epoch in sorted(ours):
            if epoch not in theirs:
                continue
            (ref_loss, ref_mse, ref_time), (loss, mse, seconds) = theirs[epoch], ours[epoch]
            difference = (loss - ref_loss) / ref_loss
            lines.append(
                f"| {run} | {epoch} | {ref_loss:.1f} | {loss:.1f} | {difference:+.1%} | "
                f"{ref_mse:.4f} | {mse:.4f} | {seconds:.0f} ({ref_time:.0f}) |"
            )
        if not (args.out / run / "model.safetensors").is_file():
            continue  # unfinished: its rows are shown, its final epoch is not counted
        last = max(set(ours) & set(theirs))
        finals.append((run, (ours[last][0] - theirs[last][0]) / theirs[last][0]))
    within = sum(abs(d) <= 0.02 for _, d in finals)
    lines += [
        "",
        f"Final-epoch train loss within 2% of the reference's: {within} of {len(finals)} "
        f"({', '.join(f'{run} {d:+.1%}' for run, d in finals)}).",
        f"Figure: `benchmarks/figures/{figure.name}` (solid: ours, dashed: the reference).",
        *(["", args.remark] if args.remark else []),
    ]
    for axis, title in zip(axes, ("train loss (epoch mean)", "test MSE")):
        axis.set_xlabel("epoch")
        axis.set_title(title)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    body = "\n".join(lines)
    print(body)
    if args.write:
        figure.parent.mkdir(exist_ok=True)
        fig.savefig(figure, dpi=120)
        title = "Reference runs: Fashion-MNIST importance sampling (cpu)"
        write_section(f"{title}{', ' + variant if variant else ''}", body)


if __name__ == "__main__":
    main()
