"""Command line: ``tkam train | sample | plot | plot-prior | configs | data | evaluate``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from tkam.config import ConfigError, load_config, packaged_configs, resolve_config_path
from tkam.data import DataError
from tkam.data.commands import add_data_commands
from tkam.metrics.commands import add_evaluate_command
from tkam.plots import (
    plot_losses,
    plot_prior,
    plot_prior_grid,
    readable_scale,
    save_evolution_gif,
    save_image_grid,
)
from tkam.runs import load_run
from tkam.train import CheckpointError, TrainingError, fit

__all__ = ["main"]


def _train(args: argparse.Namespace) -> int:
    overrides = list(args.set or [])
    if args.device:
        overrides.append(f"train.device={args.device}")
    config = load_config(args.config, overrides)
    out = Path(args.out) if args.out else Path("runs") / resolve_config_path(args.config).stem
    fit(config, out, resume=args.resume, progress=not args.no_progress)
    written = ", ".join(
        name
        for name in (
            "model.safetensors",
            "loss.csv",
            "samples/",
            "prior.png",
            "loss.png",
            "evolution.gif",
        )
        if (out / name.rstrip("/")).exists()
    )
    print(f"run written to {out}: {written}")
    return 0


def _configs(args: argparse.Namespace) -> int:
    for name in packaged_configs():
        cfg = load_config(name)
        kind = "mixture" if cfg.prior.mixture else "univariate"
        print(
            f"{name:12s} data={cfg.data.name:8s} prior={kind} P={cfg.prior.num_inputs} "
            f"Q={cfg.prior.num_outputs} basis={cfg.prior.basis} pi0={cfg.prior.reference}"
        )
    return 0


def _sample(args: argparse.Namespace) -> int:
    _, model = load_run(args.run_dir)
    rng = torch.Generator().manual_seed(args.seed)
    images, z = model.sample(args.num, rng, return_latent=True)
    images = images.clamp(0.0, 1.0)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".npz":
        arrays = {"samples": images.numpy().astype(np.float32)}
        if args.latent:
            arrays["z"] = z.numpy().astype(np.float32)
        np.savez(out, **arrays)
    elif out.suffix == ".png":
        save_image_grid(images, out, scale=readable_scale(*images.shape[-2:]))
    else:
        raise SystemExit(f"--out {out}: use a .npz or .png file name")
    print(f"{args.num} samples written to {out}")
    return 0


def _plot_prior(args: argparse.Namespace) -> int:
    _, model = load_run(args.run_dir)
    if not model.prior.has_components:
        raise SystemExit(
            f"tkam plot-prior: the prior of {args.run_dir} ({type(model.prior).__name__}) has no "
            "univariate components to plot; plot-prior needs a univariate or mixture prior"
        )
    export = model.prior.export()
    components = None
    if args.components:
        components = [tuple(int(v) for v in item.split(",")) for item in args.components]
    plot_prior(export, args.out, components=components)
    print(f"prior plot written to {args.out}")
    if args.export:
        Path(args.export).parent.mkdir(parents=True, exist_ok=True)
        np.savez(args.export, **export)
        print(f"densities written to {args.export} (nodes, density, cdf, reference)")
    return 0


PLOTS = ("prior", "losses", "samples", "evolution")


def _plot(args: argparse.Namespace) -> int:
    unknown = [item for item in args.what if item not in PLOTS]
    if unknown:
        raise SystemExit(
            f"tkam plot: unknown figure {unknown[0]!r}; choose from {', '.join(PLOTS)}"
        )
    root = Path(args.run_dir)
    out = Path(args.out) if args.out else root / "plots"
    what = args.what or list(PLOTS)
    _, model = load_run(root)
    written, skipped = [], []
    if "prior" in what:
        if model.prior.has_components:
            export = model.prior.export()
            written.append(plot_prior(export, out / "prior.png"))
            written.append(plot_prior_grid(export, out / "prior_grid.png"))
        else:
            skipped.append("prior (this model's prior has no univariate components)")
    if "losses" in what:
        if (root / "loss.csv").is_file():
            written.append(plot_losses(root / "loss.csv", out / "loss.png"))
        else:
            skipped.append(f"losses ({root / 'loss.csv'} is missing)")
    if "samples" in what:
        shape = model.image_shape
        if len(shape) == 3 and shape[0] in (1, 3):
            rng = torch.Generator().manual_seed(args.seed)
            images = model.sample(args.num, rng).float().clamp(0.0, 1.0)
            path = out / "samples.png"
            save_image_grid(images, path, scale=readable_scale(*shape[1:]))
            written.append(path)
        else:
            skipped.append(f"samples (items of shape {shape} are not images)")
    if "evolution" in what:
        try:
            written.append(save_evolution_gif(root / "samples", out / "evolution.gif"))
        except FileNotFoundError as exc:
            skipped.append(f"evolution ({exc})")
    for path in written:
        print(f"wrote {path}")
    for reason in skipped:
        print(f"skipped {reason}")
    return 0 if written else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tkam", description="Thermodynamic Kolmogorov-Arnold Models: train, sample, plot."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a model from a TOML config or a packaged config")
    p.add_argument("config", help="TOML path or packaged config name (see `tkam configs`)")
    p.add_argument("--out", help="run folder (default runs/<config name>)")
    p.add_argument(
        "--set",
        action="append",
        metavar="SECTION.KEY=VALUE",
        help="override a config value, e.g. --set train.max_steps=500 (repeatable)",
    )
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint")
    p.add_argument(
        "--device", help="cpu, cuda, cuda:N or auto (CUDA when present); same as train.device"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_train)

    p = sub.add_parser("configs", help="list the packaged configs")
    p.set_defaults(func=_configs)

    p = sub.add_parser("sample", help="draw samples from a trained run")
    p.add_argument("run_dir")
    p.add_argument("--num", type=int, default=100)
    p.add_argument("--out", required=True, help=".npz (samples, optional z) or .png grid")
    p.add_argument("--latent", action="store_true", help="also store the latents z in the .npz")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_sample)

    p = sub.add_parser(
        "plot",
        help="figures of a run: prior components, loss curves, samples, evolution GIF",
        description="Write a run's figures into --out (default RUN_DIR/plots): prior.png (a few "
        "prior components over pi_0), prior_grid.png (every component), loss.png, samples.png "
        "and evolution.gif (the sample grids saved during training).",
    )
    p.add_argument("run_dir")
    p.add_argument(
        "what", nargs="*", metavar="WHAT", help=f"any of {', '.join(PLOTS)} (default: all)"
    )
    p.add_argument("--out", help="output folder (default RUN_DIR/plots)")
    p.add_argument("--num", type=int, default=100, help="samples in samples.png")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_plot)

    p = sub.add_parser("plot-prior", help="plot the learned univariate prior densities")
    p.add_argument("run_dir")
    p.add_argument("--out", required=True, help="PNG file")
    p.add_argument("--export", help="also write nodes, density and cdf to this .npz")
    p.add_argument(
        "--components", nargs="+", metavar="Q,P", help="components to draw, e.g. 0,0 0,1 3,2"
    )
    p.set_defaults(func=_plot_prior)

    add_data_commands(sub)

    add_evaluate_command(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ConfigError, DataError, CheckpointError, TrainingError) as exc:
        print(f"tkam: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        print(f"tkam: interrupted{': ' + str(exc) if str(exc) else ''}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
