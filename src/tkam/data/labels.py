"""Class labels of the training items, for the classifier feature network of FID/KID.

Only training is needed: labels never enter T-KAM. Labelled data sets are digits, MNIST,
Fashion-MNIST (``train-labels-idx1-ubyte``), SVHN (``y`` of ``train_32x32.mat``, 10 meaning 0) and
CIFAR-10 (``labels`` of the training batches); CelebA, Darcy and text have none.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from tkam.config import DataConfig
from tkam.data.formats import CIFAR_TRAIN_BATCHES, _cifar_folder
from tkam.data.images import find_idx, read_idx
from tkam.data.registry import resolve_root

__all__ = ["LABELLED", "training_labels"]

#: Data sets with class labels (ten classes each).
LABELLED = ("digits", "mnist", "fmnist", "svhn", "cifar10")


def _cifar_labels(root: Path, count: int) -> np.ndarray | None:
    folder = _cifar_folder(root)  # the folder load_cifar10 reads, batches in its order
    labels: list[int] = []
    for name in CIFAR_TRAIN_BATCHES:
        path = folder / name
        if len(labels) >= count or not path.is_file():
            break
        with path.open("rb") as handle:
            batch = pickle.load(handle, encoding="bytes")
        labels.extend(int(v) for v in batch.get(b"labels", batch.get("labels", [])))
    return np.asarray(labels) if len(labels) >= count else None


def training_labels(config: DataConfig, count: int) -> np.ndarray | None:
    """Labels ``(count,)`` int64 of the first ``count`` training items, in ``load_dataset``'s
    order; ``None`` for an unlabelled data set, or when the label file is missing, unreadable or
    shorter than ``count``."""
    name = config.name
    if name not in LABELLED:
        return None
    try:
        if name == "digits":
            from sklearn.datasets import load_digits

            labels = load_digits().target
        else:
            root = resolve_root(config)
            if root is None or not root.is_dir():
                return None
            if name in ("mnist", "fmnist"):
                path = find_idx(root, "train-labels-idx1-ubyte")
                labels = read_idx(path) if path is not None else None
            elif name == "svhn":
                import scipy.io

                path = root / "train_32x32.mat"
                if not path.is_file():
                    return None
                labels = scipy.io.loadmat(path, variable_names=["y"])["y"].reshape(-1) % 10
            else:
                labels = _cifar_labels(root, count)
    except (OSError, ValueError, KeyError, pickle.UnpicklingError):
        return None
    if labels is None or len(labels) < count or np.ndim(labels) != 1:
        return None
    return np.asarray(labels[:count], dtype=np.int64)
