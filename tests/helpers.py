"""Small configs shared by the model, loss, training and CLI tests."""

from __future__ import annotations

import pytest
import torch

from tkam.config import config_from_dict
from tkam.kan.native import native_applies

#: Skips a test where the fused CPU kernels do not run (no C++ compiler, or ``TKAM_NATIVE=0``), by
#: the rule that the layers and the prior follow.
requires_native = pytest.mark.skipif(
    not native_applies(torch.empty(0)),
    reason="the fused CPU kernels do not run here (no C++ compiler, or TKAM_NATIVE=0)",
)


def tiny_config(**sections):
    """A model small enough to train in seconds: P=3 -> Q=7, generator 7 -> 16 -> 64 (8x8)."""
    data = {
        "prior": {
            "widths": [3, 7],
            "basis": "rbf",
            "grid_size": 6,
            "reference": "gaussian",
            "num_nodes": 40,
        },
        "generator": {"widths": [7, 16], "basis": "rbf", "grid_size": 6},
        "grid_update": {"frequency": 5, "decay": 0.99, "num_samples": 20},
        "train": {
            "batch_size": 20,
            "importance_samples": 16,
            "epochs": 1,
            "max_steps": 8,
            "log_every": 4,
            "num_plot_samples": 16,
        },
        "data": {"name": "digits", "num_train": 200, "num_test": 20},
    }
    for section, values in sections.items():
        data.setdefault(section, {}).update(values)
    return config_from_dict(data, "tiny")


#: The item shapes of the packaged configs' image and field data sets (ptb's comes from its data
#: section).
PACKAGED_SHAPES = {
    "digits": (1, 8, 8),
    "mnist": (1, 28, 28),
    "fmnist": (1, 28, 28),
    "darcy": (1, 32, 32),
    "svhn": (3, 32, 32),
    "cifar10": (3, 32, 32),
    "celeba": (3, 64, 64),
}


def quick_evaluation(cache, **changes):  # noqa: ANN001, ANN003, ANN201 - Path; options
    """Evaluation options small enough for a test: 20 generated images, 10 importance samples,
    an autoencoder feature network of 2 training steps cached in ``cache``, 5 KID subsets."""
    from tkam.metrics import AutoencoderRecipe, EvaluationOptions

    options = {
        "feature_cache": cache,
        "feature_recipe": AutoencoderRecipe(steps=2),
        "kid_num_subsets": 5,
        **changes,
    }
    return EvaluationOptions(20, 10, **options)
