"""Generation speed: T-KAM against the VAE and latent-EBM baselines on the same generator.

Times drawing 1,000 samples (one batch) with ``model.sample``: T-KAM = inverse-transform prior
sampling (quadrature + inverse CDF) + generator; VAE = N(0, I) + generator; latent EBM (Pang et
al. 2020) = 60 prior Langevin steps of the energy MLP (Q -> 200 -> 200 -> 1) + generator. All
three models carry the very same generator weights. Two generators: the ``mnist`` config's KAN
generator 81-162-784 and the ``svhn-head`` config's CNN (81 -> 128 -> 64 -> 32 -> 3, 32x32).
T-KAM is timed twice: with its quadrature table recomputed for every draw (the cost right after a
parameter change; the headline ratio) and with the table the prior keeps while its parameters
are unchanged (repeated generation from a trained model). The priors alone are timed too: the
latent EBM's 60-step Langevin prior against T-KAM's inverse transform, quadrature included.
Median of repeats after warm-up, all in one process; the headline T-KAM / VAE ratio (KAN
generator) is the median of per-pair ratios of single draws run back to back. Goals: T-KAM
within 1.1x of the VAE (acceptance 1.3x) and a prior at least 20x faster than the latent EBM's
(acceptance 10x).

    python benchmarks/generation.py [--quick] [--device cpu|cuda] [--no-write]
"""

from __future__ import annotations

import datetime
import statistics
from collections.abc import Callable

import torch

from common import benchmark_parser, machine, median_time, paired_ratio, write_section
from tkam.build import build_model
from tkam.config import load_config

NUM_SAMPLES = 1000
SETTINGS = {
    "mnist (KAN generator 81-162-784)": ("mnist", (1, 28, 28)),
    "svhn-head (CNN generator, 32x32x3)": ("svhn-head", (3, 32, 32)),
}
KINDS = ("tkam", "vae", "lebm")
COLUMNS = ("tkam_quadrature", "tkam", "vae", "lebm", "tkam_prior", "lebm_prior")


def interleaved_times(
    calls: dict[str, Callable[[], object]], repeats: int, rounds: int, warmup: int = 2
) -> dict[str, tuple[float, float]]:
    """Median and std (s) per call, measured in ``rounds`` alternating rounds of ``repeats``.

    Alternating the contenders spreads the load of other processes on shared cores over all of
    them, so their ratio stays meaningful; the figure is the median of the round medians. Each
    round starts one contender later in the order, and every contender's first call of a round
    is untimed (``warmup`` calls in the first round): the state another contender leaves (caches,
    thread pools, the clock of a core after wide vector code) lands on no single contender.
    """
    medians: dict[str, list[float]] = {name: [] for name in calls}
    stds: dict[str, list[float]] = {name: [] for name in calls}
    names = list(calls)
    for r in range(rounds):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            median, std = median_time(calls[name], repeats, warmup=warmup if r == 0 else 1)
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
    name: str,
    shape: tuple[int, ...],
    device: torch.device,
    repeats: int,
    rounds: int,
    pairs: int = 0,
) -> dict[str, tuple[float, ...]]:
    """Times of: each model's ``sample`` (T-KAM with its table kept, ``tkam``, and recomputed,
    ``tkam_quadrature``) and the two energy-based priors alone (``*_prior``); with ``pairs``,
    also ``paired``: the median and quartiles of T-KAM's (table recomputed) over the VAE's time
    in that many back-to-back pairs of single draws."""
    calls = {}
    built = models(name, shape, device)
    for kind, model in built.items():
        rng = torch.Generator(device=device).manual_seed(0)

        def draw(model=model, rng=rng) -> None:
            model.sample(NUM_SAMPLES, rng, batch_size=NUM_SAMPLES)

        calls[kind] = draw
    tkam, lebm = built["tkam"], built["lebm"]
    rng = torch.Generator(device=device).manual_seed(0)

    def draw_with_quadrature() -> None:
        tkam.prior.forget_quadrature()
        tkam.sample(NUM_SAMPLES, rng, batch_size=NUM_SAMPLES)

    def tkam_prior() -> None:
        tkam.prior.forget_quadrature()
        tkam.prior.sample(NUM_SAMPLES, rng)

    calls["tkam_quadrature"] = draw_with_quadrature
    calls["tkam_prior"] = tkam_prior
    calls["lebm_prior"] = lambda: lebm.prior.sample(NUM_SAMPLES, rng)
    with torch.no_grad():
        times = interleaved_times(calls, repeats, rounds)
        if pairs:
            median, q1, q3, *_ = paired_ratio(draw_with_quadrature, calls["vae"], pairs)
            times["paired"] = (median, q1, q3)
        return times


