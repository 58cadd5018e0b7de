"""Several training processes sharing the cores: seconds per update against intra-op threads.

Runs ``--runs`` copies of ``tkam train CONFIG`` at once, each with ``train.threads = t`` for every
t of ``--threads``, and a single run alone as the comparison; each process's seconds per update come
from its own ``loss.csv`` (training clock between the first and the last log row, so start-up and
the first grid update are left out). Repeated ``--repeats`` times; medians reported.

    python benchmarks/concurrent_threads.py --write
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from common import machine, write_section

STEPS = 400


def _seconds_per_update(run: Path) -> float:
    rows = list(csv.DictReader((run / "loss.csv").open()))
    first, last = rows[0], rows[-1]
    steps = int(last["Step"]) - int(first["Step"])
    return (float(last["Time (s)"]) - float(first["Time (s)"])) / steps


def _launch(config: str, threads: int, runs: int, folder: Path) -> list[float]:
    """``runs`` concurrent trainings with ``threads`` intra-op threads each; s / update of each."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    processes, outs = [], []
    for index in range(runs):
        out = folder / f"t{threads}_r{runs}_{index}"
        outs.append(out)
        command = [
            *(sys.executable, "-m", "tkam", "train", config, "--out", str(out), "--no-progress"),
            *("--overwrite", "--set", f"train.threads={threads}"),
            *("--set", f"train.max_steps={STEPS}", "--set", "train.log_every=100"),
        ]
        processes.append(subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL))
    for process in processes:
        if process.wait() != 0:
            raise SystemExit(f"a training failed (exit {process.returncode})")
    return [_seconds_per_update(out) for out in outs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="digits")
    parser.add_argument("--runs", type=int, default=2, help="concurrent processes")
    parser.add_argument("--threads", type=int, nargs="+", default=[2, 1])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0))
    results: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeats):
            alone = _launch(args.config, cores, 1, Path(tmp))
            results.setdefault(f"1 run alone, {cores} threads", []).extend(alone)
            for threads in args.threads:
                times = _launch(args.config, threads, args.runs, Path(tmp))
                results.setdefault(
                    f"{args.runs} runs at once, {threads} thread(s) each", []
                ).extend(times)
    alone_key = f"1 run alone, {cores} threads"
    reference = statistics.median(results[alone_key])
    lines = [
        f"Measured on {machine()} ({cores} usable cores), nothing else running.",
        f"Command: `python benchmarks/concurrent_threads.py --config {args.config} --runs "
        f"{args.runs}` ({STEPS} updates per run, seconds per update from each run's loss.csv "
        f"between its first and last log rows; median over {args.repeats} repeats and the runs).",
        "",
        "| setting | s / update (median) | ratio to one run alone |",
        "|---|---|---|",
    ]
    for key, times in results.items():
        median = statistics.median(times)
        lines.append(f"| {key} | {median:.4f} | {median / reference:.2f} |")
    body = "\n".join(lines)
    print(body)
    if args.write:
        write_section("Concurrent runs and intra-op threads (cpu)", body)


if __name__ == "__main__":
    main()
