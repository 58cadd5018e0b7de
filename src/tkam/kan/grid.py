"""The geometric grid-update schedule (maths 2.6)."""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["GridUpdateSchedule"]


@dataclass
class GridUpdateSchedule:
    """Update at step 1, then whenever ``step - last >= F``; after an update at step ``i > 1``,
    ``F <- floor(F (2 - d)^i)``. With F=100, d=0.999: steps 1, 101, 211, 346, 536, 860, 1625, ...

    The state (``interval``, ``last``) is plain data so checkpoints can store and restore it.
    """

    interval: int = 100
    decay: float = 0.999
    last: int = 0

    def due(self, step: int) -> bool:
        """Whether step (1-based) updates the grids."""
        return step == 1 or (self.last > 0 and step - self.last >= self.interval)

    def mark(self, step: int) -> None:
        """Record an update at ``step`` and grow the interval."""
        if step > 1:
            self.interval = math.floor(self.interval * (2.0 - self.decay) ** step)
        self.last = step

    def state_dict(self) -> dict[str, float]:
        return {"interval": self.interval, "decay": self.decay, "last": self.last}

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.interval = int(state["interval"])
        self.decay = float(state["decay"])
        self.last = int(state["last"])
