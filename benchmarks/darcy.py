"""Darcy flow generation speed: 1,000 coefficient/solution pairs at 32x32.

Times :func:`tkam.data.darcy.generate_darcy` (Gaussian random field, thresholding, assembly and
SuperLU solve of every field on the 96x96 solver grid, sampling to 32x32), the work of
``tkam data darcy --num 1000``, without the HDF5 write; median of 3 runs. The target is under
30 s on two CPU cores.

    python benchmarks/darcy.py [--num 1000] [--repeats 3] [--no-write]
"""

from __future__ import annotations

import argparse
import datetime
import os

from common import machine, median_time, write_section
from tkam.data.darcy import DEFAULT_REFINEMENT, default_workers, generate_darcy

TARGET_S = 30.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num", type=int, default=1000)
    parser.add_argument("--resolution", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-write", action="store_true", help="do not update RESULTS.md")
    args = parser.parse_args()

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    seeds = iter(range(args.repeats))
    median, std = median_time(
        lambda: generate_darcy(args.num, args.resolution, seed=next(seeds)),
        repeats=args.repeats,
        warmup=0,
    )
    fine = args.resolution * DEFAULT_REFINEMENT
    print(
        f"{args.num} fields at {args.resolution}x{args.resolution} (solved at {fine}x{fine}, "
        f"{default_workers()} solver threads): {median:.2f} s median (std {std:.2f})"
    )
    if not args.no_write:
        body = "\n".join(
            [
                f"Measured {datetime.date.today()} on {machine()}.",
                f"Command: `python benchmarks/darcy.py` ({args.repeats} runs of `generate_darcy`,"
                f" different seeds, median; no HDF5 write). Load average when it started: {load:.1f}"
                " (other processes share the cores).",
                "",
                "| fields | output | solver grid | threads | median (s) | std (s) | target (s) |",
                "|---|---|---|---|---|---|---|",
                f"| {args.num:,} | {args.resolution}x{args.resolution} | {fine}x{fine} | "
                f"{default_workers()} | {median:.2f} | {std:.2f} | < {TARGET_S:.0f} |",
            ]
        )
        write_section("Darcy flow generation (cpu)", body)
    print(f"darcy_{args.num}_fields_s={median:.4g}")


if __name__ == "__main__":
    main()
