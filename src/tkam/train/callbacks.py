"""The side jobs of training as callbacks: the loss log, sample grids, checkpoints, final files.

The trainer (:func:`tkam.train.loop.fit`) calls these events, on every callback in list order:

* ``on_start(run)``: once, after the model, optimiser and random streams are built (and restored
  on resume) and ``config.toml`` is written, before the first update.
* ``on_step(run, output)``: after every update; ``run.state.step`` is the update just done.
* ``on_log(run, entry)``: at every log event: step 1, every ``run.log_interval`` steps
  (``train.log_every``; when it is 0, the smaller of an epoch and a tenth of the run) and the
  last step.
* ``on_checkpoint(run)``: at every save point: right after each log event, every
  ``train.checkpoint_every`` steps, and when SIGINT/SIGTERM stops the run (the trainer then raises
  :class:`KeyboardInterrupt`). Called on every rank, as saving is collective.
* ``on_end(run)``: once, after the last update, with the model in eval mode.

A callback runs on rank 0 only unless it sets ``all_ranks`` (a collective one, as
:class:`Checkpoints`). Callbacks draw random numbers only from streams they seed themselves, never
from the run's training streams, so which callbacks a run has changes none of its parameters.
Every file is written through :func:`tkam.files.atomic_path`: a reader (or a resume after a crash)
never sees half of one.
"""

from __future__ import annotations

import csv
import math
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch

from tkam.files import atomic_path, file_sha256
from tkam.losses import LossOutput
from tkam.manifest import forget, record
from tkam.model import LatentModel
from tkam.plots import (
    plot_losses,
    plot_prior,
    readable_scale,
    save_evolution_gif,
    save_image_grid,
    snapshot_frames,
)
from tkam.prior.learned import component_divergences, summarise
from tkam.train.checkpoint import atomic_save, save_checkpoint
from tkam.train.run import LogEntry, Run

__all__ = [
    "LOSS_COLUMNS",
    "Callback",
    "CallbackList",
    "Checkpoints",
    "FinalArtifacts",
    "LossLog",
    "SampleImages",
    "default_callbacks",
]

LOSS_COLUMNS = [
    "Time (s)",
    "Epoch",
    "Train MLE Loss",
    "Test MSE Loss",
    "Grid Updated",
    "Step",
    "Mean ESS",
    "Skipped Steps",
    "Prior TV",
]
# Columns are only ever appended: the header of an older loss.csv is a prefix of LOSS_COLUMNS, at
# least up to "Mean ESS" (files from before "Skipped Steps" and "Prior TV" were added).
_OLDEST_HEADER = LOSS_COLUMNS.index("Mean ESS") + 1


class Callback:
    """Base of training callbacks: every event does nothing until a subclass overrides it."""

    all_ranks: bool = False
    """Whether the callback runs on every rank (collective work), not only on rank 0."""

    def on_start(self, run: Run) -> None:
        """Before the first update (of this process: after the checkpoint on resume)."""

    def on_step(self, run: Run, output: LossOutput) -> None:
        """After every update, with its loss and metrics (``skipped`` is 1 for a skipped one)."""

    def on_log(self, run: Run, entry: LogEntry) -> None:
        """At a log event, with the means since the previous one."""

    def on_checkpoint(self, run: Run) -> None:
        """At a save point (after each log event, every ``train.checkpoint_every`` steps, and
        before a signal stops the run)."""

    def on_end(self, run: Run) -> None:
        """After the last update of a run that finished."""


class CallbackList(Callback):
    """Several callbacks as one: each event goes to them in order (on ranks other than 0, only to
    those with ``all_ranks``)."""

    all_ranks = True

    def __init__(self, callbacks: Sequence[Callback]) -> None:
        self.callbacks = list(callbacks)

    def _active(self, run: Run) -> list[Callback]:
        return [c for c in self.callbacks if run.is_main or c.all_ranks]

    def on_start(self, run: Run) -> None:
        for callback in self._active(run):
            callback.on_start(run)

    def on_step(self, run: Run, output: LossOutput) -> None:
        for callback in self._active(run):
            callback.on_step(run, output)

    def on_log(self, run: Run, entry: LogEntry) -> None:
        for callback in self._active(run):
            callback.on_log(run, entry)

    def on_checkpoint(self, run: Run) -> None:
        for callback in self._active(run):
            callback.on_checkpoint(run)

    def on_end(self, run: Run) -> None:
        for callback in self._active(run):
            callback.on_end(run)


