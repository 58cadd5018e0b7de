"""``tkam evaluate RUN_DIR``: FID/KID (with infinity extrapolations), test log-likelihood and
Darcy statistics of a trained run, written to ``metrics.json`` (spec section 7)."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from tkam.metrics.evaluate import evaluate_run, format_table
from tkam.metrics.features import AutoencoderRecipe, ClassifierRecipe, FeatureError

__all__ = ["add_evaluate_command"]


def _clean(value):
    """JSON has no NaN or infinity: write them as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _clean(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(item) for item in value]
    return value


def _evaluate(args: argparse.Namespace) -> int:
    recipe, classifier_recipe = AutoencoderRecipe(), ClassifierRecipe()
    if args.feature_steps is not None:
        recipe = AutoencoderRecipe(steps=args.feature_steps)
        classifier_recipe = ClassifierRecipe(steps=args.feature_steps)
    try:
        metrics = evaluate_run(
            args.run_dir,
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
        )
    except (FeatureError, ValueError) as exc:
        raise SystemExit(f"tkam evaluate: error: {exc}") from None
    out = Path(args.out) if args.out else Path(args.run_dir) / "metrics.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(_clean(metrics), indent=2) + "\n")
    print(format_table(metrics))
    print(f"metrics written to {out}")
    return 0


def add_evaluate_command(subparsers: argparse._SubParsersAction) -> None:
    """Register ``tkam evaluate`` on the ``tkam`` subparsers."""
    p = subparsers.add_parser(
        "evaluate", help="FID/KID (and their infinity extrapolations) and test log-likelihood"
    )
    p.add_argument("run_dir")
    p.add_argument("--num", type=int, default=1000, help="generated images (default 1000)")
    p.add_argument(
        "--importance-samples",
        type=int,
        default=1000,
        metavar="K",
        help="prior samples of the log-likelihood estimate (default 1000)",
    )
    p.add_argument("--out", help="metrics file (default RUN_DIR/metrics.json)")
    p.add_argument(
        "--sample-sizes",
        type=int,
        nargs="+",
        metavar="N",
        help="FID/KID sample sizes (default: 1000..3000 by 200 for --num >= 3000, "
        "else 5 sizes from --num/5 to --num)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--inception",
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
        "--feature-cache", metavar="DIR", help="cache root for feature weights (~/.cache/tkam)"
    )
    p.add_argument(
        "--feature-steps",
        type=int,
        metavar="N",
        help="training steps of the feature classifier or autoencoder (default 1500 and 250; "
        "changes its name)",
    )
    p.add_argument("--kid-subsets", type=int, default=100, help="KID subsets (default 100)")
    p.add_argument(
        "--ti-items",
        type=int,
        default=100,
        metavar="N",
        help="thermodynamic runs: test items of the thermodynamic-integration estimate "
        "(default 100; 0 skips it)",
    )
    p.add_argument(
        "--ti-chains",
        type=int,
        default=4,
        metavar="R",
        help="chains per item and temperature of that estimate (default 4)",
    )
    p.set_defaults(func=_evaluate)
