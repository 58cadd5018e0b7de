"""One training step of T-KAM (importance sampling) against the VAE and latent-EBM baselines.

The ``mnist`` config (KAN generator 81-162-784) and one batch of B=100 images (Fashion-MNIST
from the Debian files; uniform noise if they are absent). One step = loss + backward + Adam via
``tkam.train.loop.train_step``: T-KAM's IS loss (N=100 prior samples), the VAE's negative ELBO
(mirrored MLP encoder 784 -> 162 -> 81), the latent EBM's Langevin loss (60 prior steps for the
posterior starts and 60 for the negatives, 20 posterior steps through the generator). All three
share the generator weights; median of repeats after warm-up, all in one process. The headline
ratio, T-KAM over the VAE, is the median of per-pair ratios of single steps run back to back. Then
a profile of T-KAM's and the VAE's steps (``torch.profiler``, self time per operator, per step)
shows where T-KAM's remaining extra time goes.

    python benchmarks/baseline_step.py [--quick] [--device cpu|cuda] [--no-write]
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable

import torch

from common import benchmark_parser, machine, paired_ratio, write_section
from generation import interleaved_times
from tkam.build import build_model
from tkam.config import load_config
from tkam.train.loop import make_optimizer, train_step
from train_step import batch_of_data

KINDS = ("tkam", "vae", "lebm")
LABELS = {
    "tkam": "T-KAM, importance sampling (N=100)",
    "vae": "VAE, reparameterised ELBO",
    "lebm": "latent EBM, 60 + 20 Langevin steps",
}


def build_steps(device: torch.device) -> tuple[dict[str, Callable[[], None]], str]:
    """One training-step call per kind, all with T-KAM's generator weights, past step 1."""
    overrides = ["data.name=fmnist", "data.num_train=1000"]
    configs = {k: load_config("mnist", [*overrides, f"model.kind={k}"]) for k in KINDS}
    x, source = batch_of_data(configs["tkam"], device)
    shape = tuple(x.shape[1:])
    models = {k: build_model(c, shape).to(device) for k, c in configs.items()}
    weights = models["tkam"].generator.state_dict()
    calls = {}
    for kind in KINDS:
        model, config = models[kind], configs[kind]
        model.generator.load_state_dict(weights)
        optimizer = make_optimizer(model, config.train.learning_rate)
        rng = torch.Generator(device=device).manual_seed(0)
        model.update_grids(model.prior.sample(config.grid_update.num_samples, rng))

        def step(model=model, optimizer=optimizer, config=config, rng=rng) -> None:
            train_step(model, optimizer, x, config, rng, 20)

        calls[kind] = step
    return calls, source


MATMULS = ("aten::mm", "aten::bmm", "aten::addmm")


