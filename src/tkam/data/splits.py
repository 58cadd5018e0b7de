"""Which items train and which test: the split rules every format follows (maths 6).

``split = "spec"`` takes the first ``num_train`` items of the *training* file for training and
the next ``num_test`` for testing, as the reference does; ``split = "official"`` takes the test
items from the data set's official test file. A zero means "all remaining". A request larger than
the file is a :class:`~tkam.data.types.DataError` that names the file: nothing is padded or cut.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import numpy as np

from tkam.config import DataConfig
from tkam.data.types import DataError

__all__ = ["no_official_split", "official_counts", "split_counts", "take_official", "take_split"]

#: What a split slices: an array along its first axis, or a list (of sentences, of files).
Items = TypeVar("Items", np.ndarray, list)


def split_counts(
    available: int, num_train: int, num_test: int, source: str | Path
) -> tuple[int, int]:
    """Resolve the split sizes (maths 6: first ``num_train``, then the next ``num_test``).

    A zero means "all remaining": ``num_train = 0`` takes every image not reserved for the test
    split; ``num_test = 0`` takes every image after the training split (none when ``num_train`` is
    also 0, so all images train).

    Args:
        available: number of images in the file.
        num_train: the requested training size (0 = all remaining).
        num_test: the requested test size (0 = all remaining).
        source: named in the error.

    Returns:
        ``(num_train, num_test)`` as integers that fit in ``available``.

    Raises:
        DataError: when the requested images exceed those available.
    """
    if num_train < 0 or num_test < 0:
        raise DataError(
            f"{source}: num_train and num_test must be >= 0, got {num_train}, {num_test}"
        )
    if num_train + num_test > available:
        raise DataError(
            f"{source}: num_train + num_test = {num_train} + {num_test} = {num_train + num_test} "
            f"exceeds the {available} images available"
        )
    if num_train == 0:
        num_train = available - num_test
    elif num_test == 0:
        num_test = available - num_train
    return num_train, num_test


def official_counts(
    train_available: int,
    test_available: int,
    num_train: int,
    num_test: int,
    train_source: str | Path,
    test_source: str | Path,
) -> tuple[int, int]:
    """Resolve the split sizes of the official split: the first ``num_train`` items of the
    training file and the first ``num_test`` of the test file (0 = all of that file).

    Raises:
        DataError: naming the file whose items do not suffice.
    """
    if num_train < 0 or num_test < 0:
        raise DataError(
            f"{train_source}: num_train and num_test must be >= 0, got {num_train}, {num_test}"
        )
    for requested, available, source, what in (
        (num_train, train_available, train_source, "num_train"),
        (num_test, test_available, test_source, "num_test"),
    ):
        if requested > available:
            raise DataError(
                f"{source}: {what} = {requested} exceeds the {available} items available"
            )
    return num_train or train_available, num_test or test_available


def take_split(values: Items, config: DataConfig, source: str | Path) -> tuple[Items, Items]:
    """The spec split of an array (along its first axis) or a list: the first ``num_train``
    items, then the next ``num_test``."""
    num_train, num_test = split_counts(len(values), config.num_train, config.num_test, source)
    return values[:num_train], values[num_train : num_train + num_test]


def take_official(
    train: Items,
    test: Items,
    config: DataConfig,
    train_source: str | Path,
    test_source: str | Path,
) -> tuple[Items, Items]:
    """The official split: the first ``num_train`` items of ``train`` and the first
    ``num_test`` of ``test`` (see :func:`official_counts`)."""
    num_train, num_test = official_counts(
        len(train), len(test), config.num_train, config.num_test, train_source, test_source
    )
    return train[:num_train], test[:num_test]


def no_official_split(name: str) -> DataError:
    """The error for ``split = "official"`` on a data set without an official test file."""
    return DataError(
        f'data set {name!r} has no official test split; use data.split = "spec" (the test '
        "items are then the ones after the training items)"
    )
