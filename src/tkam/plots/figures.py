"""What the figures of :mod:`tkam.plots` share: a grid of panels, and writing it as a PNG."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = ["panels", "save_png"]


def panels(
    count: int, ncols: int, size: tuple[float, float], dpi: int
) -> tuple[Figure, np.ndarray]:
    """A figure of ``count`` panels in rows of ``ncols`` (the unused ones hidden) and its
    ``(nrows, ncols)`` array of axes."""
    figure = Figure(figsize=size, dpi=dpi, layout="constrained")
    FigureCanvasAgg(figure)
    grid = figure.subplots(math.ceil(count / ncols), ncols, squeeze=False)
    for axes in grid.flat[count:]:
        axes.set_visible(False)
    return figure, grid


def save_png(figure: Figure, path: str | Path, metadata: Mapping[str, str] | None) -> Path:
    """Write ``figure`` as a PNG at ``path`` (parent folders created) with its text entries."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png", facecolor="white", metadata=dict(metadata or {}))
    return path