def profile(
    calls: dict[str, Callable[[], None]], steps: int
) -> tuple[dict[str, dict[str, float]], dict[str, dict[tuple[str, str], tuple[float, float]]]]:
    """Self CPU time per operator (and per ``record_function`` label), ms per step, per kind;
    and every matmul by its operand shapes: ``(op, shapes) -> (calls, ms)`` per step."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as run_profiler

    tables, matmuls = {}, {}
    for kind in ("tkam", "vae"):
        calls[kind]()
        with run_profiler(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
            for _ in range(steps):
                calls[kind]()
        tables[kind] = {e.key: e.self_cpu_time_total / 1e3 / steps for e in prof.key_averages()}
        matmuls[kind] = {
            (e.key, " @ ".join("x".join(map(str, s)) for s in e.input_shapes if len(s) > 1)): (
                e.count / steps,
                e.self_cpu_time_total / 1e3 / steps,
            )
            for e in prof.key_averages(group_by_input_shape=True)
            if e.key in MATMULS
        }
    return tables, matmuls


def merge_varying(table: dict[tuple[str, str], tuple[float, float]]) -> dict:
    """Matmuls whose shapes differ in one dimension only (the rows in use of the active-row
    backward, which vary from step to step) merged into one entry, that dimension shown as
    ``k`` with its mean over the calls; three or more shapes make such a family."""
    entries = {
        key: ([int(n) for n in re.findall(r"\d+", key[1])], calls, ms)
        for key, (calls, ms) in table.items()
    }
    merged: dict[tuple[str, str], tuple[float, float]] = {}
    done: set[tuple[str, str]] = set()
    # A family: the same operator and shapes but for one value, k, wherever it appears.
    families: dict[tuple, list[tuple[tuple[str, str], int]]] = {}
    for key, (numbers, _, _) in entries.items():
        for value in set(numbers):
            rest = tuple(None if n == value else n for n in numbers)
            families.setdefault((key[0], re.sub(r"\d+", "#", key[1]), rest), []).append(
                (key, value)
            )
    for (op, pattern, rest), members in sorted(families.items(), key=lambda f: -len(f[1])):
        members = [(key, value) for key, value in members if key not in done]
        if len(members) < 3:
            continue
        calls = sum(entries[key][1] for key, _ in members)
        mean = sum(value * entries[key][1] for key, value in members) / calls
        parts = [str(n) if n is not None else "k" for n in rest]
        shapes = pattern.replace("#", "{}").format(*parts)
        merged[(op, f"{shapes}, k = {mean:.0f} on average")] = (
            calls,
            sum(entries[key][2] for key, _ in members),
        )
        done.update(key for key, _ in members)
    for key, (_, calls, ms) in entries.items():
        if key not in done:
            merged[key] = (calls, ms)
    return merged


def matmul_rows(matmuls: dict[str, dict[tuple[str, str], tuple[float, float]]]) -> list[str]:
    """Markdown rows: every matmul of either step by operand shapes, with calls and ms per step
    (the shapes name the operands; a row's calls may be fractional where the shapes vary)."""
    matmuls = {kind: merge_varying(table) for kind, table in matmuls.items()}
    keys = sorted(
        set(matmuls["tkam"]) | set(matmuls["vae"]),
        key=lambda k: -max(matmuls["tkam"].get(k, (0, 0))[1], matmuls["vae"].get(k, (0, 0))[1]),
    )
    rows = []
    for op, shapes in keys:
        t_calls, t_ms = matmuls["tkam"].get((op, shapes), (0.0, 0.0))
        v_calls, v_ms = matmuls["vae"].get((op, shapes), (0.0, 0.0))
        if max(t_ms, v_ms) < 0.02:
            continue
        rows.append(
            f"| `{op}` {shapes} | {t_calls:.2g} | {t_ms:.2f} | {v_calls:.2g} | {v_ms:.2f} |"
        )
    total = {k: sum(ms for _, ms in matmuls[k].values()) for k in ("tkam", "vae")}
    rows.append(f"| all matmuls | | {total['tkam']:.2f} | | {total['vae']:.2f} |")
    return rows


def profile_rows(tables: dict[str, dict[str, float]], top: int = 14) -> list[str]:
    """Markdown rows: the operators where T-KAM spends most beyond the VAE, then the totals."""
    tkam, vae = tables["tkam"], tables["vae"]
    names = sorted(tkam, key=lambda k: tkam[k] - vae.get(k, 0.0), reverse=True)[:top]
    rows = [f"| `{n}` | {tkam[n]:.2f} | {vae.get(n, 0.0):.2f} |" for n in names]
    rest_t = sum(v for k, v in tkam.items() if k not in names)
    rest_v = sum(v for k, v in vae.items() if k not in names)
    rows.append(f"| everything else | {rest_t:.2f} | {rest_v:.2f} |")
    rows.append(f"| total (profiled, with the profiler's overhead) | {sum(tkam.values()):.2f} |"
                f" {sum(vae.values()):.2f} |")  # fmt: skip
    return rows


def main() -> None:
    parser = benchmark_parser(__doc__)
    args = parser.parse_args()
    device = torch.device(args.device)
    # The VAE's short steps vary most with what ran before them: many alternating rounds.
    repeats, rounds = (3, 1) if args.quick else (10, 6)
    calls, source = build_steps(device)
    times = interleaved_times(calls, repeats, rounds)
    # The headline ratio: single T-KAM and VAE steps back to back, many pairs.
    pairs = 10 if args.quick else 150
    tkam_vs_vae, q1, q3, pair_tkam, pair_vae = paired_ratio(calls["tkam"], calls["vae"], pairs)
    tables, matmuls = profile(calls, 5 if args.quick else 20)
    for kind in KINDS:
        print(f"{LABELS[kind]}: {times[kind][0] * 1e3:.1f} ms")
    print(f"paired: T-KAM {pair_tkam * 1e3:.1f} ms, VAE {pair_vae * 1e3:.1f} ms, ratio quartiles"
          f" {q1:.3f} - {q3:.3f}")  # fmt: skip
    lebm_vs_tkam = times["lebm"][0] / times["tkam"][0]
    if not args.no_write:
        rows = [
            f"| {LABELS[k]} | {times[k][0] * 1e3:.1f} | {times[k][1] * 1e3:.1f} |"
            f" {times[k][0] / times['tkam'][0]:.2f} |"
            for k in KINDS
        ]
        body = "\n".join(
            [
                f"Measured {datetime.date.today()} on {machine()}.",
                f"Command: `python benchmarks/baseline_step.py{' --quick' if args.quick else ''}`"
                f" (device {device}). mnist config, KAN generator 81-162-784 shared by all,"
                f" B=100, data: {source}; one step = loss + backward + Adam; median of"
                f" {repeats} steps after warm-up, the models alternating in {rounds} rounds"
                " (median of rounds), each round starting one model later, its first call untimed.",
                "",
                "| model | median (ms) | std (ms) | relative to T-KAM |",
                "|---|---|---|---|",
                *rows,
                "",
                f"T-KAM / VAE, the headline ratio (`train_step_tkam_vs_vae`): **{tkam_vs_vae:.3f}**,"
                f" the median of {pairs} per-pair ratios of single steps run back to back (order"
                f" alternating; quartiles {q1:.3f} - {q3:.3f}; medians {pair_tkam * 1e3:.1f} and"
                f" {pair_vae * 1e3:.1f} ms). A pair runs within a few tens of milliseconds, so"
                " the drift of this machine's speed over seconds, which moves the round medians"
                " above by up to 20%, cancels in each ratio.",
                "",
                f"Where the time goes (`torch.profiler`, self CPU time per step, ms, over"
                f" {5 if args.quick else 20} steps; the operators are sorted by T-KAM's time beyond"
                " the VAE's; `tkam::*` without `aten` are tkam's fused operators and kernels):",
                "",
                "| operator | T-KAM | VAE |",
                "|---|---|---|",
                *profile_rows(tables),
                "",
                "Every matmul of the two steps by operand shapes (self CPU time, ms per step; the"
                " generator's 3564 = 162 x 22 and 1782 = 81 x 22 are its layers' basis features;"
                " T-KAM's weight and input gradients of the generator run on the proposals in"
                " use only, `tkam.kan.ops.ActiveRowsMatmul`, so their row count varies):",
                "",
                "| matmul (operands) | T-KAM calls | T-KAM ms | VAE calls | VAE ms |",
                "|---|---|---|---|---|",
                *matmul_rows(matmuls),
            ]
        )
        write_section(f"Training step: T-KAM vs baselines ({device.type})", body)
    print(f"train_step_tkam_vs_vae={tkam_vs_vae:.4g}")
    print(f"train_step_lebm_vs_tkam={lebm_vs_tkam:.4g}")
    for kind in KINDS:
        print(f"train_step_{kind}_s={times[kind][0]:.6g}")


if __name__ == "__main__":
    main()
