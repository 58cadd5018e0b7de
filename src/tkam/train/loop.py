"""The trainer (spec section 5): build a run, step through it, stop cleanly; callbacks do the rest.

Exact resume: the data order of epoch ``e`` comes from a stream seeded by ``(seed, e)``, the
training streams' states are in every checkpoint, and logging/evaluation draw from their own streams,
so a run stopped at step k and resumed reaches bitwise the parameters of an uninterrupted run.

The trainer itself writes only ``config.toml``; the loss log, sample grids, checkpoints and the
final model and figures are :mod:`tkam.train.callbacks`, called at the events documented there.
"""

from __future__ import annotations

import math
import signal
import threading
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from tkam.build import build_model
from tkam.config import ExperimentConfig, dumps_toml
from tkam.data import ImageData, load_dataset
from tkam.files import atomic_path
from tkam.kan.grid import GridUpdateSchedule
from tkam.losses import LossOutput
from tkam.model import TKAM
from tkam.train.callbacks import Callback, CallbackList, default_callbacks
from tkam.train.checkpoint import CheckpointError, latest_checkpoint, load_checkpoint
from tkam.train.distributed import Context, shard_seed
from tkam.train.run import Run, RunPaths, RunState
from tkam.train.step import TrainingError, grid_latents, make_optimizer, train_step

# The per-update pieces live in tkam.train.step; they stay importable from here.
__all__ = ["TrainingError", "build_run", "fit", "grid_latents", "make_optimizer", "train_step"]


def fit(
    config: ExperimentConfig,
    run_dir: str | Path,
    data: ImageData | None = None,
    resume: bool = False,
    progress: bool = True,
    callbacks: Sequence[Callback] | None = None,
) -> TKAM:
    """Train a T-KAM model (or a baseline) into ``run_dir``.

    With the default callbacks the folder receives ``config.toml``, ``loss.csv``,
    ``checkpoints/``, ``samples/*.png``, ``model.safetensors``, ``prior.png``, ``loss.png`` and
    ``evolution.gif``.

    Args:
        config: the resolved experiment config.
        run_dir: output folder; must not hold a run unless ``resume``.
        data: the data (loaded from ``config.data`` when omitted).
        resume: continue from the newest readable checkpoint in ``run_dir/checkpoints``.
        progress: show a progress bar.
        callbacks: the side jobs, in order; default :func:`~tkam.train.callbacks.default_callbacks`
            (without :class:`~tkam.train.callbacks.Checkpoints` a run cannot be resumed).

    Returns:
        The trained model.

    Raises:
        TrainingError: for a run folder that cannot be started or resumed, or an update that fails.
        KeyboardInterrupt: when SIGINT/SIGTERM stopped the run (after a checkpoint).
    """
    context = Context.from_environment(config.train.accumulate, config.train.device)
    try:
        run = build_run(config, run_dir, data, resume, context)
        events = CallbackList(default_callbacks() if callbacks is None else callbacks)
        return _train(run, events, progress)
    finally:
        context.close()


def build_run(
    config: ExperimentConfig,
    run_dir: str | Path,
    data: ImageData | None = None,
    resume: bool = False,
    context: Context | None = None,
) -> Run:
    """Everything a run needs before its first step: the model, optimiser and random streams
    (restored from the newest readable checkpoint on resume), and ``config.toml`` in the folder.

    Random streams: one per shard (its own samples and noise, seeded by
    :func:`~tkam.train.distributed.shard_seed`) and one that every rank shares for grid updates
    (seeded by ``train.seed + 2``).
    """
    context = context or Context(accumulate=config.train.accumulate)
    paths = RunPaths(Path(run_dir))
    existing = latest_checkpoint(paths.checkpoints)
    if existing and not resume:
        raise TrainingError(
            f"{paths.root} already holds a run ({existing[0].name}); pass --resume to continue it "
            "or choose another --out"
        )
    if resume and not existing:
        raise TrainingError(f"nothing to resume in {paths.root}: no checkpoints/step_*.safetensors")
    train = config.train
    device = context.device(train.device)
    data = data if data is not None else load_dataset(config.data)
    train_x, test_x = data.train.to(device), data.test.to(device)
    if len(train_x) == 0:
        raise TrainingError(f"data set {data.name!r} has no training images")
    image_shape = tuple(int(s) for s in train_x.shape[1:])
    model = build_model(config, image_shape).to(device)
    if train.compile:
        model.compile_kernels()
    optimizer = make_optimizer(model, train.learning_rate)
    shard_rngs = {
        f"shard_{j}": torch.Generator(device=device).manual_seed(shard_seed(train.seed, j))
        for j in context.shard_ids
    }
    shared_rng = torch.Generator(device=device).manual_seed(train.seed + 2)
    schedule = GridUpdateSchedule(config.grid_update.frequency, config.grid_update.decay)
    state = RunState()
    if resume:
        rngs = {**shard_rngs, "shared": shared_rng}
        state = RunState(**_restore(existing, model, optimizer, rngs))
        schedule.load_state_dict(state.schedule)
    if context.is_main:
        with atomic_path(paths.config) as temporary:
            temporary.write_text(dumps_toml(config))

    batch_size = min(train.batch_size, len(train_x))
    if batch_size < context.num_shards:
        raise TrainingError(
            f"train.batch_size {batch_size} is smaller than the {context.num_shards} shards "
            f"({context.world_size} processes x train.accumulate {context.accumulate})"
        )
    steps_per_epoch = math.ceil(len(train_x) / batch_size)
    return Run(
        config=config,
        paths=paths,
        context=context,
        device=device,
        model=model,
        optimizer=optimizer,
        shard_rngs=shard_rngs,
        shared_rng=shared_rng,
        schedule=schedule,
        state=state,
        train_x=train_x,
        test_x=test_x,
        batch_size=batch_size,
        steps_per_epoch=steps_per_epoch,
        total_steps=train.max_steps or train.epochs * steps_per_epoch,
        resumed=resume,
        metadata={
            "image_shape": ",".join(map(str, image_shape)),
            "dataset": data.name,
            "config": dumps_toml(config),
            "shards": str(context.num_shards),
        },
    )


