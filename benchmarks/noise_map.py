"""Chains on the prior's noise: the noise-to-latent map with the fused inversion's slopes, against
autograd through the reference inversion.

``UnivariatePrior.latents_from_noise`` (independent uniforms, CPU float32) inverts each component
with the fused kernel, which also returns the interval's slope, so the backward is one product.
The comparison is what it replaced: ``searchsorted`` and a lerp (``invert_batched``), with
autograd through them. Three timings, each as paired calls alternating in one process: the map
alone (forward and backward, 100 chains), one training update of the Langevin loss with ULA on
the noise (the packaged ``fmnist-langevin``: loss and backward), and one autoMALA posterior call
on the noise. Both variants compute the same latents (bit for bit) and the same gradients to
rounding (``tests/prior/test_priors.py``).

    python benchmarks/noise_map.py [--checkpoint FILE]
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor

from common import benchmark_parser, machine, paired_ratio, write_section
from tkam.build import build_model
from tkam.config import load_config
from tkam.data import load_dataset
from tkam.losses import compute_loss
from tkam.losses.langevin import posterior_samples
from tkam.posterior.memory import StepSizeMemory
from tkam.prior.inverse_transform import invert_batched
from tkam.prior.univariate import UnivariatePrior
from tkam.train.checkpoint import load_checkpoint

FUSED = UnivariatePrior.latents_from_noise
# The chains as first measured: standard normal starts and steps of 0.005 (the packaged config
# has since gained resampled starts, which add one decode of 100 proposals per update).
SETTINGS = ["posterior.init_samples=0", "posterior.step_size=0.005"]


def reference_map(prior: UnivariatePrior, noise: Tensor) -> Tensor:
    """The replaced code: ``searchsorted`` and a lerp, differentiated by autograd."""
    table = prior.sampling_table()
    cdf = table.cdf
    u = torch.special.ndtr(noise.to(cdf.dtype)).clamp(max=1.0 - torch.finfo(cdf.dtype).eps)
    z = invert_batched(table.knots[0].expand_as(cdf), cdf, u.permute(1, 2, 0))
    return z.permute(2, 0, 1)


def with_map(fn: Callable[[], object], fused: bool) -> Callable[[], None]:
    def call() -> None:
        UnivariatePrior.latents_from_noise = FUSED if fused else reference_map  # type: ignore[method-assign]
        try:
            fn()
        finally:
            UnivariatePrior.latents_from_noise = FUSED  # type: ignore[method-assign]

    return call


def main() -> None:
    parser = benchmark_parser(__doc__)
    parser.add_argument("--checkpoint", help="a training checkpoint of fmnist-langevin to load")
    args = parser.parse_args()
    pairs = 3 if args.quick else 7
    torch.set_num_threads(1)
    config = load_config("fmnist-langevin", SETTINGS)
    model = build_model(config, (1, 28, 28))
    if args.checkpoint:
        load_checkpoint(args.checkpoint, model)
    prior = model.prior
    assert isinstance(prior, UnivariatePrior) and prior.config.independent_uniforms
    x = load_dataset(config.data).train[:100]
    noise = torch.randn(100, *prior.noise_shape, generator=torch.Generator().manual_seed(0))

    def map_alone() -> None:
        leaf = noise.clone().requires_grad_(True)
        torch.autograd.grad(prior.latents_from_noise(leaf).sum(), leaf)

    def update() -> None:
        model.zero_grad(set_to_none=True)
        out = compute_loss(model, x, config, torch.Generator().manual_seed(1), step=2)
        out.loss.backward()

    automala = load_config("fmnist-langevin", [*SETTINGS, "posterior.sampler=automala"]).posterior
    memories = {True: StepSizeMemory(), False: StepSizeMemory()}

    def automala_call(fused: bool) -> Callable[[], None]:
        def call() -> None:
            rng = torch.Generator().manual_seed(2)
            posterior_samples(model, x, automala, rng, memories[fused])

        return call

    cases = [
        ("the map, forward and backward (100 chains)", map_alone, map_alone, 5 * pairs),
        ("one ULA training update (loss and backward)", update, update, pairs),
        (
            "one autoMALA posterior call (25 iterations)",
            automala_call(False),
            automala_call(True),
            5,
        ),
    ]
    rows = []
    for label, reference, fused, n in cases:
        ratio, q1, q3, t_ref, t_fused = paired_ratio(
            with_map(reference, False), with_map(fused, True), n, warmup=2
        )
        print(f"{label}: reference {t_ref:.4f} s, fused {t_fused:.4f} s, {ratio:.2f}x")
        rows.append(
            f"| {label} | {t_ref:.4f} | {t_fused:.4f} | **{ratio:.2f}x** ({q1:.2f}-{q3:.2f}) |"
        )
    if args.no_write:
        return
    command = "python benchmarks/noise_map.py"
    source = "the initial model"
    if args.checkpoint:
        path = Path(args.checkpoint)
        command += f" --checkpoint RUN/{path.parent.name}/{path.name}"
        source = f"RUN: the training run `{path.parents[1].name}`"
    body = "\n".join(
        [
            f"Machine: {machine()}. Command: `{command}` ({source}; the packaged"
            " `fmnist-langevin` with `posterior.init_samples=0 posterior.step_size=0.005`: ULA"
            " from standard normal starts on the prior's noise, independent uniforms, a batch of"
            " 100 Fashion-MNIST training images). Median seconds of paired calls in one process"
            f" after two warm-up pairs (the map: {5 * pairs} pairs; the update: {pairs};"
            " autoMALA: 5).",
            "",
            "| timed | autograd through searchsorted (s) | fused inversion with slopes (s) |"
            " reference / fused (quartiles) |",
            "|---|---|---|---|",
            *rows,
        ]
    )
    write_section("Chains on the noise: the noise-to-latent map (fmnist, cpu)", body)


if __name__ == "__main__":
    main()
