"""tkam: the Thermodynamic Kolmogorov-Arnold Model in PyTorch."""

from tkam.config import ExperimentConfig, KANConfig, PriorConfig, load_config
from tkam.kan import UnivariateLayer
from tkam.prior import MixturePrior, UnivariatePrior, build_prior

__version__ = "0.1.0"

__all__ = [
    "ExperimentConfig",
    "KANConfig",
    "PriorConfig",
    "load_config",
    "UnivariateLayer",
    "MixturePrior",
    "UnivariatePrior",
    "build_prior",
    "__version__",
]
