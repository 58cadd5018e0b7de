"""Training: the trainer (:func:`fit`), one update (:func:`train_step`), checkpoints; the
side jobs of a run are in :mod:`tkam.train.callbacks`."""

from tkam.build import build_model
from tkam.train.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from tkam.train.loop import RunStopped, fit
from tkam.train.step import TrainingError, train_step

__all__ = [
    "CheckpointError",
    "RunStopped",
    "TrainingError",
    "build_model",
    "fit",
    "load_checkpoint",
    "save_checkpoint",
    "train_step",
]
