"""``tkam evaluate RUN_DIR``: FID/KID (with infinity extrapolations), test log-likelihood and
Darcy statistics of a trained run, written to ``metrics.json`` (maths 7)."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from tkam.argtypes import (
    MAX_COUNT,
    bounded_int,
    count,
    existing_path,
    memory_problem,
    output_file,
    output_folder,
    seed,
)
from tkam.data import DataError
from tkam.files import atomic_path, json_ready
from tkam.manifest import record
from tkam.metrics.evaluate import (
    EvaluationOptions,
    evaluate_run,
    format_table,
    sample_size_problem,
)
from tkam.metrics.extrapolation import default_sample_sizes
from tkam.metrics.features import AutoencoderRecipe, ClassifierRecipe, FeatureError
from tkam.paths import RunPaths
from tkam.train.checkpoint import CheckpointError, read_metadata

__all__ = ["add_evaluate_command"]


def _progress(line: str) -> None:
    """A progress line, flushed: evaluation trains feature networks for minutes, and a pipe
    (``| tee``) would otherwise hold the line back until the end."""
    print(line, flush=True)


def _error(message: str) -> int:
    print(f"tkam: error: {message}", file=sys.stderr)
    return 2


def _memory_problem(run_dir: str, num: int) -> str | None:
    """Why ``num`` generated items of the run's shape cannot fit in memory, if they cannot."""
    try:
        metadata = read_metadata(RunPaths(Path(run_dir)).model)
        shape = tuple(int(s) for s in metadata["image_shape"].split(","))
    except (CheckpointError, KeyError, ValueError):
        return None  # evaluate_run says what is wrong with the run
    needed = 3 * 4 * num * math.prod(shape)
    return memory_problem(f"--num {num}: {num} generated items of shape {shape}", needed)


def _options(args: argparse.Namespace) -> EvaluationOptions:
    """The evaluation the command line asks for."""
    recipe, classifier_recipe = AutoencoderRecipe(), ClassifierRecipe()
    if args.feature_steps is not None:
        recipe = AutoencoderRecipe(steps=args.feature_steps)
        classifier_recipe = ClassifierRecipe(steps=args.feature_steps)
    return EvaluationOptions(
        num_generated=args.num,
        importance_samples=args.importance_samples,
        sample_sizes=args.sample_sizes,
        seed=args.seed,
        inception=args.inception,
        features=args.features,
        feature_cache=args.feature_cache,
        feature_recipe=recipe,
        classifier_recipe=classifier_recipe,
        kid_num_subsets=args.kid_subsets,
        thermodynamic_items=args.ti_items,
        thermodynamic_chains=args.ti_chains,
        data_root=args.data_root,
        real=args.real,
    )


def _evaluate(args: argparse.Namespace) -> int:
    if args.sample_sizes and max(args.sample_sizes) > args.num:
        return _error(
            f"--sample-sizes {max(args.sample_sizes)} exceeds --num {args.num}: every FID/KID "
            "sample size must be at most the number of generated images"
        )
    problem = _memory_problem(args.run_dir, args.num)
    if problem:
        return _error(problem)
    try:
        sizes = args.sample_sizes or default_sample_sizes(args.num)
    except ValueError as exc:
        return _error(f"--num {args.num}: {exc}")
    problem = sample_size_problem(sizes, args.num)
    if problem:
        return _error(problem)
    out = args.out or RunPaths(Path(args.run_dir)).metrics
    if args.out is None and Path(args.run_dir).is_dir():
        # Found out before minutes of sampling and feature training, not after.
        try:
            output_file(".json")(str(out))
        except argparse.ArgumentTypeError as exc:
            return _error(f"{exc}; pass --out PATH to write the metrics elsewhere")
    try:
        metrics = evaluate_run(args.run_dir, _options(args), log=_progress)
    except DataError as exc:
        # The run names its data by the folder it was trained from; that may have moved.
        moved = args.data_root or "--data-root" in str(exc)
        hint = "" if moved else "; if the data moved, pass its folder as --data-root PATH"
        return _error(f"{exc}{hint}")
    except (FeatureError, ValueError) as exc:
        return _error(str(exc))
    with atomic_path(out) as temporary:
        temporary.write_text(json.dumps(json_ready(metrics), indent=2) + "\n")
    record(args.run_dir, [out])  # metrics.json in the run folder belongs to its manifest
    print(format_table(metrics))
    print(f"metrics written to {out}")
    return 0


def add_evaluate_command(subparsers: argparse._SubParsersAction) -> None:
    """Register ``tkam evaluate`` on the ``tkam`` subparsers."""
    p = subparsers.add_parser(
        "evaluate", help="FID/KID (and their infinity extrapolations) and test log-likelihood"
    )
    p.add_argument("run_dir", help="run folder written by tkam train")
    p.add_argument("--num", type=count, default=1000, help="generated images (default 1000)")
    p.add_argument(
        "--importance-samples",
        type=bounded_int(0, MAX_COUNT),
        default=1000,
        metavar="K",
        help="prior samples of the log-likelihood estimate (default 1000; 0 skips the "
        "log-likelihood)",
    )
    p.add_argument("--out", type=output_file(), help="metrics file (default RUN_DIR/metrics.json)")
    p.add_argument(
        "--data-root",
        type=existing_path,
        metavar="PATH",
        help="the data set's folder (for darcy its HDF5 file) when it is no longer where the "
        "run was trained from: overrides the run's data.root",
    )
    p.add_argument(
        "--sample-sizes",
        type=count,
        nargs="+",
        metavar="N",
        help="FID/KID sample sizes (default: 1000..3000 by 200 for --num >= 3000, "
        "else 5 sizes from --num/5 to --num)",
    )
    p.add_argument(
        "--seed",
        type=seed,
        default=0,
        help="seed of the generated images, the KID subsets and the estimates (default 0)",
    )
    p.add_argument(
        "--inception",
        type=existing_path,
        metavar="PATH",
        help="torchvision Inception-v3 state dict (needs torchvision); default: "
        "FEATURE_CACHE/features/inception_v3.pth when present",
    )
    p.add_argument(
        "--features",
        choices=("auto", "classifier", "autoencoder"),
        default="auto",
        help="auto: Inception if given or present, else tkam's per-data-set classifier "
        "(labelled data sets), else tkam's autoencoder (default auto)",
    )
    p.add_argument(
        "--feature-cache",
        type=output_folder,
        metavar="DIR",
        help="cache root for feature weights (default $TKAM_CACHE or ~/.cache/tkam)",
    )
    p.add_argument(
        "--feature-steps",
        type=count,
        metavar="N",
        help="training steps of the feature classifier or autoencoder (default 1500 and 250; "
        "changes its name)",
    )
    p.add_argument(
        "--real",
        choices=("train", "held-out"),
        default="train",
        help="real images of FID/KID: training images (default) or the run's held-out items "
        "(with data.split = spec a validation split of the training file, for choosing "
        "settings without the test set)",
    )
    p.add_argument("--kid-subsets", type=count, default=100, help="KID subsets (default 100)")
    p.add_argument(
        "--ti-items",
        type=bounded_int(0, MAX_COUNT),
        default=100,
        metavar="N",
        help="thermodynamic runs: test items of the thermodynamic-integration estimate "
        "(default 100; 0 skips it)",
    )
    p.add_argument(
        "--ti-chains",
        type=count,
        default=4,
        metavar="R",
        help="chains per item and temperature of that estimate (default 4)",
    )
    p.set_defaults(func=_evaluate)
