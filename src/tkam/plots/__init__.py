"""Figures: image grids, learned prior components and training curves, the evolution of samples over training (maths 9).

Everything draws on its own :class:`matplotlib.figure.Figure` with the Agg canvas, never through
``pyplot``: no global figure state, no backend switch for the caller, nothing to close, and it works
on machines without a display.
"""

from __future__ import annotations

from tkam.plots.curves import plot_losses, read_curves
from tkam.plots.evolution import save_evolution_gif, snapshot_frames
from tkam.plots.images import image_grid, readable_scale, save_image_grid
from tkam.plots.prior import plot_prior, plot_prior_grid, prior_rows_are_inputs

__all__ = [
    "image_grid",
    "plot_losses",
    "plot_prior",
    "plot_prior_grid",
    "prior_rows_are_inputs",
    "read_curves",
    "readable_scale",
    "save_evolution_gif",
    "save_image_grid",
    "snapshot_frames",
]
