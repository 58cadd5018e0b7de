"""Training curves from a run's ``loss.csv``."""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from tkam.plots.figures import panels, save_png

__all__ = ["plot_losses", "read_curves"]

# Smallest max / min ratio of a positive metric that gets a log-scale y axis.
_LOG_RANGE = 10.0
# loss.csv columns that are bookkeeping rather than metrics.
_BOOKKEEPING = {"Time (s)", "Epoch", "Grid Updated"}


def _number(text: str | None) -> float:
    """A CSV cell as a float; blank or missing cells (metrics logged less often) are NaN."""
    if text is None or not text.strip():
        return math.nan
    return float(text)


def read_curves(csv_path: str | Path) -> dict[str, np.ndarray]:
    """Read the numeric columns of a loss CSV.

    Args:
        csv_path: a CSV with a header row that has a ``step`` column.

    Returns:
        column name -> ``(rows,)`` float64 values (NaN where a cell is blank); columns with a
        non-numeric cell are left out.

    Raises:
        ValueError: naming the file, when it has no header or no ``step`` column.
    """
    csv_path = Path(csv_path)
    with csv_path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        # The step column may be spelt "step" or "Step" (the training loop's loss.csv).
        header = [
            "step" if name.strip().lower() == "step" else name.strip()
            for name in reader.fieldnames or []
        ]
        rows = list(reader)
    if "step" not in header:
        raise ValueError(f"{csv_path}: expected a header with a 'step' column, got {header}")
    columns: dict[str, np.ndarray] = {}
    for raw_name, name in zip(reader.fieldnames or [], header, strict=True):
        try:
            columns[name] = np.array([_number(row.get(raw_name)) for row in rows], dtype=float)
        except ValueError:
            if name == "step":
                raise ValueError(f"{csv_path}: the 'step' column holds non-numbers") from None
    return columns


def plot_losses(
    csv_path: str | Path,
    path: str | Path,
    columns: Sequence[str] | None = None,
    title: str | None = None,
    metadata: Mapping[str, str] | None = None,
) -> Path:
    """Plot every logged metric against the step, one panel per metric.

    Each panel uses a log-scale y axis when all its values are positive and span at least a
    factor of 10, else a linear one.
    Metrics on different scales (a loss, a test MSE, an effective sample size) get their own axes.

    Args:
        csv_path: the run's ``loss.csv`` (header with ``step``, ``train_loss`` and optionally
            ``test_mse``, ``ess``, ...).
        path: the PNG to write; parent directories are created.
        columns: the metrics to draw; default every numeric column but ``step``.
        title: figure title; default the CSV's name.
        metadata: PNG text entries (the run and model the curves belong to).

    Returns:
        the path written.

    Raises:
        ValueError: naming the file, for a missing ``step`` column, a requested column that is
            absent or non-numeric, or no metric with a finite value.
    """
    curves = read_curves(csv_path)
    step = curves.pop("step")
    if columns is None:
        names = [
            name
            for name, values in curves.items()
            if name not in _BOOKKEEPING and np.isfinite(values).any()
        ]
    else:
        absent = [name for name in columns if name not in curves]
        if absent:
            raise ValueError(
                f"{csv_path}: no numeric column(s) {absent}; numeric columns are {list(curves)}"
            )
        names = list(columns)
    if not names:
        raise ValueError(f"{csv_path}: no metric with a finite value to plot")

    ncols = min(len(names), 2)
    nrows = math.ceil(len(names) / ncols)
    figure, grid = panels(len(names), ncols, (5.0 * ncols, 3.0 * nrows + 0.4), dpi=110)
    for axes, name in zip(grid.flat, names, strict=False):
        values = curves[name]
        keep = np.isfinite(values) & np.isfinite(step)
        x, y = step[keep], values[keep]
        axes.plot(x, y, linewidth=1.3, marker="." if len(x) < 50 else None)
        # A log axis only pays off over a wide range; a metric that stays within a factor of 10
        # (an ESS near its ceiling) reads better on a linear one.
        if len(y) and (y > 0).all() and y.max() >= _LOG_RANGE * y.min():
            axes.set_yscale("log")
        axes.set_title(name, fontsize=10)
        axes.set_xlabel("step", fontsize=9)
        axes.grid(alpha=0.25, linewidth=0.6, which="both")
        axes.tick_params(labelsize=8, which="both")
    figure.suptitle(title or Path(csv_path).name, fontsize=11)
    return save_png(figure, path, metadata)
