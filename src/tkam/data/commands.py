"""``tkam data list | download | darcy``: the data sets' files from the command line.

Errors are :class:`~tkam.data.types.DataError`, which ``tkam``'s ``main`` prints as
``tkam: error: ...`` with exit status 2.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from tkam.argtypes import (
    bounded_int,
    count,
    folder,
    memory_problem,
    odd_positive_int,
    output_file,
    output_folder,
    positive_float,
    seed,
)
from tkam.data.darcy.files import write_darcy
from tkam.data.darcy.generate import generate_darcy, generation_attributes
from tkam.data.download import DEFAULT_TIMEOUT, download_dataset
from tkam.data.registry import DATASETS, check_files, dataset_info, default_root
from tkam.data.types import DataError

__all__ = ["add_data_commands"]


def _status(name: str, root: Path) -> str:
    """``present`` when the files of the data set's spec split look right (see
    :func:`~tkam.data.registry.check_files`), else what is missing or wrong; the official test
    split's own problems follow in parentheses."""
    info = dataset_info(name)
    problems = check_files(name, root)
    if problems:
        if problems[0].startswith("missing:"):
            hint = "tkam data darcy" if info.kind == "generated" else f"tkam data download {name}"
            problems[0] += f" ({hint})"
        return "; ".join(problems)
    official = check_files(name, root, "official") if info.official_files else []
    return f"present (official split: {'; '.join(official)})" if official else "present"


def _list(args: argparse.Namespace) -> int:
    rows = []
    for name in DATASETS:
        info = dataset_info(name)
        root = Path(args.root).expanduser() if args.root else default_root(name)
        if info.kind == "builtin" or root is None:
            rows.append((name, "built in", "(bundled with scikit-learn)"))
            continue
        rows.append((name, _status(name, root), str(root)))
    width = max(len(row[0]) for row in rows)
    for name, status, where in rows:
        print(f"{name:{width}s}  {where}  {status}")
    return 0


def _download(args: argparse.Namespace) -> int:
    root = download_dataset(args.name, args.root, timeout=args.timeout)
    print(f"{args.name}: files in {root}")
    return 0


def _darcy(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if out.exists() and not args.force:
        raise DataError(f"{out} exists; pass --force to overwrite it")
    # The two output arrays, and the solver's chunks of up to 100 fields (about 100 bytes per
    # fine-grid cell each): refused at once when they cannot fit.
    fine = args.resolution * args.refinement
    problem = memory_problem(
        f"--num {args.num} fields of --resolution {args.resolution} (solved at {fine}x{fine})",
        2 * 4 * args.num * args.resolution**2 + min(100, args.num) * fine**2 * 100,
    )
    if problem:
        raise DataError(problem)
    start = time.perf_counter()

    def progress(done: int) -> None:
        if not args.quiet:
            elapsed = time.perf_counter() - start
            print(f"\r{done}/{args.num} fields ({elapsed:.1f} s)", end="", file=sys.stderr)

    fields = generate_darcy(
        args.num, args.resolution, args.seed, args.refinement, progress=progress
    )
    if not args.quiet:
        print(file=sys.stderr)
    attributes = generation_attributes(args.num, args.resolution, args.seed, args.refinement)
    write_darcy(out, fields, attributes)
    print(
        f"{args.num} Darcy flow fields ({args.resolution}x{args.resolution}, solved at "
        f"{args.resolution * args.refinement}x{args.resolution * args.refinement}) written to "
        f"{out} in {time.perf_counter() - start:.1f} s: datasets coefficient, solution"
    )
    return 0


def add_data_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register ``tkam data ...`` on the ``tkam`` command's subparsers."""
    data = subparsers.add_parser(
        "data",
        help="list, download or generate data sets",
        description="List the data sets and their files, download them, or generate Darcy flow.",
    )
    commands = data.add_subparsers(dest="data_command", required=True)

    p = commands.add_parser("list", help="each data set, its data root and whether it is present")
    p.add_argument(
        "--root",
        type=folder,
        help="check this folder as the data root of every data set (default: each one's)",
    )
    p.set_defaults(func=_list)

    p = commands.add_parser(
        "download",
        help="fetch a data set's files from their official locations, verifying checksums",
    )
    p.add_argument("name", choices=DATASETS, help=f"the data set: {', '.join(DATASETS)}")
    p.add_argument(
        "--root",
        type=output_folder,
        help="data root to fill (default: the data set's, see `tkam data list`)",
    )
    p.add_argument(
        "--timeout",
        type=positive_float,
        default=DEFAULT_TIMEOUT,
        help=f"seconds to wait for a connection (default {DEFAULT_TIMEOUT:g})",
    )
    p.set_defaults(func=_download)

    p = commands.add_parser(
        "darcy",
        help="generate Darcy flow fields into an HDF5 file (coefficient, solution)",
        description="Generate Darcy flow pairs: a = 12 / 3 thresholded from a Gaussian random "
        "field with covariance (-Laplacian + 9)^-2; -div(a grad u) = 1, u = 0 on the boundary, "
        "solved by cell-centred finite volumes on a finer grid.",
    )
    p.add_argument("--num", type=count, required=True, help="number of fields")
    p.add_argument(
        "--resolution", type=bounded_int(2), default=32, help="output side, >= 2 (default 32)"
    )
    p.add_argument("--seed", type=seed, default=0, help="random seed (default 0)")
    p.add_argument(
        "--refinement",
        type=odd_positive_int,
        default=3,
        help="odd factor of the finer solver grid (default 3: 96x96 for 32x32)",
    )
    p.add_argument(
        "--out", type=output_file(), required=True, help="HDF5 file to write, e.g. darcy_32.h5"
    )
    p.add_argument("--force", action="store_true", help="overwrite an existing file")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    p.set_defaults(func=_darcy)
