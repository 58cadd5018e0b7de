"""Image batches: the shape check and the conversion of pixel values to float32 in ``[0, 1]`` that
every image format applies to what its reader returns."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import numpy as np
import torch
from torch import Tensor

from tkam.data.types import DataError, MalformedFileError

__all__ = ["check_image_shape", "check_images", "to_unit_float"]

_Images = TypeVar("_Images", Tensor, np.ndarray)


def check_image_shape(
    shape: tuple[int, ...], expected_shape: tuple[int, ...], source: str | Path
) -> None:
    """Check that ``shape`` is a batch ``(N, *expected_shape)``.

    Raises:
        MalformedFileError: ``wrong shape``, naming ``source``, the expected and the found shape.
    """
    shape = tuple(int(size) for size in shape)
    if len(shape) != len(expected_shape) + 1 or shape[1:] != tuple(expected_shape):
        expected = "(N, " + ", ".join(str(size) for size in expected_shape) + ")"
        hint = "; a labels file given as images?" if len(shape) == 1 else ""
        raise MalformedFileError(
            "wrong shape", source, f"expected images of shape {expected}, found {shape}{hint}"
        )


def check_images(images: _Images, expected_shape: tuple[int, ...], source: str | Path) -> _Images:
    """Check that ``images`` is a batch ``(N, *expected_shape)``.

    Args:
        images: the loaded batch (a tensor, or the raw array before conversion).
        expected_shape: the shape of one image, e.g. ``(1, 28, 28)``.
        source: the file or data set the images came from, named in the error.

    Returns:
        ``images`` unchanged.

    Raises:
        MalformedFileError: naming ``source``, the expected and the found shape.
    """
    check_image_shape(tuple(images.shape), expected_shape, source)
    return images


def to_unit_float(values: np.ndarray, source: str | Path, scale: float | None = None) -> Tensor:
    """Pixel values as a float32 tensor in ``[0, 1]``.

    ``uint8`` values are divided by 255 (or ``scale``); float values must already lie in ``[0, 1]``;
    other integer types have no agreed scale and are refused.

    Args:
        values: ``(N, ...)`` pixel values.
        source: the file the values came from, named in the error.
        scale: the divisor (default: 255 for uint8, none for floats).

    Returns:
        ``(N, ...)`` float32.

    Raises:
        DataError: for another integer type, or values outside ``[0, 1]`` after scaling.
    """
    if scale is None:
        if values.dtype == np.uint8:
            scale = 255.0
        elif not np.issubdtype(values.dtype, np.floating):
            raise DataError(
                f"{source}: expected uint8 or floating-point pixel values, found {values.dtype}"
            )
    tensor = torch.from_numpy(np.ascontiguousarray(values)).to(torch.float32)
    if scale is not None:
        tensor = tensor / scale
    if tensor.numel() and not (tensor.min() >= 0.0 and tensor.max() <= 1.0):
        raise DataError(
            f"{source}: pixel values must lie in [0, 1] after scaling, found "
            f"[{float(tensor.min())}, {float(tensor.max())}]"
        )
    return tensor
