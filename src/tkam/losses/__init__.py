"""Training losses: each returns ``(loss, metrics)``."""

from tkam.losses.importance import LossOutput, importance_loss

__all__ = ["LossOutput", "importance_loss"]
