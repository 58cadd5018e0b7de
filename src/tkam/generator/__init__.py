"""Generators (latent -> data) and their likelihoods."""

from tkam.generator.kan import KANGenerator
from tkam.generator.likelihood import GaussianLikelihood, output_activation

__all__ = ["KANGenerator", "GaussianLikelihood", "output_activation", "build_generator"]


def build_generator(config, image_shape, generator=None) -> KANGenerator:  # noqa: ANN001
    """The generator a config asks for, producing images of ``image_shape`` ``(C, H, W)``."""
    if config.kind == "kan":
        return KANGenerator(config, image_shape, generator=generator)
    raise ValueError(f"generator.kind {config.kind!r} is not available")
