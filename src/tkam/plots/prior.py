"""The learned prior components next to their reference density (maths 9, ``plot_prior``).

Each component ``(q, p)`` of a Kolmogorov-Arnold prior is a univariate density
``exp(f_qp(z)) pi_0(z) / Z_qp``. Plotting it over ``pi_0`` shows what training changed: where the
learned energy moved mass away from the reference.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes

from tkam.plots.figures import panels, save_png

__all__ = ["plot_prior", "plot_prior_grid", "prior_rows_are_inputs"]

ROWS = ("inputs", "outputs")
_LEARNED_COLOUR = "#1f77b4"
_REFERENCE_COLOUR = "#444444"


def prior_rows_are_inputs(export: Mapping[str, np.ndarray], rows: str | None = None) -> bool:
    """Whether component ``(q, p)`` sits on row ``p`` (univariate prior) or row ``q`` (mixture).

    Args:
        export: the dict of ``KANPrior.export()``: ``nodes (R, n)``, ``density (Q, P, n)``, ...
        rows: ``"inputs"`` (row p), ``"outputs"`` (row q), or None: the export's
            ``rows_are_inputs`` entry if present, else whichever of P and Q equals R.

    Raises:
        ValueError: for an unknown ``rows``, a choice that contradicts the shapes, or when
            ``rows`` is None and the shapes cannot tell (P = Q without ``rows_are_inputs``).
    """
    num_rows = np.shape(export["nodes"])[0]
    num_outputs, num_inputs = np.shape(export["density"])[:2]
    if rows is None:
        if "rows_are_inputs" in export:
            rows = "inputs" if bool(export["rows_are_inputs"]) else "outputs"
        elif num_inputs == num_outputs:
            raise ValueError(
                f"cannot tell from the shapes (P = Q = {num_inputs}) whether the nodes' rows are "
                "the prior's inputs (univariate prior) or outputs (mixture prior); pass "
                "rows='inputs' or rows='outputs'"
            )
        else:
            rows = "inputs" if num_rows == num_inputs else "outputs"
    if rows not in ROWS:
        raise ValueError(f"rows must be one of {ROWS}, got {rows!r}")
    expected = num_inputs if rows == "inputs" else num_outputs
    if num_rows != expected:
        raise ValueError(
            f"rows={rows!r} needs {expected} rows of nodes for density of shape "
            f"{np.shape(export['density'])}, but nodes has shape {np.shape(export['nodes'])}"
        )
    return rows == "inputs"


def _normalised_reference(nodes: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """pi_0 divided by its trapezium integral over the same nodes, so both curves share an area."""
    area = float(np.sum(0.5 * (reference[1:] + reference[:-1]) * np.diff(nodes)))
    return reference / area if area > 0 else reference


def plot_prior(
    export: Mapping[str, np.ndarray],
    path: str | Path,
    components: Sequence[tuple[int, int]] | None = None,
    max_components: int = 12,
    title: str | None = None,
    rows: str | None = None,
    ncols: int = 3,
    metadata: Mapping[str, str] | None = None,
) -> Path:
    """Plot learned prior components as filled densities beside the reference ``pi_0``.

    Indices ``q`` and ``p`` are 0-based, as in the export's arrays.

    Args:
        export: the dict of ``KANPrior.export()``: ``nodes (R, n)``, ``density (Q, P, n)``
            normalised densities at the nodes, ``reference (R, n)`` pi_0 at the nodes, and
            optionally ``rows_are_inputs``.
        path: the PNG to write; parent directories are created.
        components: the ``(q, p)`` pairs to draw; default the first ``max_components`` in
            ``(q, p)`` order (q outer).
        max_components: how many components to draw by default.
        title: figure title; default names the prior's shape.
        rows: which row of nodes component ``(q, p)`` uses, see :func:`prior_rows_are_inputs`.
        ncols: panels per row.
        metadata: PNG text entries (the model the figure shows: see :mod:`tkam.runs`).

    Returns:
        the path written.

    Raises:
        KeyError: when the export lacks ``nodes``, ``density`` or ``reference``.
        ValueError: for inconsistent shapes or a component out of range.
    """
    nodes, density, reference = _component_arrays(export)
    on_inputs = prior_rows_are_inputs(export, rows)
    num_outputs, num_inputs = density.shape[:2]
    pairs = _chosen_components(components, max_components, num_outputs, num_inputs)
    ncols = max(1, min(ncols, len(pairs)))
    nrows = math.ceil(len(pairs) / ncols)
    figure, grid = panels(len(pairs), ncols, (3.4 * ncols, 2.5 * nrows + 0.6), dpi=110)
    for index, (q, p) in enumerate(pairs):
        row = p if on_inputs else q
        axes = grid.flat[index]
        _draw_component(axes, nodes[row], density[q, p], reference[row], f"q={q}, p={p}")
        _label_component_axes(axes, index, ncols, nrows, len(pairs))
    handles, labels = grid.flat[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside lower center", ncols=2, fontsize=9, frameon=False)
    kind = "univariate" if on_inputs else "mixture"
    shown = f"{len(pairs)} of {num_outputs * num_inputs}"
    figure.suptitle(
        title or f"Prior components ({kind}, Q={num_outputs}, P={num_inputs}; {shown} shown)",
        fontsize=11,
    )
    return save_png(figure, path, metadata)


def _component_arrays(export: Mapping[str, np.ndarray]) -> tuple[np.ndarray, ...]:
    """The export's ``nodes (R, n)``, ``density (Q, P, n)`` and ``reference (R, n)`` as float64
    arrays, checked against each other.

    Raises:
        KeyError: naming the arrays the export lacks.
        ValueError: for shapes that do not fit together.
    """
    missing = [key for key in ("nodes", "density", "reference") if key not in export]
    if missing:
        raise KeyError(f"the prior export lacks {', '.join(missing)} (has {', '.join(export)})")
    nodes = np.asarray(export["nodes"], dtype=np.float64)  # (R, n)
    density = np.asarray(export["density"], dtype=np.float64)  # (Q, P, n)
    reference = np.asarray(export["reference"], dtype=np.float64)  # (R, n)
    if density.ndim != 3 or nodes.ndim != 2 or reference.shape != nodes.shape:
        raise ValueError(
            f"expected nodes (R, n), density (Q, P, n) and reference (R, n); got nodes "
            f"{nodes.shape}, density {density.shape}, reference {reference.shape}"
        )
    if density.shape[2] != nodes.shape[1]:
        raise ValueError(
            f"density {density.shape} and nodes {nodes.shape} differ in the number of nodes"
        )
    return nodes, density, reference


def _chosen_components(
    components: Sequence[tuple[int, int]] | None,
    max_components: int,
    num_outputs: int,
    num_inputs: int,
) -> list[tuple[int, int]]:
    """The ``(q, p)`` pairs to draw: ``components``, or the first ``max_components`` (q outer).

    Raises:
        ValueError: for a pair out of range, none at all, or ``max_components < 1``.
    """
    if components is None:
        if max_components < 1:
            raise ValueError(f"max_components must be >= 1, got {max_components}")
        return [(q, p) for q in range(num_outputs) for p in range(num_inputs)][:max_components]
    pairs = [(int(q), int(p)) for q, p in components]
    bad = [(q, p) for q, p in pairs if not (0 <= q < num_outputs and 0 <= p < num_inputs)]
    if bad or not pairs:
        raise ValueError(
            f"components must be (q, p) with 0 <= q < {num_outputs} and 0 <= p < "
            f"{num_inputs}; got {bad or 'none'}"
        )
    return pairs


def _draw_component(
    axes: Axes, z: np.ndarray, learned: np.ndarray, reference: np.ndarray, title: str
) -> None:
    """One component: its density at the nodes ``z``, filled, over the reference ``pi_0``
    scaled to the same area."""
    axes.fill_between(z, learned, color=_LEARNED_COLOUR, alpha=0.3, linewidth=0)
    axes.plot(z, learned, color=_LEARNED_COLOUR, linewidth=1.6, label="learned prior")
    axes.plot(
        z,
        _normalised_reference(z, reference),
        color=_REFERENCE_COLOUR,
        linestyle="--",
        linewidth=1.3,
        label=r"reference $\pi_0$",
    )
    axes.set_title(title, fontsize=10)
    axes.set_xlim(z[0], z[-1])
    axes.set_ylim(bottom=0.0)
    axes.grid(alpha=0.25, linewidth=0.6)
    axes.tick_params(labelsize=8)


def _label_component_axes(axes: Axes, index: int, ncols: int, nrows: int, count: int) -> None:
    """The density label on the first panel of a row, ``z`` under the last panel of a column."""
    if index % ncols == 0:
        axes.set_ylabel("density", fontsize=9)
    if index // ncols == nrows - 1 or index + ncols >= count:
        axes.set_xlabel("z", fontsize=9)


def plot_prior_grid(
    export: Mapping[str, np.ndarray],
    path: str | Path,
    rows: str | None = None,
    title: str | None = None,
    ncols: int = 8,
    metadata: Mapping[str, str] | None = None,
) -> Path:
    """Every component of a prior at once: one heat map per row of nodes.

    Panel ``r`` holds the components that share node row ``r`` (input ``p`` of a univariate
    prior, output ``q`` of a mixture), one horizontal band per component, coloured by the
    density divided by the row's largest value, so shapes are comparable across panels. With
    thousands of components (Q=81, P=40 is 3,240) the curve plot of :func:`plot_prior` can only
    show a few; this shows where every one puts its mass.

    Args:
        export: the dict of ``KANPrior.export()`` (``nodes``, ``density``).
        path: the PNG to write; parent directories are created.
        rows: see :func:`prior_rows_are_inputs`.
        title: figure title; default names the prior's shape.
        ncols: panels per row.
        metadata: PNG text entries (the model the figure shows).

    Returns:
        the path written.
    """
    nodes = np.asarray(export["nodes"], dtype=np.float64)  # (R, n)
    density = np.asarray(export["density"], dtype=np.float64)  # (Q, P, n)
    if density.ndim != 3 or nodes.ndim != 2 or density.shape[2] != nodes.shape[1]:
        raise ValueError(
            f"expected nodes (R, n) and density (Q, P, n); got {nodes.shape}, {density.shape}"
        )
    on_inputs = prior_rows_are_inputs(export, rows)
    num_outputs, num_inputs = density.shape[:2]
    # bands[r]: (components on row r, n); "other" names the index that varies within a panel.
    bands = density.transpose(1, 0, 2) if on_inputs else density
    panel_name, band_name = ("p", "q") if on_inputs else ("q", "p")
    num_panels, num_bands = bands.shape[:2]
    ncols = max(1, min(ncols, num_panels))
    nrows = math.ceil(num_panels / ncols)
    height = max(1.2, min(3.0, 0.03 * num_bands + 0.6))
    figure, grid = panels(num_panels, ncols, (2.1 * ncols, height * nrows + 0.9), dpi=100)
    mesh = None
    for r in range(num_panels):
        axes = grid.flat[r]
        values = bands[r] / np.maximum(bands[r].max(axis=1, keepdims=True), 1e-300)
        z = nodes[r]
        edges = np.concatenate([[z[0]], 0.5 * (z[1:] + z[:-1]), [z[-1]]])
        mesh = axes.pcolormesh(
            edges, np.arange(num_bands + 1), values, cmap="viridis", vmin=0.0, vmax=1.0
        )
        axes.set_title(f"{panel_name}={r}", fontsize=8)
        axes.tick_params(labelsize=6)
        axes.set_yticks([0, num_bands])
        if r % ncols == 0:
            axes.set_ylabel(band_name, fontsize=7)
    if mesh is not None:
        figure.colorbar(mesh, ax=grid, shrink=0.6, label="density / its maximum")
    kind = "univariate" if on_inputs else "mixture"
    figure.suptitle(
        title
        or f"All {num_outputs * num_inputs} prior components ({kind}, Q={num_outputs}, "
        f"P={num_inputs}): one band per component",
        fontsize=10,
    )
    return save_png(figure, path, metadata)