def main() -> None:
    parser = benchmark_parser(__doc__)
    args = parser.parse_args()
    device = torch.device(args.device)
    repeats, rounds = (3, 1) if args.quick else (5, 6)
    rows, ratios = [], {}
    pairs = 10 if args.quick else 100
    for label, (name, shape) in SETTINGS.items():
        headline = name == "mnist"
        t = measure(name, shape, device, repeats, rounds, pairs if headline else 0)
        tkam_vs_vae = t["paired"][0] if headline else t["tkam_quadrature"][0] / t["vae"][0]
        cached_vs_vae = t["tkam"][0] / t["vae"][0]
        lebm_vs_tkam = t["lebm"][0] / t["tkam_quadrature"][0]
        prior_ratio = t["lebm_prior"][0] / t["tkam_prior"][0]
        ratios[name] = (tkam_vs_vae, lebm_vs_tkam, cached_vs_vae, prior_ratio, t)
        cells = " | ".join(f"{t[k][0] * 1e3:.1f} ± {t[k][1] * 1e3:.1f}" for k in COLUMNS)
        rows.append(
            f"| {label} | {cells} | {tkam_vs_vae:.2f} | {cached_vs_vae:.2f} |"
            f" {lebm_vs_tkam:.1f} | {prior_ratio:.1f} |"
        )
        print(f"{label}: " + ", ".join(f"{k} {t[k][0] * 1e3:.1f} ms" for k in COLUMNS))
        if headline:
            print(f"paired T-KAM / VAE: median {t['paired'][0]:.3f}, quartiles"
                  f" {t['paired'][1]:.3f} - {t['paired'][2]:.3f}")  # fmt: skip
    if not args.no_write:
        body = "\n".join(
            [
                f"Measured {datetime.date.today()} on {machine()}.",
                f"Command: `python benchmarks/generation.py{' --quick' if args.quick else ''}`"
                f" (device {device}). {NUM_SAMPLES} samples in one batch; median ± std of"
                f" {repeats} draws after warm-up, the calls alternating in {rounds} rounds"
                " (median of rounds), each round starting one call later, its first call untimed; the three models share the generator weights. T-KAM with"
                " its quadrature recomputed for every draw, and with the table it keeps while"
                " its parameters do not change; the priors alone: T-KAM's inverse transform"
                " (quadrature included) and the latent EBM's 60 Langevin steps. Goals: T-KAM/VAE"
                " <= 1.1 (acceptance 1.3), latent-EBM prior / T-KAM prior >= 20 (acceptance 10)."
                f" The mnist row's T-KAM / VAE (`generation_tkam_vs_vae`) is the median of {pairs}"
                " per-pair ratios of single draws run back to back, order alternating (quartiles"
                f" {ratios['mnist'][4]['paired'][1]:.3f} - {ratios['mnist'][4]['paired'][2]:.3f}):"
                " the drift of this machine's speed over seconds cancels in each ratio; the"
                " other ratios are of the round medians.",
                "",
                "| generator | T-KAM (ms) | T-KAM, table kept (ms) | VAE (ms) |"
                " latent EBM (ms) | T-KAM prior (ms) | latent-EBM prior (ms) | T-KAM / VAE |"
                " T-KAM (table kept) / VAE | latent EBM / T-KAM | EBM prior / T-KAM prior |",
                "|---|---|---|---|---|---|---|---|---|---|---|",
                *rows,
            ]
        )
        write_section(f"Generation: T-KAM vs baselines ({device.type})", body)
    headline, cnn_name = "mnist", "svhn-head"
    print(f"generation_tkam_vs_vae={ratios[headline][0]:.4g}")
    print(f"generation_tkam_vs_vae_table_kept={ratios[headline][2]:.4g}")
    print(f"generation_lebm_vs_tkam={ratios[headline][1]:.4g}")
    print(f"prior_lebm_vs_tkam={ratios[headline][3]:.4g}")
    print(f"generation_tkam_vs_vae_cnn={ratios[cnn_name][0]:.4g}")
    print(f"generation_lebm_vs_tkam_cnn={ratios[cnn_name][1]:.4g}")
    print(f"prior_lebm_vs_tkam_cnn={ratios[cnn_name][3]:.4g}")
    for name, (*_, t) in ratios.items():
        key = name.replace("-", "_")
        for kind in COLUMNS:
            print(f"generation_{key}_{kind}_s={t[kind][0]:.6g}")


if __name__ == "__main__":
    main()
