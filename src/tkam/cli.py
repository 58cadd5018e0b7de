"""Command line: ``tkam train | sample | plot | plot-prior | configs | data | evaluate | inspect``.

A user's mistake ends in one line on stderr and a non-zero exit status, never a traceback:
argparse's usage error for a bad argument (the types check counts, seeds and output paths before
any work), ``tkam: error: ...`` with status 2 for what a command finds later (a missing run, a bad
config, a component out of range), and status 1 for a file the system refuses to read or write.
"""

from __future__ import annotations

import argparse
import math
import re
import signal
import sys
import warnings
from collections.abc import Callable, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, TextIO, TypeVar

import numpy as np
import torch

from tkam.argtypes import count, device, memory_problem, output_file, output_folder, seed
from tkam.config import ConfigError, load_config, packaged_configs, resolve_config_path
from tkam.data import DataError
from tkam.data.commands import add_data_commands
from tkam.manifest import record
from tkam.metrics.commands import add_evaluate_command
from tkam.paths import Figures, RunPaths
from tkam.plots import (
    plot_losses,
    plot_prior,
    plot_prior_grid,
    readable_scale,
    save_evolution_gif,
    save_image_grid,
)
from tkam.prior.commands import add_inspect_command
from tkam.runs import ModelInfo, load_run, model_info
from tkam.train import CheckpointError, RunStopped, TrainingError, fit

__all__ = ["CommandError", "main"]


class CommandError(Exception):
    """A user error a command finds while running; ``main`` prints it as ``tkam: error: ...``."""


T = TypeVar("T")


def _evaluated(run_dir: str | Path, work: Callable[[], T]) -> T:
    """``work()``, a computation with a run's model; a model that cannot be evaluated (weights
    far out of range, which the prior's quadrature rejects) is a :class:`CommandError`."""
    try:
        return work()
    except ValueError as exc:
        lines = str(exc).strip().splitlines() or [type(exc).__name__]
        raise CommandError(
            f"the model of {run_dir} cannot be evaluated ({lines[0]}): its weights are corrupt "
            "or the run diverged; train it again (lower train.learning_rate if it diverged)"
        ) from None


def _used(info: ModelInfo) -> str:
    return f"model {info.describe()}"


def _train(args: argparse.Namespace) -> int:
    overrides = list(args.set or [])
    if args.device:
        overrides.append(f"train.device={args.device}")
    config = load_config(args.config, overrides)
    out = Path(args.out) if args.out else Path("runs") / resolve_config_path(args.config).stem
    fit(config, out, resume=args.resume, overwrite=args.overwrite, progress=not args.no_progress)
    paths = RunPaths(out)
    figures = paths.figures
    written = ", ".join(
        path.name + ("/" if path.is_dir() else "")
        for path in (
            paths.model,
            paths.loss_csv,
            paths.samples,
            figures.prior,
            figures.losses,
            figures.evolution,
        )
        if path.exists()
    )
    print(f"run written to {out}: {written}")
    return 0


def _configs(args: argparse.Namespace) -> int:
    rows = [("config", "data", "prior", "P", "Q", "basis", "pi0")]
    for name in packaged_configs():
        cfg = load_config(name)
        prior = cfg.prior
        rows.append(
            (name, cfg.data.name, prior.kind, str(prior.num_inputs), str(prior.num_outputs))
            + (prior.basis, prior.reference)
        )
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    return 0


def _check_memory(num: int, shape: tuple[int, ...]) -> None:
    """Refuse ``--num`` samples of ``shape`` that cannot fit in memory (float32, held about three
    times while drawn and clamped), before drawing any."""
    problem = memory_problem(
        f"--num {num}: {num} samples of shape {tuple(shape)}", 3 * 4 * num * math.prod(shape)
    )
    if problem:
        raise CommandError(problem)


def _sample(args: argparse.Namespace) -> int:
    out = args.out  # a .npz or .png path, checked by its argparse type
    if args.latent and out.suffix != ".npz":
        raise CommandError(f"--latent stores z in the .npz; --out {out} is a PNG grid")
    _, model = load_run(args.run_dir)
    info = model_info(args.run_dir)
    _check_memory(args.num, model.image_shape)
    rng = torch.Generator().manual_seed(args.seed)
    images, z = _evaluated(args.run_dir, lambda: model.sample(args.num, rng, return_latent=True))
    images = images.clamp(0.0, 1.0)
    if out.suffix == ".npz":
        out.parent.mkdir(parents=True, exist_ok=True)
        # Any: numpy's stubs type savez's keywords as arrays or its allow_pickle flag.
        arrays: dict[str, Any] = {"samples": images.numpy().astype(np.float32)}
        if args.latent:
            arrays["z"] = z.numpy().astype(np.float32)
        np.savez(out, **arrays)
    else:
        shape = tuple(images.shape[1:])
        if len(shape) != 3 or shape[0] not in (1, 3):
            raise CommandError(
                f"--out {out}: this run's items of shape {shape} are not images; use a .npz"
            )
        save_image_grid(
            images,
            out,
            scale=readable_scale(*images.shape[-2:]),
            metadata=info.png_metadata(),
        )
    print(f"{args.num} samples of {_used(info)} written to {out}")
    return 0


