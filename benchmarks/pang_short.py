"""A short training run of a deep-prior (``*-pang``) config on real images, offline.

SVHN, CIFAR-10 and CelebA are not available offline, so the ``svhn-pang`` config (deep KAN energy
prior 100-200-200-1 on its exact Gaussian base, 60 prior-Langevin steps, CNN generator,
thermodynamic loss with 5 temperatures) trains on a stand-in written in SVHN's own file format:
Fashion-MNIST images (the offline Debian package) padded to 32x32 and repeated over three
channels, in ``train_32x32.mat`` / ``test_32x32.mat``. The run is short (small batch, few updates):
it shows that the config still builds, samples and trains, not what it reaches. Writes the loss
table and the final sample grid to ``benchmarks/RESULTS.md`` and ``benchmarks/figures/``.

    python benchmarks/pang_short.py [--config svhn-pang] [--steps 60] [--batch 20] [--threads 0]
"""

from __future__ import annotations

import argparse
import csv
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import scipy.io

from common import machine, write_section

FIGURES = Path(__file__).with_name("figures")


def write_standin(root: Path, num_train: int, num_test: int) -> None:
    """Fashion-MNIST as SVHN ``.mat`` files: ``X (32, 32, 3, N)`` uint8 and labels ``y (N, 1)``."""
    from tkam.config import DataConfig
    from tkam.data import load_dataset

    data = load_dataset(DataConfig(name="fmnist", num_train=num_train, num_test=num_test))
    root.mkdir(parents=True, exist_ok=True)
    for name, images in (("train_32x32.mat", data.train), ("test_32x32.mat", data.test)):
        pixels = (images[:, 0].numpy() * 255).round().astype(np.uint8)  # (N, 28, 28)
        padded = np.zeros((len(pixels), 32, 32), np.uint8)
        padded[:, 2:30, 2:30] = pixels
        x = np.repeat(padded[..., None], 3, axis=3).transpose(1, 2, 3, 0)  # (32, 32, 3, N)
        labels = np.ones((len(pixels), 1), np.uint8)
        scipy.io.savemat(root / name, {"X": x, "y": labels})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="svhn-pang")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--batch", type=int, default=20)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("runs/pang-short"))
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    data_root = args.out.with_name(args.out.name + "-data")
    write_standin(data_root, 2100, 100)  # the config's split takes 2,000 + 100 from the train file
    settings = [
        f"data.root={data_root}",
        "data.num_train=2000",
        f"train.batch_size={args.batch}",
        f"train.max_steps={args.steps}",
        f"train.log_every={max(args.steps // 6, 1)}",
        f"train.threads={args.threads}",
    ]
    command = [sys.executable, "-m", "tkam", "train", args.config, "--out", str(args.out)]
    command += ["--overwrite", "--no-progress"]
    for value in settings:
        command += ["--set", value]
    print("$", " ".join(command[1:]), flush=True)
    subprocess.run(command, check=True)
    rows = list(csv.DictReader((args.out / "loss.csv").open()))
    figure = FIGURES / f"pang_short_{args.config}.png"
    shutil.copyfile(sorted((args.out / "samples").glob("step_*.png"))[-1], figure)
    table = [
        "| step | train loss | test MSE | seconds |",
        "|---|---|---|---|",
        *(
            f"| {r['Step']} | {float(r['Train MLE Loss']):.1f} | {float(r['Test MSE Loss']):.4f} "
            f"| {float(r['Time (s)']):.0f} |"
            for r in rows
        ),
    ]
    body = "\n".join(
        [
            f"Measured on {machine()}; `python benchmarks/pang_short.py --config {args.config} "
            f"--steps {args.steps} --batch {args.batch} --threads {args.threads}`: the packaged "
            f"`{args.config}` config unchanged except the data (2,000 Fashion-MNIST images padded "
            "to 32x32x3 in SVHN's file format, a stand-in: SVHN, CIFAR-10 and CelebA are not "
            f"available offline), the batch ({args.batch}) and the number of updates. The loss is "
            "the config's thermodynamic loss; the test MSE compares unpaired samples with test "
            "images (the reference's column).",
            "",
            *table,
            "",
            f"Final samples: `benchmarks/figures/{figure.name}`. A check that the config builds, "
            "samples and trains, not a measure of what it reaches.",
        ]
    )
    print(body)
    if not args.no_write:
        write_section(f"Deep-prior config, short run: {args.config} (cpu)", body)


if __name__ == "__main__":
    main()
