"""Image batches (:mod:`tkam.data.pixels`): the shape check and the conversion to ``[0, 1]``."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tkam.data import DataError, check_images
from tkam.data.pixels import to_unit_float


def test_check_images_accepts_and_rejects() -> None:
    images = torch.zeros(4, 1, 8, 8)
    assert check_images(images, (1, 8, 8), "source") is images
    for bad in (torch.zeros(4, 8, 8), torch.zeros(4, 3, 8, 8), torch.zeros(1, 4, 1, 8, 8)):
        with pytest.raises(DataError, match="my-source"):
            check_images(bad, (1, 8, 8), "my-source")


def test_to_unit_float_scales_uint8_and_refuses_what_has_no_scale() -> None:
    values = np.array([[0, 51, 255]], dtype=np.uint8)
    out = to_unit_float(values, "src")
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, torch.tensor([[0.0, 0.2, 1.0]]), rtol=0, atol=0)
    assert to_unit_float(np.array([0.0, 16.0]), "src", scale=16.0).tolist() == [0.0, 1.0]
    with pytest.raises(DataError, match="src: expected uint8 or floating-point"):
        to_unit_float(np.array([1, 2], dtype=np.int16), "src")
    with pytest.raises(DataError, match=r"src: pixel values must lie in \[0, 1\]"):
        to_unit_float(np.array([0.5, 1.5]), "src")
