"""What the trainer and its callbacks share about one training run in progress.

:class:`Run` is the context every callback event receives: the model, optimiser, random streams,
data and run state, the run folder's paths (:class:`~tkam.paths.RunPaths`) and this process's place in a data-parallel run.
:class:`RunState` is the plain part of it that checkpoints store beside the tensors, and
:class:`LogEntry` what a log event reports. (Reading a finished run folder back is
:mod:`tkam.runs`.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

from tkam.config import ExperimentConfig
from tkam.kan.grid import GridUpdateSchedule
from tkam.losses import LossOutput
from tkam.model import LatentModel
from tkam.paths import RunPaths
from tkam.posterior.memory import StepSizeMemory
from tkam.train.distributed import Context

__all__ = ["LogEntry", "Run", "RunPaths", "RunState", "log_interval"]


@dataclass(frozen=True)
class LogEntry:
    """One log event: the step it falls on and the means over the updates since the previous one.

    Attributes:
        step: the last update done.
        epoch: its epoch (0-based).
        elapsed: training seconds so far (carried over resumes).
        mean_loss: mean loss of the updates that were not skipped (NaN when all were).
        mean_ess: their mean effective sample size (NaN for losses without one, or when all
            were skipped).
        grid_updated: whether a grid update happened since the previous log event.
        skipped: updates skipped for a non-finite loss (``train.skip_nonfinite``).
        updates: updates in the interval (skipped ones included).
    """

    step: int
    epoch: int
    elapsed: float
    mean_loss: float
    mean_ess: float
    grid_updated: bool
    skipped: int
    updates: int


@dataclass
class RunState:
    """Plain run state stored in checkpoints beside the tensors: the step, the clock, the grid
    schedule and the sums behind the next :class:`LogEntry`."""

    step: int = 0
    elapsed: float = 0.0
    schedule: dict[str, float] = field(default_factory=dict)
    loss_sum: float = 0.0
    ess_sum: float = 0.0
    count: int = 0
    grid_updated: bool = False
    skipped: int = 0
    applied: int = 0  # updates applied (not skipped) over the whole run
    first_loss: float = math.nan  # the first finite logged mean loss (the divergence check)
    last_loss: float = math.nan  # the last logged mean loss

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def add(self, output: LossOutput) -> None:
        """Count one update's loss and ESS (or that it was skipped)."""
        if output.metrics.get("skipped"):
            self.skipped += 1
        else:
            self.loss_sum += float(output.loss)
            self.ess_sum += output.metrics.get("ess", float("nan"))
            self.count += 1
            self.applied += 1

    def close_interval(self, epoch: int) -> LogEntry:
        """The :class:`LogEntry` of the updates counted since the last call; the sums restart."""
        entry = LogEntry(
            step=self.step,
            epoch=epoch,
            elapsed=self.elapsed,
            mean_loss=self.loss_sum / self.count if self.count else math.nan,
            mean_ess=self.ess_sum / self.count if self.count else math.nan,
            grid_updated=self.grid_updated,
            skipped=self.skipped,
            updates=self.count + self.skipped,
        )
        self.loss_sum, self.ess_sum, self.count = 0.0, 0.0, 0
        self.grid_updated, self.skipped = False, 0
        return entry


@dataclass
class Run:
    """One training run in progress, as the trainer built it (see :func:`tkam.train.loop.build_run`).

    Attributes:
        config: the resolved experiment config.
        paths: the run folder's files.
        context: this process's place in the data-parallel run; rank 0 writes every file.
        device: where the model and data live.
        model, optimizer: what is trained.
        shard_rngs: one random stream per shard this rank processes (``shard_<j>``).
        shard_memories: beside each stream, the posterior sampler's adapted step sizes.
        shared_rng: the stream every rank shares (grid updates).
        schedule: when the grids are refitted.
        state: step, clock and log sums; restored on resume.
        train_x, test_x: the data on ``device``, ``(N, ...)`` and ``(M, ...)``.
        batch_size: the global batch size (at most the number of training items).
        steps_per_epoch, total_steps: the length of an epoch and of the run.
        resumed: whether the run continues from a checkpoint.
        metadata: string metadata for every safetensors file of the run (image shape, data set,
            resolved config as TOML, number of shards).
    """

    config: ExperimentConfig
    paths: RunPaths
    context: Context
    device: torch.device
    model: LatentModel
    optimizer: torch.optim.Optimizer
    shard_rngs: dict[str, torch.Generator]
    shard_memories: dict[str, StepSizeMemory]
    shared_rng: torch.Generator
    schedule: GridUpdateSchedule
    state: RunState
    train_x: torch.Tensor
    test_x: torch.Tensor
    batch_size: int
    steps_per_epoch: int
    total_steps: int
    resumed: bool
    metadata: dict[str, str]

    @property
    def image_shape(self) -> tuple[int, ...]:
        """Shape of one item: ``(C, H, W)`` for images, ``(n_v, L)`` for token sequences."""
        return tuple(int(s) for s in self.train_x.shape[1:])

    @property
    def is_main(self) -> bool:
        return self.context.is_main

    @property
    def log_interval(self) -> int:
        """Steps between log events: ``train.log_every``, or with 0 (the default) the smaller of
        an epoch and a tenth of the run (rounded up), see :func:`log_interval`."""
        return log_interval(self.config.train.log_every, self.steps_per_epoch, self.total_steps)


def log_interval(log_every: int, steps_per_epoch: int, total_steps: int) -> int:
    """The steps between two log events (and their checkpoints).

    ``log_every`` when it is positive; when it is 0, ``min(steps_per_epoch, ceil(total_steps /
    10))``: a run of many epochs logs at the end of every epoch, and a run shorter than ten
    epochs at least ten times (a 300-step run every 30 steps), so its loss curve has points.
    Besides these, step 1 and the last step are always logged.
    """
    if log_every > 0:
        return log_every
    return max(1, min(steps_per_epoch, math.ceil(total_steps / 10)))
