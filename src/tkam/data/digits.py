"""scikit-learn's 8x8 digits: bundled with scikit-learn, always offline (maths 6).

The 1,797 images, values ``0..16``, are scaled by ``1/16`` to ``(N, 1, 8, 8)`` float32; their
class labels serve the FID classifier. There is nothing to download and no official test split.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from tkam.config import DataConfig
from tkam.data.pixels import check_images, to_unit_float
from tkam.data.splits import no_official_split, take_split
from tkam.data.types import DataError, DatasetInfo, ImageData

__all__ = ["DIGITS", "digits_labels", "load_digits"]

_SOURCE = "scikit-learn digits"
_SHAPE = (1, 8, 8)


def _bundled() -> tuple[np.ndarray, np.ndarray]:
    """The ``(1797, 8, 8)`` images (values ``0..16``) and the ``(1797,)`` labels.

    Read from the CSV file that scikit-learn ships (64 pixel columns and the label per row),
    found without importing scikit-learn, which takes about a second.
    """
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("the digits data set is read from scikit-learn: pip install scikit-learn")
    path = Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "digits.csv.gz"
    try:
        table = np.loadtxt(path, delimiter=",")
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read scikit-learn's digits ({exc})") from None
    return table[:, :-1].reshape(-1, 8, 8), table[:, -1].astype(int)


def load_digits(config: DataConfig, root: Path | None = None) -> ImageData:
    """scikit-learn's 8x8 digits, ``(N, 1, 8, 8)``, values ``0..16`` scaled by ``1/16``.

    Args:
        config: ``num_train`` / ``num_test``; ``split`` must be ``spec``.
        root: unused (the data is built in).
    """
    if config.split == "official":
        raise no_official_split("digits")
    images = _bundled()[0][:, None]  # (1797, 1, 8, 8), values 0..16
    train, test = take_split(images, config, _SOURCE)
    train_tensor = check_images(to_unit_float(train, _SOURCE, scale=16.0), _SHAPE, _SOURCE)
    test_tensor = check_images(to_unit_float(test, _SOURCE, scale=16.0), _SHAPE, _SOURCE)
    return ImageData(train_tensor, test_tensor, "digits")


def digits_labels(root: Path | None, count: int) -> np.ndarray:
    """The ``(1797,)`` class labels, in the loader's order (``root`` and ``count`` unused)."""
    return _bundled()[1]


DIGITS = DatasetInfo(
    "digits",
    "scikit-learn digits",
    "builtin",
    (),
    (),
    load_digits,
    labels=digits_labels,
    no_download=lambda root: "digits is bundled with scikit-learn; there is nothing to download",
)
