"""tkam: the Thermodynamic Kolmogorov-Arnold Model in PyTorch.

Importing the package makes Intel MKL keep its thread count fixed (:mod:`tkam.determinism`), so
that seeded runs and samples are bitwise reproducible whatever the load of the machine.
"""

from tkam.config import ExperimentConfig, KANConfig, PriorConfig, load_config
from tkam.determinism import fix_mkl_threads
from tkam.kan import UnivariateLayer
from tkam.prior import MixturePrior, UnivariatePrior, build_prior

fix_mkl_threads()

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
