"""Generation speed: T-KAM against the VAE and latent-EBM baselines on the same generator.

Times drawing 1,000 samples (one batch) with ``model.sample``: T-KAM = inverse-transform prior
sampling (quadrature + inverse CDF) + generator; VAE = N(0, I) + generator; latent EBM (Pang et
al. 2020) = 60 prior Langevin steps of the energy MLP (Q -> 200 -> 200 -> 1) + generator. All
three models carry the very same generator weights. Two generators: the ``mnist`` config's KAN
generator 81-162-784 and the ``svhn-head`` config's CNN (81 -> 128 -> 64 -> 32 -> 3, 32x32).
Median of repeats after warm-up, all in one process. Goals: T-KAM within 1.1x of the VAE and at
least 20x faster than the latent EBM.

    python benchmarks/generation.py [--quick] [--device cpu|cuda] [--no-write]
"""

from __future__ import annotations

import datetime
import statistics
from collections.abc import Callable

import torch

from common import benchmark_parser, machine, median_time, write_section
from tkam.config import load_config
from tkam.train.loop import build_model

NUM_SAMPLES = 1000
SETTINGS = {
    "mnist (KAN generator 81-162-784)": ("mnist", (1, 28, 28)),
    "svhn-head (CNN generator, 32x32x3)": ("svhn-head", (3, 32, 32)),
}
KINDS = ("tkam", "vae", "lebm")


def interleaved_times(
    calls: dict[str, Callable[[], object]], repeats: int, rounds: int, warmup: int = 2
) -> dict[str, tuple[float, float]]:
    """Median and std (s) per call, measured in ``rounds`` alternating rounds of ``repeats``.

    Alternating the contenders spreads the load of other processes on shared cores over all of
    them, so their ratio stays meaningful; the figure is the median of the round medians.
    """
    medians: dict[str, list[float]] = {name: [] for name in calls}
    stds: dict[str, list[float]] = {name: [] for name in calls}
    for r in range(rounds):
        for name, fn in calls.items():
            median, std = median_time(fn, repeats, warmup=warmup if r == 0 else 0)
            medians[name].append(median)
            stds[name].append(std)
    return {n: (statistics.median(medians[n]), statistics.median(stds[n])) for n in calls}


def models(name: str, shape: tuple[int, ...], device: torch.device) -> dict[str, torch.nn.Module]:
    """T-KAM, VAE and latent EBM of one config, all with T-KAM's generator weights."""
    built = {}
    for kind in KINDS:
        config = load_config(name, [f"model.kind={kind}"])
        built[kind] = build_model(config, shape).to(device).eval()
    weights = built["tkam"].generator.state_dict()
    for kind in KINDS[1:]:
        built[kind].generator.load_state_dict(weights)
    return built


def measure(
    name: str, shape: tuple[int, ...], device: torch.device, repeats: int, rounds: int
) -> dict[str, tuple[float, float]]:
    calls = {}
    for kind, model in models(name, shape, device).items():
        generator = torch.Generator(device=device).manual_seed(0)

        def draw(model=model, generator=generator) -> None:
            model.sample(NUM_SAMPLES, generator, batch_size=NUM_SAMPLES)

        calls[kind] = draw
    return interleaved_times(calls, repeats, rounds)


def main() -> None:
    parser = benchmark_parser(__doc__)
    args = parser.parse_args()
    device = torch.device(args.device)
    repeats, rounds = (3, 1) if args.quick else (5, 3)
    rows, ratios = [], {}
    for label, (name, shape) in SETTINGS.items():
        t = measure(name, shape, device, repeats, rounds)
        tkam_vs_vae = t["tkam"][0] / t["vae"][0]
        lebm_vs_tkam = t["lebm"][0] / t["tkam"][0]
        ratios[name] = (tkam_vs_vae, lebm_vs_tkam, t)
        cells = " | ".join(f"{t[k][0] * 1e3:.1f} ± {t[k][1] * 1e3:.1f}" for k in KINDS)
        rows.append(f"| {label} | {cells} | {tkam_vs_vae:.2f} | {lebm_vs_tkam:.1f} |")
        print(f"{label}: " + ", ".join(f"{k} {t[k][0] * 1e3:.1f} ms" for k in KINDS))
    if not args.no_write:
        body = "\n".join(
            [
                f"Measured {datetime.date.today()} on {machine()}.",
                f"Command: `python benchmarks/generation.py{' --quick' if args.quick else ''}`"
                f" (device {device}). {NUM_SAMPLES} samples in one batch; median ± std of"
                f" {repeats} draws after warm-up, the models alternating in {rounds} rounds"
                " (median of rounds); the three models share the generator weights."
                " Goals: T-KAM/VAE <= 1.1, latent EBM/T-KAM >= 20.",
                "",
                "| generator | T-KAM (ms) | VAE (ms) | latent EBM, 60 Langevin steps (ms) |"
                " T-KAM / VAE | latent EBM / T-KAM |",
                "|---|---|---|---|---|---|",
                *rows,
            ]
        )
        write_section(f"Generation: T-KAM vs baselines ({device.type})", body)
    headline, cnn_name = "mnist", "svhn-head"
    print(f"generation_tkam_vs_vae={ratios[headline][0]:.4g}")
    print(f"generation_lebm_vs_tkam={ratios[headline][1]:.4g}")
    print(f"generation_tkam_vs_vae_cnn={ratios[cnn_name][0]:.4g}")
    print(f"generation_lebm_vs_tkam_cnn={ratios[cnn_name][1]:.4g}")
    for name, (_, _, t) in ratios.items():
        key = name.replace("-", "_")
        for kind in KINDS:
            print(f"generation_{key}_{kind}_s={t[kind][0]:.6g}")


if __name__ == "__main__":
    main()
