"""Training loop, checkpoints."""

from tkam.build import build_model
from tkam.train.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from tkam.train.loop import TrainingError, fit, train_step

__all__ = [
    "CheckpointError",
    "TrainingError",
    "build_model",
    "fit",
    "load_checkpoint",
    "save_checkpoint",
    "train_step",
]
