"""Evaluation metrics (maths 7): FID/KID with infinity extrapolations through a pluggable
feature network, test-set log-likelihood by importance sampling, Darcy field statistics, and the
``tkam evaluate`` command."""

from __future__ import annotations

from tkam.metrics.darcy import darcy_field_errors, radial_power_spectrum, relative_l2_error
from tkam.metrics.distances import (
    KIDResult,
    feature_statistics,
    frechet_distance,
    kernel_inception_distance,
    mmd2_unbiased,
    polynomial_kernel,
)
from tkam.metrics.evaluate import EvaluationOptions, evaluate_run, format_table
from tkam.metrics.extrapolation import (
    SPEC_SAMPLE_SIZES,
    InfinityMetrics,
    default_sample_sizes,
    extrapolate_to_infinity,
    infinity_metrics,
)
from tkam.metrics.features import (
    AutoencoderRecipe,
    ClassifierRecipe,
    ConvAutoencoder,
    FeatureError,
    FeatureNetwork,
    autoencoder_features,
    classifier_features,
    default_cache_dir,
    extract_features,
    inception_features,
    present_inception_weights,
    quantise,
    train_autoencoder,
)
from tkam.metrics.likelihood import (
    LogLikelihoodResult,
    estimate_iwae_bound,
    estimate_log_likelihood,
    estimate_thermodynamic_log_likelihood,
    gaussian_constant,
    mean_log_evidence_standard_error,
)

__all__ = [
    "SPEC_SAMPLE_SIZES",
    "AutoencoderRecipe",
    "ClassifierRecipe",
    "ConvAutoencoder",
    "FeatureError",
    "FeatureNetwork",
    "InfinityMetrics",
    "KIDResult",
    "LogLikelihoodResult",
    "autoencoder_features",
    "classifier_features",
    "darcy_field_errors",
    "default_cache_dir",
    "default_sample_sizes",
    "estimate_iwae_bound",
    "estimate_log_likelihood",
    "estimate_thermodynamic_log_likelihood",
    "gaussian_constant",
    "EvaluationOptions",
    "evaluate_run",
    "extract_features",
    "extrapolate_to_infinity",
    "feature_statistics",
    "format_table",
    "frechet_distance",
    "inception_features",
    "present_inception_weights",
    "infinity_metrics",
    "kernel_inception_distance",
    "mean_log_evidence_standard_error",
    "mmd2_unbiased",
    "polynomial_kernel",
    "quantise",
    "radial_power_spectrum",
    "relative_l2_error",
    "train_autoencoder",
]
