"""Training loop, checkpoints."""

from tkam.train.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from tkam.train.loop import TrainingError, build_model, fit, train_step

__all__ = [
    "CheckpointError",
    "TrainingError",
    "build_model",
    "fit",
    "load_checkpoint",
    "save_checkpoint",
    "train_step",
]