@torch.no_grad()
def _test_mse(model: LatentModel, test: torch.Tensor, batch_size: int, seed: int) -> float:
    """Mean over test batches of the MSE against as many unpaired fresh samples (maths 5)."""
    if len(test) == 0:
        return float("nan")
    rng = torch.Generator(device=test.device).manual_seed(seed)
    total, batches = 0.0, 0
    for start in range(0, len(test), batch_size):
        x = test[start : start + batch_size]
        samples = model.sample(len(x), rng)
        total += float((samples - x).square().mean())
        batches += 1
    return total / batches


@torch.no_grad()
def _prior_tv(model: LatentModel) -> str:
    """The median total-variation distance of the prior's components from pi_0 (see
    :mod:`tkam.prior.learned`), empty for a prior without components. One quadrature table, the
    one the test MSE's samples just cached."""
    if not model.prior.has_components:
        return ""
    value = summarise(*component_divergences(model.prior))["tv_median"]
    return f"{value:.4g}" if math.isfinite(value) else ""


def _rows_up_to(path: Path, step: int) -> list[list[str]]:
    """The rows of a ``loss.csv`` logged at or before ``step`` (none for another kind of file),
    in the current columns: a file written before some columns were added gets empty cells."""
    if not path.exists():
        return []
    with path.open(newline="") as handle:
        rows = list(csv.reader(handle))
    header = rows[0][: len(LOSS_COLUMNS)] if rows else []
    if len(header) < _OLDEST_HEADER or header != LOSS_COLUMNS[: len(header)]:
        return []
    column = rows[0].index("Step")
    # A crash while appending can only cut the last row, always one after the checkpoint's step.
    whole = [r for r in rows[1:] if len(r) > column and r[column].isdigit()]
    width = len(LOSS_COLUMNS)
    return [(r + [""] * (width - len(r)))[:width] for r in whole if int(r[column]) <= step]


class LossLog(Callback):
    """``loss.csv``: one row per log event with the wall time, epoch, mean training loss, test MSE,
    whether the grids were updated, the step, the mean ESS, the skipped updates (maths 5) and the
    median total-variation distance of the prior's components from pi_0 (empty for a prior without
    components).

    The test MSE compares the test set with fresh samples drawn from a stream seeded by
    ``(train.seed, step)``. On resume the rows after the checkpoint's step are dropped: a run
    killed after logging but before its checkpoint would otherwise log those steps twice; the rows
    kept from a file written before a column was added get an empty cell in it.
    """

    def on_start(self, run: Run) -> None:
        path = run.paths.loss_csv
        if run.resumed and run.state.step > 0 and not path.is_file():
            warnings.warn(
                f"{path} is missing: the run resumes at step {run.state.step}, and the new "
                f"loss.csv holds only the rows from there on (the earlier rows are lost)",
                stacklevel=2,
            )
        kept = _rows_up_to(path, run.state.step) if run.resumed else []
        with atomic_path(path) as temporary, temporary.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(LOSS_COLUMNS)
            writer.writerows(kept)
        record(run.paths.root, [path])

    def on_log(self, run: Run, entry: LogEntry) -> None:
        seed = run.config.train.seed * 7 + entry.step
        test_mse = _test_mse(run.model, run.test_x, run.batch_size, seed=seed)
        ess = f"{entry.mean_ess:.4g}" if math.isfinite(entry.mean_ess) else ""
        # An interval whose every update was skipped has no loss: the cell stays empty.
        loss = f"{entry.mean_loss:.6g}" if math.isfinite(entry.mean_loss) else ""
        row = [
            f"{entry.elapsed:.3f}",
            entry.epoch,
            loss,
            f"{test_mse:.6g}",
            int(entry.grid_updated),
            entry.step,
            ess,
            entry.skipped,
            _prior_tv(run.model),
        ]
        with run.paths.loss_csv.open("a", newline="") as handle:
            csv.writer(handle).writerow(row)