def _component(text: str) -> tuple[int, int]:
    """An argparse type: ``Q,P``, the 0-based output and input index of one prior component."""
    try:
        q, p = (int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected Q,P (two integers, e.g. 0,1), got {text!r}"
        ) from None
    if q < 0 or p < 0:
        raise argparse.ArgumentTypeError(f"{text}: component indices start at 0")
    return q, p


def _plot_prior(args: argparse.Namespace) -> int:
    _, model = load_run(args.run_dir)
    info = model_info(args.run_dir)
    if not model.prior.has_components:
        raise CommandError(
            f"the prior of {args.run_dir} ({type(model.prior).__name__}) has no univariate "
            "components to plot; plot-prior needs a univariate or mixture prior"
        )
    export: dict[str, Any] = _evaluated(args.run_dir, model.prior.export)  # Any: as for savez
    num_outputs, num_inputs = export["density"].shape[:2]
    for q, p in args.components or ():
        if q >= num_outputs or p >= num_inputs:
            raise CommandError(
                f"--components {q},{p} is out of range: the prior of {args.run_dir} has "
                f"Q={num_outputs} outputs and P={num_inputs} inputs, so 0 <= q <= "
                f"{num_outputs - 1} and 0 <= p <= {num_inputs - 1}"
            )
    plot_prior(export, args.out, components=args.components, metadata=info.png_metadata())
    print(f"prior plot of {_used(info)} written to {args.out}")
    if args.export:
        args.export.parent.mkdir(parents=True, exist_ok=True)
        np.savez(args.export, **export)
        print(f"densities written to {args.export} (nodes, density, cdf, reference)")
    return 0


PLOTS = ("prior", "losses", "samples", "evolution")


def _plot(args: argparse.Namespace) -> int:
    unknown = [item for item in args.what if item not in PLOTS]
    if unknown:
        raise CommandError(f"unknown figure {unknown[0]!r}; choose from {', '.join(PLOTS)}")
    root = Path(args.run_dir)
    paths = RunPaths(root)
    figures = Figures(args.out) if args.out else paths.plots
    what = args.what or list(PLOTS)
    _, model = load_run(root)
    info = model_info(root)
    metadata = info.png_metadata()
    if "samples" in what:
        _check_memory(args.num, model.image_shape)
    written, skipped = [], []
    if "prior" in what:
        if model.prior.has_components:
            export = _evaluated(root, model.prior.export)
            written.append(plot_prior(export, figures.prior, metadata=metadata))
            written.append(plot_prior_grid(export, figures.prior_grid, metadata=metadata))
        else:
            skipped.append("prior (this model's prior has no univariate components)")
    if "losses" in what:
        if paths.loss_csv.is_file():
            try:
                written.append(plot_losses(paths.loss_csv, figures.losses, metadata=metadata))
            except ValueError as exc:  # a damaged or empty loss.csv: say so, draw the rest
                skipped.append(f"losses ({exc})")
        else:
            skipped.append(f"losses ({paths.loss_csv} is missing)")
    if "samples" in what:
        shape = model.image_shape
        if len(shape) == 3 and shape[0] in (1, 3):
            rng = torch.Generator().manual_seed(args.seed)
            images = _evaluated(root, lambda: model.sample(args.num, rng)).float().clamp(0, 1)
            save_image_grid(
                images, figures.samples, scale=readable_scale(*shape[1:]), metadata=metadata
            )
            written.append(figures.samples)
        else:
            skipped.append(f"samples (items of shape {shape} are not images)")
    if "evolution" in what:
        try:
            written.append(save_evolution_gif(paths.samples, figures.evolution))
        except FileNotFoundError as exc:
            skipped.append(f"evolution ({exc})")
    record(root, written)  # figures written into the run folder belong to its manifest
    print(f"figures of {_used(info)}")
    for path in written:
        print(f"wrote {path}")
    for reason in skipped:
        print(f"skipped {reason}")
    return 0 if written else 1


