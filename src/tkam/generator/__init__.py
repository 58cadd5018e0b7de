"""Generators (latent -> data) and their likelihoods."""

from __future__ import annotations

import torch
from torch import nn

from tkam.config import GeneratorConfig
from tkam.generator.cnn import CNNGenerator, cnn_output_size
from tkam.generator.kan import KANGenerator
from tkam.generator.likelihood import (
    BernoulliLikelihood,
    CategoricalLikelihood,
    GaussianLikelihood,
    output_activation,
)
from tkam.generator.mlp import MLPGenerator
from tkam.generator.sequence import SequenceGenerator

__all__ = [
    "BernoulliLikelihood",
    "CNNGenerator",
    "CategoricalLikelihood",
    "GaussianLikelihood",
    "KANGenerator",
    "MLPGenerator",
    "SequenceGenerator",
    "build_generator",
    "build_likelihood",
    "cnn_output_size",
    "output_activation",
]


def build_generator(
    config: GeneratorConfig,
    data_shape: tuple[int, ...],
    rng: torch.Generator | None = None,
) -> nn.Module:
    """The generator a config asks for, producing data of ``data_shape`` (without batch axis)."""
    if config.kind == "cnn":
        return CNNGenerator(config, data_shape, rng=rng)
    if config.kind == "sequence":
        return SequenceGenerator(config, data_shape, rng=rng)
    if config.kind == "mlp":
        return MLPGenerator(config, data_shape, rng=rng)
    return KANGenerator(config, data_shape, rng=rng)


def build_likelihood(
    config: GeneratorConfig, eps: float = 1e-4
) -> GaussianLikelihood | BernoulliLikelihood | CategoricalLikelihood:
    """Categorical for the sequence generator (maths 1.4), else ``config.likelihood``: Gaussian
    (maths 1.4) or Bernoulli."""
    if config.kind == "sequence":
        return CategoricalLikelihood(config.variance, config.noise, eps)
    if config.likelihood == "bernoulli":
        return BernoulliLikelihood(config.noise)
    return GaussianLikelihood(config.variance, config.noise, config.output_activation)
