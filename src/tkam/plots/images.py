"""Grids of images saved as PNG (maths 9: sample and real-image grids)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import image as mpimg
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from torch import Tensor

__all__ = ["image_grid", "save_image_grid"]

# Height in pixels of the band that holds a title above the grid.
_TITLE_PIXELS = 28


def _as_array(images: Tensor | np.ndarray) -> np.ndarray:
    if isinstance(images, Tensor):
        return images.detach().to("cpu").float().numpy()
    return np.asarray(images, dtype=np.float32)


def image_grid(
    images: Tensor | np.ndarray,
    ncols: int | None = None,
    scale: int = 1,
    pad_value: float = 1.0,
) -> np.ndarray:
    """Tile a batch of images into one array, with 1-pixel separators around every tile.

    Args:
        images: ``(N, C, H, W)`` with ``C`` 1 (grayscale) or 3 (RGB), values in ``[0, 1]``
            (values outside are clipped).
        ncols: tiles per row; default ``ceil(sqrt(N))``.
        scale: integer nearest-neighbour magnification of every tile (separators stay 1 pixel).
        pad_value: intensity of the separators and of empty tiles.

    Returns:
        ``(rows * (scale H + 1) + 1, ncols * (scale W + 1) + 1)`` for grayscale, with a trailing
        axis of 3 for RGB; float32 in ``[0, 1]``.

    Raises:
        ValueError: naming the shape, when ``images`` is not ``(N, C, H, W)`` with ``C`` in
            ``(1, 3)`` and ``N >= 1``, or when it holds non-finite values.
    """
    array = _as_array(images)
    if array.ndim != 4 or array.shape[1] not in (1, 3) or array.shape[0] == 0:
        raise ValueError(
            f"images must have shape (N, C, H, W) with N >= 1 and C in (1, 3), got "
            f"{tuple(array.shape)}"
        )
    if not np.isfinite(array).all():
        bad = int((~np.isfinite(array)).sum())
        raise ValueError(f"images of shape {tuple(array.shape)} hold {bad} non-finite value(s)")
    if scale < 1:
        raise ValueError(f"scale must be a positive integer, got {scale}")
    count, channels, height, width = array.shape
    ncols = max(1, min(ncols or math.ceil(math.sqrt(count)), count))
    nrows = math.ceil(count / ncols)

    tiles = np.clip(array, 0.0, 1.0).transpose(0, 2, 3, 1)  # (N, H, W, C)
    if scale > 1:
        tiles = tiles.repeat(scale, axis=1).repeat(scale, axis=2)
    tile_height, tile_width = height * scale, width * scale
    grid = np.full(
        (nrows * (tile_height + 1) + 1, ncols * (tile_width + 1) + 1, channels),
        pad_value,
        dtype=np.float32,
    )
    for index in range(count):
        row, col = divmod(index, ncols)
        top, left = 1 + row * (tile_height + 1), 1 + col * (tile_width + 1)
        grid[top : top + tile_height, left : left + tile_width] = tiles[index]
    return grid[..., 0] if channels == 1 else grid


def readable_scale(height: int, width: int, target: int = 32) -> int:
    """Integer magnification that brings small images (8x8 digits) to about ``target`` pixels."""
    return max(1, target // max(height, width))


def save_image_grid(
    images: Tensor | np.ndarray,
    path: str | Path,
    ncols: int | None = None,
    title: str | None = None,
    scale: int = 1,
    pad_value: float = 1.0,
    metadata: Mapping[str, str] | None = None,
) -> Path:
    """Save a batch of images as one tiled PNG, pixel for pixel (no axes, no resampling).

    Without a title the PNG is exactly the :func:`image_grid` array; with a title, a band of
    28 pixels above it holds the title.

    Args:
        images: ``(N, C, H, W)``, ``C`` 1 (saved in grayscale) or 3 (RGB), values in ``[0, 1]``.
        path: the PNG to write; parent directories are created.
        ncols: tiles per row; default ``ceil(sqrt(N))``.
        title: optional text above the grid.
        scale: integer magnification of every tile (8x8 digits are unreadable at 1).
        pad_value: intensity of the separators and empty tiles.
        metadata: PNG text entries (the model and step the samples come from).

    Returns:
        the path written.

    Raises:
        ValueError: naming the shape, for anything but ``(N, 1|3, H, W)``.
    """
    grid = image_grid(images, ncols=ncols, scale=scale, pad_value=pad_value)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    colour: dict[str, Any] = {"cmap": "gray", "vmin": 0.0, "vmax": 1.0} if grid.ndim == 2 else {}
    if title is None:
        mpimg.imsave(path, grid, format="png", metadata=dict(metadata or {}), **colour)
        return path
    # A figure whose pixel size is the grid plus a title band: one figure pixel per grid pixel.
    dpi = 100
    height, width = grid.shape[:2]
    total_height = height + _TITLE_PIXELS
    figure = Figure(figsize=(width / dpi, total_height / dpi), dpi=dpi)
    FigureCanvasAgg(figure)
    axes = figure.add_axes((0.0, 0.0, 1.0, height / total_height))
    axes.imshow(grid, interpolation="nearest", aspect="auto", **colour)
    axes.set_axis_off()
    figure.text(
        0.5,
        1.0 - 0.5 * _TITLE_PIXELS / total_height,
        title,
        ha="center",
        va="center",
        fontsize=10,
    )
    figure.savefig(path, dpi=dpi, format="png", facecolor="white", metadata=dict(metadata or {}))
    return path