class _Parser(argparse.ArgumentParser):
    """argparse's parser, reading every argument that starts with ``-`` and a digit (``-1,0``,
    ``-1e3``) as a value, as Python 3.13's does: so ``--components -1,0`` is refused for its
    value, not as a missing argument. Subcommands' parsers are of the same class."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._negative_number_matcher = re.compile(r"^-\.?\d")


def build_parser() -> argparse.ArgumentParser:
    """The ``tkam`` parser: one subcommand each for training, sampling, plotting, the packaged
    configs, the data sets, evaluation and inspection."""
    parser = _Parser(
        prog="tkam", description="Thermodynamic Kolmogorov-Arnold Models: train, sample, plot."
    )
    parser.add_argument("--version", action="version", version=f"tkam {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_train_command(sub)
    _add_configs_command(sub)
    _add_sample_command(sub)
    _add_plot_command(sub)
    _add_plot_prior_command(sub)
    add_data_commands(sub)
    add_evaluate_command(sub)
    add_inspect_command(sub)
    return parser


def _add_train_command(sub: argparse._SubParsersAction) -> None:
    """``tkam train CONFIG``: a config, its overrides, the run folder and how to treat a run
    already in it."""
    p = sub.add_parser("train", help="train a model from a TOML config or a packaged config")
    p.add_argument("config", help="TOML path or packaged config name (see `tkam configs`)")
    p.add_argument("--out", help="run folder (default runs/<config name>)")
    p.add_argument(
        "--set",
        action="append",
        metavar="SECTION.KEY=VALUE",
        help="override a config value, e.g. --set train.max_steps=500 (repeatable)",
    )
    start = p.add_mutually_exclusive_group()
    start.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out from its newest checkpoint; only the settings listed in "
        "the README (learning rate, length, cadence, device, ...) may change",
    )
    start.add_argument(
        "--overwrite",
        action="store_true",
        help="delete the run already in --out (config, log, checkpoints, samples, model, "
        "figures) and start afresh",
    )
    p.add_argument(
        "--device",
        type=device,
        help="cpu, cuda, cuda:N or auto (CUDA when present); same as train.device",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_train)


def _add_configs_command(sub: argparse._SubParsersAction) -> None:
    """``tkam configs``: the packaged configs, one line each."""
    p = sub.add_parser("configs", help="list the packaged configs")
    p.set_defaults(func=_configs)


def _add_sample_command(sub: argparse._SubParsersAction) -> None:
    """``tkam sample RUN_DIR``: samples of a trained run as ``.npz`` or a PNG grid."""
    p = sub.add_parser("sample", help="draw samples from a trained run")
    p.add_argument("run_dir", help="run folder written by tkam train")
    p.add_argument("--num", type=count, default=100, help="samples to draw (default 100)")
    p.add_argument(
        "--out",
        type=output_file(".npz", ".png"),
        required=True,
        help=".npz (samples, optional z) or .png grid",
    )
    p.add_argument("--latent", action="store_true", help="also store the latents z in the .npz")
    p.add_argument("--seed", type=seed, default=0, help="random seed (default 0)")
    p.set_defaults(func=_sample)


def _add_plot_command(sub: argparse._SubParsersAction) -> None:
    """``tkam plot RUN_DIR [WHAT ...]``: the figures of a run."""
    p = sub.add_parser(
        "plot",
        help="figures of a run: prior components, loss curves, samples, evolution GIF",
        description="Write a run's figures into --out (default RUN_DIR/plots): prior.png (a few "
        "prior components over pi_0), prior_grid.png (every component), loss.png, samples.png "
        "and evolution.gif (the sample grids saved during training).",
    )
    p.add_argument("run_dir", help="run folder written by tkam train")
    p.add_argument(
        "what", nargs="*", metavar="WHAT", help=f"any of {', '.join(PLOTS)} (default: all)"
    )
    p.add_argument("--out", type=output_folder, help="output folder (default RUN_DIR/plots)")
    p.add_argument("--num", type=count, default=100, help="samples in samples.png (default 100)")
    p.add_argument("--seed", type=seed, default=0, help="random seed of samples.png (default 0)")
    p.set_defaults(func=_plot)


def _add_plot_prior_command(sub: argparse._SubParsersAction) -> None:
    """``tkam plot-prior RUN_DIR``: chosen prior components, and their densities as ``.npz``."""
    p = sub.add_parser("plot-prior", help="plot the learned univariate prior densities")
    p.add_argument("run_dir", help="run folder written by tkam train")
    p.add_argument("--out", type=output_file(".png"), required=True, help="PNG file to write")
    p.add_argument(
        "--export",
        type=output_file(".npz"),
        help="also write nodes, density, cdf and reference to this .npz",
    )
    p.add_argument(
        "--components",
        type=_component,
        nargs="+",
        metavar="Q,P",
        help="0-based components to draw, e.g. 0,0 0,1 3,2 (default: the first 12)",
    )
    p.set_defaults(func=_plot_prior)


def _version() -> str:
    try:
        return version("tkam")
    except PackageNotFoundError:
        return "(not installed)"


def _show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    """Warnings as ``tkam: warning: ...`` lines, without the file and line they come from."""
    print(f"tkam: warning: {message}", file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    try:
        return args.func(args)
    except (ConfigError, DataError, CheckpointError, TrainingError, CommandError) as exc:
        print(f"tkam: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        # What the argument checks could not foresee (a disk filling up, a folder removed
        # meanwhile): the system's reason and the file, not a traceback.
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"tkam: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 1
    except MemoryError:
        print("tkam: error: out of memory; ask for fewer or smaller items", file=sys.stderr)
        return 1
    except KeyboardInterrupt as exc:
        print(f"tkam: interrupted{': ' + str(exc) if str(exc) else ''}", file=sys.stderr)
        # The shell's status for a process ended by the signal: 130 for SIGINT, 143 for SIGTERM.
        return 128 + (exc.signum if isinstance(exc, RunStopped) else signal.SIGINT)


if __name__ == "__main__":
    raise SystemExit(main())
