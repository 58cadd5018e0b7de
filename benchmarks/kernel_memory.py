"""Peak memory of the univariate prior's log-density, forward + backward: fused against eager.

The ``mnist`` prior (P=40 -> Q=81, RBF with 21 bases, SiLU base branch) at S=1,000 latents:
``log_prior(z)`` summed and differentiated into every parameter and into ``z`` (what a Langevin
score needs). The eager code materialises the ``(S, Q, P, M)`` basis tensor (68 million values)
forward and again for its backward; the fused kernels hold only inputs, outputs and parameters.
Also the training losses' path: the weighted sum over latents that computes its value and
parameter gradients in one pass. Each figure is the high-water mark of the resident set above
the process's baseline, measured in a fresh subprocess after a one-latent warm-up. Goal: fused
at most 1/5 of eager.

    python benchmarks/kernel_memory.py [--quick] [--no-write]
"""

from __future__ import annotations

import datetime

import torch

from common import (
    benchmark_parser,
    machine,
    peak_in_subprocess,
    report_peak,
    reset_peak,
    write_section,
)
from tkam.config import load_config
from tkam.prior import build_prior

NUM_LATENTS = 1000
CASES = {
    "log_prior(z), backward into parameters and z": "log_prior",
    "weighted log-prior (the losses' prior term), value + parameter gradients": "weighted",
}


def peak_child(kernel: str, case: str, num: int) -> None:
    """In a fresh process: KiB one evaluation adds to the resident set at its peak."""
    torch.manual_seed(0)
    config = load_config("mnist", [f"prior.kernel={kernel}"])
    prior = build_prior(config.prior, rng=torch.Generator().manual_seed(0))

    def run(z: torch.Tensor) -> None:
        prior.zero_grad(set_to_none=True)
        if case == "weighted":
            prior.weighted_log_prior(z, torch.full((len(z),), 1.0 / len(z))).backward()
        else:
            z = z.clone().requires_grad_()
            prior.log_prior(z).sum().backward()

    z = prior.sample(num, torch.Generator().manual_seed(1))
    run(z[:1])
    before = reset_peak()
    run(z)
    report_peak(before)


def main() -> None:
    args = benchmark_parser(__doc__).parse_args()
    rows, ratios = [], {}
    for label, case in CASES.items():
        peaks = {k: peak_in_subprocess("kernel_memory", "peak_child", k, case, NUM_LATENTS)
                 for k in ("fused", "eager")}  # fmt: skip
        ratios[case] = peaks["fused"] / peaks["eager"]
        rows.append(
            f"| {label} | {peaks['fused']:.1f} | {peaks['eager']:.1f} | {ratios[case]:.3f} |"
        )
        print(rows[-1], flush=True)
    if not args.no_write:
        body = "\n".join(
            [
                f"Measured {datetime.date.today()} on {machine()}.",
                "Command: `python benchmarks/kernel_memory.py`. The `mnist` prior (P=40 -> Q=81,"
                f" RBF, 21 bases) at S={NUM_LATENTS:,} latents; peak resident memory one call"
                " adds above the process's baseline, each in a fresh subprocess. Goal: fused <="
                " 1/5 of eager.",
                "",
                "| evaluation | fused (MiB) | eager (MiB) | fused / eager |",
                "|---|---|---|---|",
                *rows,
            ]
        )
        write_section("Prior log-density memory: fused against eager (cpu)", body)
    print(f"kernel_memory_fused_vs_eager={ratios['log_prior']:.4g}")
    print(f"kernel_memory_weighted_fused_vs_eager={ratios['weighted']:.4g}")


if __name__ == "__main__":
    main()
