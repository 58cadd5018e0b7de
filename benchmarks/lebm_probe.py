"""Where a trained latent EBM's prior and posterior latents lie, and what its samples cover.

For each run folder: the norm and per-coordinate spread of 1,000 short-run prior samples and of
posterior samples for 500 held-out images (the training sampler: short-run Langevin from prior
samples), the energy ``E(z)`` at both, the reconstruction error of the posterior latents, and the
class entropy of 1,000 generated images and of the posterior reconstructions (the project's
classifier). A prior that has not learned the aggregate posterior shows prior and posterior
latents of different norms and energies; collapsed samples show a low class entropy and a small
pixel spread across samples.

    python benchmarks/lebm_probe.py RUN [RUN ...]
"""

from __future__ import annotations

import argparse

import torch

from tkam.data import load_dataset, training_labels
from tkam.losses import posterior_samples, posterior_settings
from tkam.metrics.features import class_entropy, classifier_features
from tkam.runs import load_run


def probe(run: str) -> dict[str, float]:
    config, model = load_run(run)
    data = load_dataset(config.data)
    rng = torch.Generator().manual_seed(0)
    x = data.test[:500]
    prior = model.prior.sample(1000, rng)
    posterior = posterior_samples(model, x, posterior_settings(config), rng)
    labels = torch.as_tensor(training_labels(config.data, data.train.shape[0]))
    network = classifier_features(data.name, data.train, labels, log=None)
    with torch.no_grad():
        reconstruction = model.likelihood.mean(model.decode(posterior))
        images = model.sample(1000, rng).clamp(0, 1)
        return {
            "prior |z|": float(prior.norm(dim=1).mean()),
            "posterior |z|": float(posterior.norm(dim=1).mean()),
            "prior sd": float(prior.std(0).mean()),
            "posterior sd": float(posterior.std(0).mean()),
            "E(prior)": float(model.prior.energy(prior).mean()),
            "E(posterior)": float(model.prior.energy(posterior).mean()),
            "recon. MSE": float((reconstruction - x).square().mean()),
            "sample entropy": class_entropy(network.classify(images), 10)[0],
            "recon. entropy": class_entropy(network.classify(reconstruction), 10)[0],
            "sample pixel sd": float(images.std(0).mean()),
            "data pixel sd": float(data.test[:1000].std(0).mean()),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="latent-EBM run folders")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = [(run, probe(run)) for run in args.runs]
    keys = list(rows[0][1])
    print("| run | " + " | ".join(keys) + " |")
    print("|---|" + "---|" * len(keys))
    for run, values in rows:
        print(f"| {run} | " + " | ".join(f"{values[k]:.3g}" for k in keys) + " |")


if __name__ == "__main__":
    main()
