"""autoMALA's step-size search: evaluating only the chains still searching, against the batch.

One Langevin-loss posterior call (``tkam.losses.langevin.posterior_samples``) of the fmnist
config with ``posterior.sampler = "automala"`` (25 iterations, 100 chains, one per image of a
batch of Fashion-MNIST training images). Each search trial evaluates the chains that are still
searching (``TemperedTarget.on_rows``), or, as before, every chain of the batch, which waits for
its slowest chain. Both variants draw the same numbers and end on the same chains; each keeps
its own ``StepSizeMemory`` (warmed by the first calls), so both start every call from the same
adapted step sizes. Paired calls, alternating, in one process; also the number of batched
evaluations and of chain evaluations (in units of the batch) per call.

    python benchmarks/automala_search.py [--space noise] [--checkpoint FILE --set KEY=VALUE ...]
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import torch

from common import benchmark_parser, machine, paired_ratio, write_section
from tkam.build import build_model
from tkam.config import load_config
from tkam.data import load_dataset
from tkam.losses.langevin import posterior_samples
from tkam.posterior.memory import StepSizeMemory
from tkam.train.checkpoint import load_checkpoint

AUTOMALA = importlib.import_module("tkam.posterior.automala")
RESTRICT = AUTOMALA.on_rows


def main() -> None:
    parser = benchmark_parser(__doc__)
    parser.add_argument("--space", choices=["latent", "noise"], default="noise")
    parser.add_argument("--checkpoint", help="a training checkpoint to load (else initial)")
    parser.add_argument("--set", action="append", default=[], help="config KEY=VALUE")
    args = parser.parse_args()
    pairs = 3 if args.quick else 7
    torch.set_num_threads(1)
    settings = ["posterior.sampler=automala", f"posterior.space={args.space}", *args.set]
    config = load_config("fmnist", settings)
    model = build_model(config, (1, 28, 28))
    if args.checkpoint:
        load_checkpoint(args.checkpoint, model)
    x = load_dataset(config.data).train[:100]

    counts: dict[str, list[int]] = {"batch": [], "chains": []}
    leapfrog = AUTOMALA._leapfrog

    def counting(start: Any, *rest: Any) -> Any:
        counts["batch"].append(1)
        counts["chains"].append(len(start.z))
        return leapfrog(start, *rest)

    def variant(restrict: bool) -> Any:
        memory = StepSizeMemory()
        calls = [0]

        def call() -> None:
            AUTOMALA.on_rows = RESTRICT if restrict else (lambda fn, rows: None)
            try:
                rng = torch.Generator().manual_seed(calls[0])
                posterior_samples(model, x, config.posterior, rng, memory)
            finally:
                AUTOMALA.on_rows = RESTRICT
                calls[0] += 1

        return call

    searching, batch = variant(True), variant(False)
    ratio, q1, q3, t_batch, t_searching = paired_ratio(batch, searching, pairs, warmup=2)
    evaluations = {}
    for name, fn in (("searching chains", searching), ("whole batch", batch)):
        counts["batch"].clear()
        counts["chains"].clear()
        AUTOMALA._leapfrog = counting
        try:
            fn()
        finally:
            AUTOMALA._leapfrog = leapfrog
        evaluations[name] = (len(counts["batch"]), sum(counts["chains"]) / len(x))
    print(f"automala_call_s searching={t_searching:.2f} batch={t_batch:.2f} ratio={ratio:.2f}")
    print(f"evaluations {evaluations}")
    if args.no_write:
        return
    extra = "".join(f" --set {item}" for item in args.set)
    command = f"python benchmarks/automala_search.py --space {args.space}"
    source = "the initial model"
    if args.checkpoint:
        path = Path(args.checkpoint)
        command += f" --checkpoint RUN/{path.parent.name}/{path.name}"
        source = f"RUN: the training run `{path.parents[1].name}`"
    rows = [
        f"| searching chains | {t_searching:.2f} | {evaluations['searching chains'][0]} | "
        f"{evaluations['searching chains'][1]:.0f} |",
        f"| whole batch | {t_batch:.2f} | {evaluations['whole batch'][0]} | "
        f"{evaluations['whole batch'][1]:.0f} |",
    ]
    body = "\n".join(
        [
            f"Machine: {machine()}. Command: `{command}{extra}` ({source}; chains on the"
            f" {args.space} space): one autoMALA posterior call of 25 iterations on 100 chains,"
            f" median of {pairs} paired calls after two warm-up pairs (the step sizes adapted).",
            "",
            "| trials evaluate | s per call | batched evaluations | chain evaluations (x 100) |",
            "|---|---|---|---|",
            *rows,
            "",
            f"Whole batch over searching chains: **{ratio:.2f}x** (quartiles {q1:.2f}-{q3:.2f}"
            " of the paired ratios). Both variants draw the same numbers: in float64 they end"
            " on the same chains (`tests/posterior/test_langevin.py::"
            "test_automala_search_evaluates_only_the_searching_chains`); in float32 a smaller"
            " batch rounds differently, which can flip a search's decision at its threshold, so"
            " the counts of batched evaluations may differ a little.",
        ]
    )
    write_section("autoMALA step-size search (fmnist, cpu)", body)


if __name__ == "__main__":
    main()
