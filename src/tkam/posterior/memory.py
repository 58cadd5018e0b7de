"""What a posterior sampler keeps from one call to the next: autoMALA's per-chain step sizes.

autoMALA keeps each chain's adapted step size between calls (maths 4.2; the reference computes
it and drops it, departures A12). One :class:`StepSizeMemory` serves one stream of calls (one
shard of a training run); chain ``c`` of the next call starts from chain ``c``'s adapted step of
the last one.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["StepSizeMemory"]


class StepSizeMemory:
    """autoMALA's adapted ``(chains,)`` step sizes, carried from call to call.

    Attributes:
        step_size: the last call's adapted step sizes, or ``None`` before the first (or after a
            ULA call, which adapts nothing).
    """

    def __init__(self) -> None:
        self.step_size: Tensor | None = None

    def start(self, initial: float, chains: int) -> float | Tensor:
        """The step sizes a call of ``chains`` chains starts from: the kept ones when there are
        as many, else ``initial`` (the first call, or a batch of another size)."""
        kept = self.step_size
        return kept if kept is not None and kept.numel() == chains else initial

    def keep(self, adapted: Tensor | None) -> None:
        """Remember a call's adapted step sizes (``None``: nothing was adapted)."""
        self.step_size = None if adapted is None else adapted.detach().clone()

    def state(self) -> Tensor:
        """The kept step sizes as a float64 vector (empty when none), for checkpoints."""
        if self.step_size is None:
            return torch.zeros(0, dtype=torch.float64)
        return self.step_size.detach().to("cpu", torch.float64).flatten()

    def load(self, state: Tensor, device: torch.device | str = "cpu") -> None:
        """Restore :meth:`state` (an empty vector forgets)."""
        self.step_size = state.to(device, torch.get_default_dtype()) if state.numel() else None
