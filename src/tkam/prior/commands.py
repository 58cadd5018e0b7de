"""``tkam inspect RUN_DIR``: what a trained run's prior learned (:mod:`tkam.prior.learned`).

Prints a table (the divergences of the prior's components from pi_0, the effective dimension of
the generator's input under the prior, and the components farthest from pi_0), or with ``--json``
one JSON object. A missing or bad run folder is a :class:`~tkam.config.ConfigError` or
:class:`~tkam.train.checkpoint.CheckpointError`, which ``tkam``'s ``main`` prints as one line.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any

import torch

from tkam.argtypes import MAX_COUNT, bounded_int, memory_problem, seed
from tkam.files import json_ready
from tkam.prior.learned import (
    TV_THRESHOLD,
    component_divergences,
    largest_components,
    prior_report,
)
from tkam.prior.protocol import Prior
from tkam.runs import load_run

__all__ = ["add_inspect_command", "format_report", "inspect_prior"]

#: Components listed by name, farthest from pi_0 first.
NUM_LISTED = 5


def _error(message: str) -> int:
    print(f"tkam: error: {message}", file=sys.stderr)
    return 2


def _number(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}g}"


def format_report(report: dict[str, Any], title: str) -> str:
    """The report of :func:`inspect_prior` as a readable table."""
    rows: list[tuple[str, str]] = []
    if report["num_components"] is not None:
        tv = " / ".join(_number(report[key]) for key in ("tv_median", "tv_p90", "tv_max"))
        kl = " / ".join(_number(report[key]) for key in ("kl_median", "kl_p90"))
        rows += [
            ("components", str(report["num_components"])),
            ("TV from pi_0: median / p90 / max", tv),
            ("KL from pi_0: median / p90", kl),
            (f"share with TV > {TV_THRESHOLD:g}", f"{100 * report['share_tv_above_0.1']:.1f} %"),
        ]
    if report["h_effective_dimension"] is not None:
        rows += [
            (
                "h effective dimension",
                f"{report['h_effective_dimension']} of {report['h_width']} (99 % of the variance "
                f"of {report['h_samples']} prior draws)",
            ),
            ("h leading direction", f"{_number(report['h_leading_share'], 3)} of the variance"),
        ]
    width = max((len(label) for label, _ in rows), default=0)
    lines = [title, *(f"  {label:<{width}}  {value}" for label, value in rows)]
    if report["num_components"] is None:
        lines.append("  no univariate components: TV and KL from pi_0 are not defined")
    if report["h_effective_dimension"] is None:
        lines.append("  h: this prior cannot be sampled")
    largest = report.get("largest_tv_components") or []
    if largest:
        lines += ["", f"components farthest from pi_0 (largest TV, {len(largest)} shown)"]
        lines.append(f"  {'(q, p)':>10}  {'TV':>8}  {'KL':>8}")
        for row in largest:
            where = f"({row['q']}, {row['p']})"
            lines.append(f"  {where:>10}  {_number(row['tv']):>8}  {_number(row['kl']):>8}")
    return "\n".join(lines)


def inspect_prior(prior: Prior, num_samples: int, seed_value: int) -> dict[str, Any]:
    """:func:`~tkam.prior.learned.prior_report` plus the components farthest from pi_0
    (``largest_tv_components``, empty without components) and ``h_samples``."""
    rng = torch.Generator().manual_seed(seed_value)
    report = prior_report(prior, num_samples=num_samples, rng=rng)
    report["h_samples"] = num_samples
    report["largest_tv_components"] = []
    if prior.has_components:
        kl, tv = component_divergences(prior)  # the cached quadrature: no second evaluation
        report["largest_tv_components"] = largest_components(kl, tv, NUM_LISTED)
    return report


def _inspect(args: argparse.Namespace) -> int:
    _, model = load_run(args.run_dir)
    prior = model.prior
    problem = memory_problem(
        f"--samples {args.samples}: {args.samples} prior draws of shape {tuple(prior.latent_shape)}",
        3 * 8 * args.samples * math.prod(prior.latent_shape),
    )
    if problem:
        return _error(problem)
    try:
        report = inspect_prior(prior, args.samples, args.seed)
    except ValueError as exc:  # a prior whose quadrature has no finite mass
        return _error(f"{args.run_dir}: {exc}")
    if args.json:
        print(json.dumps(json_ready(report), indent=2))
    else:
        print(format_report(report, f"prior of {args.run_dir}: {type(prior).__name__}"))
    return 0


def add_inspect_command(subparsers: argparse._SubParsersAction) -> None:
    """Register ``tkam inspect`` on the ``tkam`` subparsers."""
    p = subparsers.add_parser(
        "inspect",
        help="what a run's prior learned: divergences of its components from pi_0, effective "
        "dimension of the generator's input",
        description="How far each prior component p_qp moved from its reference density pi_0 "
        "(total variation and KL, integrated with the prior's own quadrature), and how many "
        "principal directions of the generator's input h hold 99 % of its variance under prior "
        "draws. Priors without univariate components (deep, VAE, latent EBM) get the h part only.",
    )
    p.add_argument("run_dir", help="run folder written by tkam train")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.add_argument(
        "--samples",
        type=bounded_int(2, MAX_COUNT),
        default=2000,
        metavar="N",
        help="prior draws of h for its effective dimension (default 2000)",
    )
    p.add_argument("--seed", type=seed, default=0, help="seed of those draws (default 0)")
    p.set_defaults(func=_inspect)
