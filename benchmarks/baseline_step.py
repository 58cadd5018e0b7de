"""One training step of T-KAM (importance sampling) against the VAE and latent-EBM baselines.

The ``mnist`` config (KAN generator 81-162-784) and one batch of B=100 images (Fashion-MNIST
from the Debian files; uniform noise if they are absent). One step = loss + backward + Adam via
``tkam.train.loop.train_step``: T-KAM's IS loss (N=100 prior samples), the VAE's negative ELBO
(mirrored MLP encoder 784 -> 162 -> 81), the latent EBM's Langevin loss (60 prior steps for the
posterior starts and 60 for the negatives, 20 posterior steps through the generator). All three
share the generator weights; median of repeats after warm-up, all in one process. Then a
profile of T-KAM's and the VAE's steps (``torch.profiler``, self time per operator, per step) shows
where T-KAM's remaining extra time goes.

    python benchmarks/baseline_step.py [--quick] [--device cpu|cuda] [--no-write]
"""

from __future__ import annotations

import datetime
from collections.abc import Callable

import torch

from common import benchmark_parser, machine, write_section
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


def profile(calls: dict[str, Callable[[], None]], steps: int) -> dict[str, dict[str, float]]:
    """Self CPU time per operator (and per ``record_function`` label), ms per step, per kind."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as run_profiler

    tables = {}
    for kind in ("tkam", "vae"):
        calls[kind]()
        with run_profiler(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(steps):
                calls[kind]()
        tables[kind] = {e.key: e.self_cpu_time_total / 1e3 / steps for e in prof.key_averages()}
    return tables


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
    repeats, rounds = (3, 1) if args.quick else (10, 5)
    calls, source = build_steps(device)
    times = interleaved_times(calls, repeats, rounds)
    tables = profile(calls, 5 if args.quick else 20)
    for kind in KINDS:
        print(f"{LABELS[kind]}: {times[kind][0] * 1e3:.1f} ms")
    tkam_vs_vae = times["tkam"][0] / times["vae"][0]
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
                " (median of rounds).",
                "",
                "| model | median (ms) | std (ms) | relative to T-KAM |",
                "|---|---|---|---|",
                *rows,
                "",
                f"Where the time goes (`torch.profiler`, self CPU time per step, ms, over"
                f" {5 if args.quick else 20} steps; the operators are sorted by T-KAM's time beyond"
                " the VAE's; `tkam::*` without `aten` are tkam's fused operators and kernels):",
                "",
                "| operator | T-KAM | VAE |",
                "|---|---|---|",
                *profile_rows(tables),
            ]
        )
        write_section(f"Training step: T-KAM vs baselines ({device.type})", body)
    print(f"train_step_tkam_vs_vae={tkam_vs_vae:.4g}")
    print(f"train_step_lebm_vs_tkam={lebm_vs_tkam:.4g}")
    for kind in KINDS:
        print(f"train_step_{kind}_s={times[kind][0]:.6g}")


if __name__ == "__main__":
    main()