class SampleImages(Callback):
    """``samples/step_<step>.png`` at every log event: a grid of ``train.num_plot_samples``
    samples, drawn from a stream seeded by ``train.seed`` at every event so that the grids show
    how the same draws evolve. For token sequences, ``samples/step_<step>.txt`` holds the most
    likely token index at every position, one sample per line."""

    def on_log(self, run: Run, entry: LogEntry) -> None:
        rng = torch.Generator(device=run.device).manual_seed(run.config.train.seed)
        samples = run.model.sample(run.config.train.num_plot_samples, rng).float().cpu()
        shape = run.image_shape
        if len(shape) == 3 and shape[0] in (1, 3):
            path = run.paths.sample_grid(entry.step)
            with atomic_path(path, suffix=".png") as temporary:
                save_image_grid(
                    samples,
                    temporary,
                    title=f"step {entry.step}",
                    scale=readable_scale(*shape[1:]),
                    metadata={"tkam model step": str(entry.step)},
                )
        else:
            tokens = samples.argmax(dim=1).tolist()
            text = "\n".join(" ".join(map(str, row)) for row in tokens)
            path = run.paths.sample_grid(entry.step, ".txt")
            with atomic_path(path) as temporary:
                temporary.write_text(text + "\n")
        record(run.paths.root, [path])


class Checkpoints(Callback):
    """``checkpoints/step_<step>.safetensors`` at every save point, keeping the newest ``keep``.

    Each holds the model, the optimiser's moments, every shard's random stream and sampler memory (gathered from all
    ranks) and the shared one, and the run state with the grid schedule: all an exact resume needs.
    """

    all_ranks = True

    def __init__(self, keep: int = 3) -> None:
        if keep < 1:
            raise ValueError(f"Checkpoints keeps at least 1 file, not {keep}")
        self.keep = keep

    def on_checkpoint(self, run: Run) -> None:
        # Collective: every rank contributes its streams; rank 0 writes.
        states = run.context.gather_states([rng.get_state() for rng in run.shard_rngs.values()])
        memories = run.context.gather_vectors([m.state() for m in run.shard_memories.values()])
        if not run.is_main:
            return
        rng_states = {f"shard_{j}": state for j, state in enumerate(states)}
        samplers = {f"shard_{j}": memory for j, memory in enumerate(memories)}
        rng_states["shared"] = run.shared_rng.get_state()
        state = {**run.state.to_json(), "schedule": run.schedule.state_dict()}
        path = run.paths.checkpoint(run.state.step)
        save_checkpoint(
            path, run.model, run.optimizer, rng_states, state, run.metadata, samplers=samplers
        )
        record(run.paths.root, [path])
        dropped = run.paths.checkpoint_files()[self.keep :]
        for old in dropped:
            old.unlink(missing_ok=True)
        forget(run.paths.root, dropped)


class FinalArtifacts(Callback):
    """The files of a finished run: ``model.safetensors`` (the trained weights, with the run's
    metadata and final step), ``prior.png`` (priors made of univariate components only),
    ``loss.png`` (when there is a ``loss.csv``) and ``evolution.gif`` (when there are sample
    grids)."""

    def on_end(self, run: Run) -> None:
        paths, figures = run.paths, run.paths.figures
        metadata = {**run.metadata, "step": str(run.state.step)}
        atomic_save(dict(run.model.state_dict().items()), paths.model, metadata)
        written = [paths.model]
        figure = {
            "tkam model": str(paths.model),
            "tkam model step": str(run.state.step),
            "tkam model sha256": file_sha256(paths.model),
        }
        if run.model.prior.has_components:
            with atomic_path(figures.prior, suffix=".png") as temporary:
                plot_prior(run.model.prior.export(), temporary, metadata=figure)
            written.append(figures.prior)
        if paths.loss_csv.exists():
            with atomic_path(figures.losses, suffix=".png") as temporary:
                plot_losses(paths.loss_csv, temporary, metadata=figure)
            written.append(figures.losses)
        if snapshot_frames(paths.samples):
            save_evolution_gif(paths.samples, figures.evolution)
            written.append(figures.evolution)
        record(paths.root, written)


def default_callbacks() -> list[Callback]:
    """The callbacks of ``tkam train``: every file of a run folder but ``config.toml``."""
    return [LossLog(), SampleImages(), Checkpoints(), FinalArtifacts()]