def _restore(
    checkpoints: list[Path],
    model: TKAM,
    optimizer: torch.optim.Optimizer,
    rngs: dict[str, torch.Generator],
) -> dict[str, Any]:
    """Load the newest readable checkpoint (newest first in ``checkpoints``); its run state."""
    for path in checkpoints:
        try:
            return load_checkpoint(path, model, optimizer, rngs)
        except CheckpointError as exc:
            warnings.warn(f"skipping unreadable checkpoint: {exc}", stacklevel=3)
    raise TrainingError(f"no readable checkpoint in {checkpoints[0].parent}")


def _train(run: Run, callbacks: Callback, progress: bool) -> TKAM:
    """The step loop: batches, grid updates, Adam updates, and the callback events."""
    state, train = run.state, run.config.train
    callbacks.on_start(run)
    bar = tqdm(
        total=run.total_steps,
        initial=state.step,
        disable=not (progress and run.is_main),
        desc="train",
        unit="step",
    )
    start_time = time.perf_counter() - state.elapsed
    run.model.train()
    stop = _StopRequest()
    try:
        while state.step < run.total_steps:
            if stop.requested(run.context):
                callbacks.on_checkpoint(run)
                raise KeyboardInterrupt(
                    f"stopped by a signal after step {state.step}; "
                    f"resume with --resume (checkpoint in {run.paths.checkpoints})"
                )
            step = state.step + 1
            epoch, position = divmod(step - 1, run.steps_per_epoch)
            out = _update(run, step, epoch, position)
            state.step = step
            state.add(out)
            state.elapsed = time.perf_counter() - start_time
            bar.update(1)
            bar.set_postfix(_postfix(out))
            callbacks.on_step(run, out)
            end_of_epoch = position == run.steps_per_epoch - 1
            periodic = train.log_every > 0 and step % train.log_every == 0
            last = step == run.total_steps
            if step == 1 or periodic or (train.log_every == 0 and end_of_epoch) or last:
                callbacks.on_log(run, state.close_interval(epoch if step > 1 else 0))
                callbacks.on_checkpoint(run)
            elif train.checkpoint_every > 0 and step % train.checkpoint_every == 0:
                callbacks.on_checkpoint(run)
    finally:
        stop.restore()
        bar.close()
    run.model.eval()
    callbacks.on_end(run)
    run.context.barrier()
    return run.model


def _update(run: Run, step: int, epoch: int, position: int) -> LossOutput:
    """Update ``step``: the epoch's batch at ``position``, a grid update when one is due (drawn
    from the shared stream), then one Adam step (drawn from the shard streams)."""
    model, config = run.model, run.config
    order = _epoch_order(len(run.train_x), config.train.seed, epoch)
    size = run.batch_size
    batch = run.train_x[order[position * size : (position + 1) * size].to(run.device)]
    if run.schedule.due(step) and (model.update_prior_grid or model.update_generator_grid):
        latents = grid_latents(model, batch, config, run.shared_rng)
        run.state.grid_updated |= model.update_grids(latents)
        run.schedule.mark(step)
    rngs = list(run.shard_rngs.values())
    return train_step(model, run.optimizer, batch, config, rngs, step, run.total_steps, run.context)


def _epoch_order(num: int, seed: int, epoch: int) -> torch.Tensor:
    return torch.randperm(num, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))


def _postfix(out: LossOutput) -> dict[str, str]:
    postfix = {"loss": f"{float(out.loss):.4g}"}
    if "ess" in out.metrics:
        postfix["ess"] = f"{out.metrics['ess']:.1f}"
    return postfix


class _StopRequest:
    """SIGINT/SIGTERM ask the loop to stop at the next step boundary, after a checkpoint."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self._previous: dict[int, Any] = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signal is not None:  # a second signal stops at once
            raise KeyboardInterrupt
        self.signal = signum

    def requested(self, context: Context) -> bool:
        """Whether any rank got a signal (collective, so that all ranks stop at the same step)."""
        flag = context.sum_(torch.tensor([float(self.signal is not None)]))
        return float(flag[0]) > 0

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
