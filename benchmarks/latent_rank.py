"""How many directions the generator's inputs use: principal components of h for trained runs.

A univariate T-KAM prior draws one uniform per input p and shares it over the Q outer components
(departures A25), so the generator's inputs ``h_q = sum_p z_qp`` span more than one direction only
as far as the learned components ``f_qp`` differ over q. This script samples the prior of each run
folder, takes the principal components of ``h`` (``S x Q``) and prints the variance share of the
leading ones and how many components hold 99% of the variance, for the trained model and for a
freshly initialised one of the same config.

    python benchmarks/latent_rank.py runs/reference/uniform_RBF runs/reference/gaussian_RBF
"""

from __future__ import annotations

import argparse

import torch

from tkam.build import build_model
from tkam.runs import load_run


def variance_shares(model, num_samples: int, seed: int) -> torch.Tensor:
    """Shares of the variance of the generator inputs along their principal directions."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        h = model.prior.generator_input(model.prior.sample(num_samples, generator))
    singular = torch.linalg.svdvals(h - h.mean(dim=0))
    return singular.square() / singular.square().sum()


def describe(label: str, shares: torch.Tensor) -> str:
    needed = int((shares.cumsum(0) < 0.99).sum()) + 1
    leading = ", ".join(f"{float(s):.4f}" for s in shares[:4])
    return f"{label}: leading shares {leading}; components for 99%: {needed} of {len(shares)}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="run folders written by tkam train")
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for run in args.runs:
        config, model = load_run(run)
        fresh = build_model(config, tuple(model.image_shape)).eval()
        print(run)
        print("  " + describe("trained", variance_shares(model, args.samples, args.seed)))
        print("  " + describe("at initialisation", variance_shares(fresh, args.samples, args.seed)))


if __name__ == "__main__":
    main()
