"""Whole training runs, as a user runs them: the cost per update of ``tkam train``, and where it goes.

Part 1, the cost per update: ``tkam train CONFIG --set train.max_steps=S`` as whole processes with
the packaged cadences of logging, grid updates and checkpoints, for T-KAM, the VAE and the latent
EBM, at two run lengths; the slope ``(t(S2) - t(S1)) / (S2 - S1)`` excludes start-up (imports,
data loading, kernel loading, the first grid update's one-off refits). The models alternate within
each round, and the median over rounds is reported, with the ratio of T-KAM to each baseline.

Part 2, the profile: one in-process T-KAM run of S2 updates under ``cProfile``, its time split into
the update itself (``train_step``), grid updates (and their least-squares refits), the epoch's
shuffle and batch gathering, the callbacks (loss log, sample grids, checkpoints, final files) and
the rest of the loop.

    python benchmarks/training_run.py [--config fmnist] [--rounds 3] [--quick] [--no-write]

Prints ``training_run_tkam_vs_vae=<ratio>`` and ``training_run_tkam_vs_lebm=<ratio>``. Run it on a
quiet machine: any other job on the cores changes the figures.
"""

from __future__ import annotations

import cProfile
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from common import benchmark_parser, machine, write_section

# Updates of the short and the long run of each model (the latent EBM's update costs about
# 25 times T-KAM's, so its runs are shorter).
LENGTHS = {"tkam": (100, 600), "vae": (100, 600), "lebm": (20, 70)}
QUICK_LENGTHS = {"tkam": (5, 25), "vae": (5, 25), "lebm": (2, 6)}

# Where a run's time goes: (label, function names whose cumulative time it is). The first match
# of a function name in the profile counts; nested entries are reported separately, not summed.
PARTS = [
    ("update (train_step)", ("train_step",)),
    ("grid updates", ("update_grids",)),
    ("  of which least-squares refits", ("least_squares",)),
    ("epoch order and batch gathering", ("_epoch_order",)),
    ("loss log (incl. test MSE, prior TV)", ("on_log",)),
    ("checkpoints", ("on_checkpoint",)),
    ("final files (model, plots, GIF)", ("on_end",)),
]


def one_run(config: str, kind: str, steps: int, threads: int) -> float:
    """Wall seconds of one ``tkam train`` process."""
    with tempfile.TemporaryDirectory() as folder:
        command = [
            sys.executable, "-m", "tkam.cli", "train", config, "--out", str(Path(folder) / "run"),
            "--no-progress", "--set", f"model.kind={kind}", "--set", f"train.max_steps={steps}",
            "--set", f"train.threads={threads}",
        ]  # fmt: skip
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        start = time.perf_counter()
        subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL)
        return time.perf_counter() - start


def per_update(config: str, rounds: int, lengths: dict, threads: int) -> dict[str, list[float]]:
    """Seconds per update of each model, one value per round (models alternating)."""
    slopes: dict[str, list[float]] = {kind: [] for kind in lengths}
    kinds = list(lengths)
    for r in range(rounds):
        shift = r % len(kinds)  # each round starts one model later
        for kind in kinds[shift:] + kinds[:shift]:
            short, long = lengths[kind]
            t_short = one_run(config, kind, short, threads)
            t_long = one_run(config, kind, long, threads)
            slopes[kind].append((t_long - t_short) / (long - short))
            print(f"round {r + 1} {kind}: {1e3 * slopes[kind][-1]:.1f} ms / update", flush=True)
    return slopes


def profile(config: str, steps: int, threads: int) -> tuple[float, list[tuple[str, float]]]:
    """Total seconds of an in-process T-KAM run and the seconds of each part of :data:`PARTS`."""
    from tkam.config import load_config
    from tkam.train import fit

    torch.set_num_threads(threads)
    cfg = load_config(config, [f"train.max_steps={steps}", f"train.threads={threads}"])
    profiler = cProfile.Profile()
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        profiler.enable()
        fit(cfg, Path(folder) / "run", progress=False)
        profiler.disable()
        total = time.perf_counter() - start
    stats = pstats.Stats(profiler).stats  # (file, line, name) -> (cc, nc, tt, ct, callers)
    parts = []
    for label, names in PARTS:
        seconds = sum(
            entry[3]
            for (_, _, name), entry in stats.items()
            if name in names and not _nested(entry, names)
        )
        parts.append((label, seconds))
    return total, parts


def _nested(entry: tuple, names: tuple[str, ...]) -> bool:
    """Whether every caller of a profile entry is itself one of ``names`` (so its time is counted
    through that caller already)."""
    callers = entry[4]
    return bool(callers) and all(caller[2] in names for caller in callers)


def main() -> None:
    parser = benchmark_parser(__doc__)
    parser.add_argument("--config", default="fmnist")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    lengths = QUICK_LENGTHS if args.quick else LENGTHS
    rounds = 1 if args.quick else args.rounds
    slopes = per_update(args.config, rounds, lengths, args.threads)
    medians = {kind: statistics.median(values) for kind, values in slopes.items()}
    vs_vae = medians["tkam"] / medians["vae"]
    vs_lebm = medians["tkam"] / medians["lebm"]
    print(f"training_run_tkam_vs_vae={vs_vae:.3f}")
    print(f"training_run_tkam_vs_lebm={vs_lebm:.3f}")
    total, parts = profile(args.config, lengths["tkam"][1], args.threads)
    for label, seconds in parts:
        print(f"{label}: {seconds:.2f} s of {total:.2f} s")
    if args.no_write:
        return
    lines = [
        f"Machine: {machine()}. Command: `python benchmarks/training_run.py --config"
        f" {args.config} --rounds {rounds} --threads {args.threads}`: whole `tkam train`"
        " processes with the packaged cadences, cost per update as the slope between runs of"
        f" {lengths['tkam'][0]} and {lengths['tkam'][1]} updates (latent EBM"
        f" {lengths['lebm'][0]} and {lengths['lebm'][1]}), the models alternating (each round"
        " starting one model later), median of"
        f" {rounds} rounds.",
        "",
        "| model | ms / update (median) | rounds | T-KAM / model |",
        "|---|---|---|---|",
    ]
    for kind in lengths:
        lines.append(
            f"| {kind} | {1e3 * medians[kind]:.1f} | "
            + ", ".join(f"{1e3 * v:.1f}" for v in slopes[kind])
            + f" | {medians['tkam'] / medians[kind]:.2f} |"
        )
    lines += [
        "",
        f"`training_run_tkam_vs_vae={vs_vae:.3f}`, `training_run_tkam_vs_lebm={vs_lebm:.3f}`.",
        "",
        f"Where an in-process T-KAM run of {lengths['tkam'][1]} updates spends its"
        f" {total:.1f} s (cProfile, cumulative time of each part; indented lines are inside the"
        " line above):",
        "",
        "| part | s | share |",
        "|---|---|---|",
        *[f"| {label} | {seconds:.2f} | {seconds / total:.1%} |" for label, seconds in parts],
    ]
    write_section(f"Whole training runs ({args.config}, cpu)", "\n".join(lines))


if __name__ == "__main__":
    main()
