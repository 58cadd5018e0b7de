"""KAN univariate functions: bases, layers and grid updates."""

from tkam.kan.bases import activation, num_bases
from tkam.kan.grid import GridUpdateSchedule
from tkam.kan.layer import UnivariateLayer, least_squares

__all__ = ["UnivariateLayer", "GridUpdateSchedule", "activation", "least_squares", "num_bases"]
