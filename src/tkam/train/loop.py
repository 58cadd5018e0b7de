"""The trainer (maths 5): build a run, step through it, stop cleanly; callbacks do the rest.

Exact resume: the data order of epoch ``e`` comes from a stream seeded by ``(seed, e)``, the
training streams' states are in every checkpoint, and logging/evaluation draw from their own streams,
so a run stopped at step k and resumed reaches bitwise the parameters of an uninterrupted run.

The trainer itself writes only ``config.toml``; the loss log, sample grids, checkpoints and the
final model and figures are :mod:`tkam.train.callbacks`, called at the events documented there.
The run folder's lock and its clearing for a fresh run are :mod:`tkam.train.folder`; what a
resume may change, and restoring a checkpoint, :mod:`tkam.train.resume`.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from tkam.argtypes import memory_problem
from tkam.build import build_model
from tkam.config import REFERENCE_DOMAINS, ExperimentConfig, dumps_toml
from tkam.data import ImageData, load_dataset
from tkam.files import atomic_path
from tkam.kan.grid import GridUpdateSchedule
from tkam.losses import LossOutput
from tkam.manifest import record
from tkam.model import LatentModel
from tkam.paths import RunPaths
from tkam.posterior.memory import StepSizeMemory
from tkam.train.callbacks import Callback, CallbackList, default_callbacks
from tkam.train.distributed import Context, intra_op_threads, shard_seed
from tkam.train.folder import prepare_folder, remove_empty_folder, take_lock
from tkam.train.lock import RunLock, TrainingRegistry
from tkam.train.memory import training_memory
from tkam.train.resume import apply_learning_rate, restore_checkpoint
from tkam.train.run import Run, RunState
from tkam.train.step import TrainingError, grid_latents, make_optimizer, train_step

# The per-update pieces live in tkam.train.step; they stay importable from here.
__all__ = [
    "RunStopped",
    "TrainingError",
    "absolute_data_root",
    "build_run",
    "fit",
    "grid_latents",
    "make_optimizer",
    "train_step",
]


def fit(
    config: ExperimentConfig,
    run_dir: str | Path,
    data: ImageData | None = None,
    resume: bool = False,
    progress: bool = True,
    callbacks: Sequence[Callback] | None = None,
    overwrite: bool = False,
) -> LatentModel:
    """Train a T-KAM model (or a baseline) into ``run_dir``.

    The process holds the run folder's lock (:class:`~tkam.train.lock.RunLock`) from the start to
    its exit: a second writer is refused at once.

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
        overwrite: delete the run files already in ``run_dir`` (config, log, checkpoints, samples,
            model, figures) and start afresh; other files are left alone.

    Returns:
        The trained model.

    Raises:
        TrainingError: for a run folder that cannot be started or resumed (in use by another
            process, not a folder, settings a resume cannot change), or an update that fails.
        KeyboardInterrupt: when SIGINT/SIGTERM stopped the run (after a checkpoint).
    """
    if resume and overwrite:
        raise TrainingError(
            "--resume continues the run in the folder, --overwrite deletes it: pick one"
        )
    root = Path(run_dir)
    if resume and not root.is_dir():
        raise TrainingError(f"nothing to resume: {root} is not a run folder (it does not exist)")
    config = absolute_data_root(config)
    created = not root.exists()
    context = Context.from_environment(config.train.accumulate, config.train.device)
    lock = RunLock(run_dir)
    threads, previous_threads = intra_op_threads(config.train.threads), torch.get_num_threads()
    registry = TrainingRegistry()
    finished = False
    try:
        if threads is not None:
            _check_threads(threads)
            torch.set_num_threads(threads)
        elif context.is_main:
            _advise_threads(registry.enter())
        take_lock(lock, context)
        if not resume and context.is_main:
            prepare_folder(RunPaths(root), overwrite)
        context.barrier()
        run = build_run(config, run_dir, data, resume, context)
        events = CallbackList(default_callbacks() if callbacks is None else callbacks)
        model = _train(run, events, progress)
        finished = True
        return model
    finally:
        torch.set_num_threads(previous_threads)
        registry.leave()
        lock.release()
        if created and not finished and context.is_main:
            remove_empty_folder(RunPaths(root))
        context.close()


def absolute_data_root(config: ExperimentConfig) -> ExperimentConfig:
    """``config`` with a relative ``data.root`` made absolute (against the current folder, as the
    data loaders read it), so that ``config.toml`` names the data from any folder."""
    root = config.data.root
    if not root or Path(root).expanduser().is_absolute():
        return config
    absolute = str(Path(root).expanduser().absolute())
    return dataclasses.replace(config, data=dataclasses.replace(config.data, root=absolute))


def _check_threads(threads: int) -> None:
    """Warn when ``train.threads`` asks for more threads than this process has cores."""
    cores = len(os.sched_getaffinity(0))
    if threads > cores:
        warnings.warn(
            f"train.threads = {threads} is more than the {cores} cores this process may use: "
            f"the extra threads only compete for them; set train.threads to at most {cores} "
            "(or 0, automatic)",
            stacklevel=3,
        )


def _advise_threads(others: list[int]) -> None:
    """Warn when other trainings share the cores and the threads were left to torch."""
    cores = len(os.sched_getaffinity(0))
    threads = torch.get_num_threads()
    if not others or os.environ.get("OMP_NUM_THREADS") or threads * (len(others) + 1) <= cores:
        return
    share = max(1, cores // (len(others) + 1))
    warnings.warn(
        f"{len(others)} other tkam training(s) run on this machine (pid "
        f"{', '.join(map(str, others))}) and each uses {threads} threads on {cores} cores: "
        f"processes that oversubscribe the cores slow each other down (two runs on two cores "
        f"took 8.6x longer per update than with one thread each); set OMP_NUM_THREADS={share} "
        f"or --set train.threads={share}",
        stacklevel=3,
    )


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
    checkpoints = _checkpoints_to_resume(paths, resume)
    device = context.device(config.train.device)
    _check_device(device)
    train_x, test_x, data_name = _training_data(config, data, device)
    config = _fitted_batch_size(config, len(train_x))
    image_shape = tuple(int(s) for s in train_x.shape[1:])
    model, optimizer = _model_and_optimizer(config, image_shape, device, check_prior=not resume)
    shard_rngs, shared_rng = _random_streams(config.train.seed, context, device)
    shard_memories = {name: StepSizeMemory() for name in shard_rngs}
    schedule = GridUpdateSchedule(config.grid_update.frequency, config.grid_update.decay)
    state = RunState()
    if resume:
        rngs = {**shard_rngs, "shared": shared_rng}
        restored = restore_checkpoint(checkpoints, model, optimizer, rngs, config, shard_memories)
        state = _resumed_state(restored, schedule, optimizer, model, config)
    steps_per_epoch, total_steps = _run_length(config, len(train_x), context, state.step, paths)
    if context.is_main:
        _write_config(paths, config)
    return Run(
        config=config,
        paths=paths,
        context=context,
        device=device,
        model=model,
        optimizer=optimizer,
        shard_rngs=shard_rngs,
        shard_memories=shard_memories,
        shared_rng=shared_rng,
        schedule=schedule,
        state=state,
        train_x=train_x,
        test_x=test_x,
        batch_size=config.train.batch_size,
        steps_per_epoch=steps_per_epoch,
        total_steps=total_steps,
        resumed=resume,
        metadata={
            "image_shape": ",".join(map(str, image_shape)),
            "dataset": data_name,
            "config": dumps_toml(config),
            "shards": str(context.num_shards),
        },
    )


def _checkpoints_to_resume(paths: RunPaths, resume: bool) -> list[Path]:
    """The folder's checkpoints, newest first: there must be some to resume, and none to start
    afresh.

    Raises:
        TrainingError: for a fresh run in a folder that holds one, or nothing to resume.
    """
    existing = paths.checkpoint_files()
    if existing and not resume:
        raise TrainingError(
            f"{paths.root} already holds a run ({existing[0].name}); pass --resume to continue it, "
            "--overwrite to replace it, or choose another --out"
        )
    if resume and not existing:
        where = paths.checkpoints.relative_to(paths.root)
        raise TrainingError(f"nothing to resume in {paths.root}: no {where}/step_*.safetensors")
    return existing


def _training_data(
    config: ExperimentConfig, data: ImageData | None, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, str]:
    """The training and test items on ``device`` (loaded from ``config.data`` when ``data`` is
    None) and the data set's name.

    Raises:
        TrainingError: when there are no training items.
    """
    data = data if data is not None else load_dataset(config.data)
    train_x, test_x = data.train.to(device), data.test.to(device)
    if len(train_x) == 0:
        raise TrainingError(f"data set {data.name!r} has no training images")
    return train_x, test_x, data.name


def _model_and_optimizer(
    config: ExperimentConfig, image_shape: tuple[int, ...], device: Any, check_prior: bool
) -> tuple[LatentModel, torch.optim.Optimizer]:
    """The model of ``config`` on ``device`` (after checking that training it fits in memory;
    its initial prior checked too when ``check_prior``; its kernels compiled with
    ``train.compile``) and its Adam optimiser."""
    train = config.train
    _check_memory(config, image_shape, device)
    model = _build_model(config, image_shape, device)
    if check_prior:
        _check_initial_prior(model, config)
    if train.compile:
        model.compile_kernels()
    return model, make_optimizer(model, train.learning_rate, train.adam_beta1)


def _random_streams(
    seed: int, context: Context, device: torch.device
) -> tuple[dict[str, torch.Generator], torch.Generator]:
    """One stream per shard this rank processes (``shard_<j>``, seeded by
    :func:`~tkam.train.distributed.shard_seed`) and the stream every rank shares (``seed + 2``)."""
    shard_rngs = {
        f"shard_{j}": torch.Generator(device=device).manual_seed(shard_seed(seed, j))
        for j in context.shard_ids
    }
    return shard_rngs, torch.Generator(device=device).manual_seed(seed + 2)


def _resumed_state(
    restored: dict[str, Any],
    schedule: GridUpdateSchedule,
    optimizer: torch.optim.Optimizer,
    model: LatentModel,
    config: ExperimentConfig,
) -> RunState:
    """The run state a checkpoint restored, with its grid schedule loaded and the optimiser set
    to the resumed config's learning rates (a restored optimiser keeps the rates it was saved
    with)."""
    state = RunState(**restored)
    schedule.load_state_dict(state.schedule)
    apply_learning_rate(optimizer, model, config.train.learning_rate)
    return state


def _run_length(
    config: ExperimentConfig, num_train: int, context: Context, reached: int, paths: RunPaths
) -> tuple[int, int]:
    """Steps per epoch and in the whole run (``train.max_steps``, or ``train.epochs`` epochs).

    Raises:
        TrainingError: for a batch smaller than the number of shards, or a run shorter than the
            step a resumed run has ``reached``.
    """
    train = config.train
    if train.batch_size < context.num_shards:
        raise TrainingError(
            f"train.batch_size {train.batch_size} is smaller than the {context.num_shards} shards "
            f"({context.world_size} processes x train.accumulate {context.accumulate})"
        )
    steps_per_epoch = math.ceil(num_train / train.batch_size)
    total_steps = train.max_steps or train.epochs * steps_per_epoch
    if total_steps < reached:
        length = (
            f"train.max_steps = {train.max_steps}"
            if train.max_steps
            else f"train.epochs = {train.epochs} ({total_steps} steps)"
        )
        raise TrainingError(
            f"{length} is below step {reached}, which the run in {paths.root} has reached: "
            "a resume cannot go back; nothing was changed (to continue, give a larger value; "
            "to train a shorter run, start a new one with another --out or --overwrite)"
        )
    return steps_per_epoch, total_steps


def _write_config(paths: RunPaths, config: ExperimentConfig) -> None:
    """``config.toml``, the resolved config, recorded in the folder's manifest."""
    with atomic_path(paths.config) as temporary:
        temporary.write_text(dumps_toml(config))
    record(paths.root, [paths.config])


def _fitted_batch_size(config: ExperimentConfig, num_train: int) -> ExperimentConfig:
    """``config`` with ``train.batch_size`` cut to the ``num_train`` training items when it is
    larger (with a warning), so that ``config.toml`` records the batch size the run uses."""
    if config.train.batch_size <= num_train:
        return config
    warnings.warn(
        f"train.batch_size = {config.train.batch_size} is larger than the {num_train} training "
        f"items: every batch is the whole training set, and config.toml records batch_size = "
        f"{num_train}",
        stacklevel=4,
    )
    train = dataclasses.replace(config.train, batch_size=num_train)
    return dataclasses.replace(config, train=train)


def _check_memory(config: ExperimentConfig, image_shape: tuple[int, ...], device: Any) -> None:
    """Refuse a model whose estimated training memory (:func:`tkam.train.memory.training_memory`)
    exceeds the machine's (or the GPU's), naming the widths, before anything is allocated."""
    nbytes, largest = training_memory(config, image_shape)
    what = (
        f"the model (prior.widths = {list(config.prior.widths)}, generator.widths = "
        f"{list(config.generator.widths)}) and one training update"
    )
    fix = (
        f"make the widths smaller; the largest part is {largest.what}, about "
        f"{largest.nbytes / 2**30:.1f} GiB"
    )
    problem = memory_problem(what, nbytes, fix, device)
    if problem:
        raise TrainingError(problem)


def _build_model(
    config: ExperimentConfig, image_shape: tuple[int, ...], device: Any
) -> LatentModel:
    """The model of ``config`` on ``device``; a model too large for memory is a
    :class:`TrainingError` naming the widths, not an allocator's traceback."""
    try:
        return build_model(config, image_shape).to(device)
    except (MemoryError, torch.OutOfMemoryError, RuntimeError) as exc:
        if not isinstance(exc, MemoryError | torch.OutOfMemoryError) and not _allocation(exc):
            raise
        raise TrainingError(
            f"the model does not fit in memory (prior.widths = {list(config.prior.widths)}, "
            f"generator.widths = {list(config.generator.widths)}; {_first_line(exc)}): make the "
            "widths smaller"
        ) from None


def _allocation(exc: BaseException) -> bool:
    """Whether ``exc`` is an allocator's failure (torch raises these as RuntimeError)."""
    text = str(exc).lower()
    return "can't allocate" in text or "out of memory" in text or "failed to allocate" in text


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _check_device(device: torch.device) -> None:
    """Refuse a CUDA device this machine does not have, naming ``train.device``."""
    if device.type != "cuda":
        return
    available = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if (device.index or 0) >= available:
        have = f"{available} CUDA GPU(s)" if available else "no CUDA GPU (or a CPU build of torch)"
        raise TrainingError(f"train.device = {device}: this machine has {have}; use cpu or auto")


def _check_initial_prior(model: LatentModel, config: ExperimentConfig) -> None:
    """Refuse a prior that gives non-finite log-densities before any training (a domain too
    wide for float32), naming the setting, rather than failing at step 1. Draws from its own
    stream: the run's streams are untouched."""
    prior = model.prior
    if not prior.exact_normaliser:
        return
    device = next(model.parameters()).device
    with torch.no_grad():
        z = prior.sample(16, torch.Generator(device=device).manual_seed(0))
        finite = bool(torch.isfinite(prior.log_prior(z, normalise=True)).all())
    if finite:
        return
    assert config.prior.grid_range is not None  # PriorConfig resolves it
    domain = list(config.prior.grid_range)
    cause = (
        f"its domain prior.grid_range = {domain} is too wide for float32 (the KAN energies "
        "over it overflow); narrow it (the packaged configs use about [-1.5, 1.5])"
        if REFERENCE_DOMAINS[config.prior.reference] is None
        else "check prior.init_tau and the prior's scales"
    )
    raise TrainingError(
        f"the initial prior ({config.prior.reference} reference) gives non-finite "
        f"log-densities before any training: {cause}"
    )


def _train(run: Run, callbacks: Callback, progress: bool) -> LatentModel:
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
            _one_step(run, callbacks, bar, stop, start_time)
    except (ValueError, MemoryError, RuntimeError) as exc:
        problem = None if isinstance(exc, TrainingError) else _failure(run, exc)
        if problem is None:
            raise
        raise TrainingError(problem) from None
    finally:
        stop.restore()
        bar.close()
    if state.applied == 0 and state.step > 0:
        raise TrainingError(
            f"every update of this run was skipped (non-finite loss or gradients, "
            f"train.skip_nonfinite): nothing was trained and no model is written; "
            f"{_kept(run)}. Lower train.learning_rate or check the data and the prior's domain"
        )
    diverged = _diverged(state)
    if diverged:
        raise TrainingError(
            f"the loss diverged ({diverged}): nothing usable was trained and no model is written; "
            f"{_kept(run)}. Lower train.learning_rate (now {train.learning_rate:g}) and start "
            "again with --overwrite"
        )
    run.model.eval()
    callbacks.on_end(run)
    run.context.barrier()
    return run.model


#: A run whose last logged loss is this many times its first (in absolute value) has diverged.
DIVERGENCE_FACTOR = 100.0


def _diverged(state: RunState) -> str | None:
    """Why the run's loss diverged (its last logged loss non-finite, or ``DIVERGENCE_FACTOR``
    times its first), or None."""
    first, last = state.first_loss, state.last_loss
    if not math.isfinite(first) or state.applied == 0:
        return None
    if not math.isfinite(last):
        return f"the last logged loss is {last}, the first was {first:.6g}"
    if abs(last) > DIVERGENCE_FACTOR * abs(first) > 0:
        return (
            f"the last logged loss {last:.4g} is {abs(last / first):.3g} times the first, "
            f"{first:.6g}"
        )
    return None


def _failure(run: Run, exc: BaseException) -> str | None:
    """One line for an error raised while training (a model that no longer fits in memory, a
    model the updates made unusable), or None for an error this cannot explain."""
    step = run.state.step + 1
    if isinstance(exc, MemoryError) or _allocation(exc):
        train = run.config.train
        return (
            f"step {step} does not fit in memory ({_first_line(exc)}): the model "
            f"(prior.widths = {list(run.config.prior.widths)}, generator.widths = "
            f"{list(run.config.generator.widths)}) or the batch (train.batch_size = "
            f"{train.batch_size}, train.importance_samples = {train.importance_samples}) is too "
            f"large; make them smaller; {_kept(run)}"
        )
    if not isinstance(exc, ValueError):
        return None
    with torch.no_grad():
        largest = max(
            (float(p.abs().max()) for p in run.model.parameters() if p.numel()), default=0
        )
    if math.isfinite(largest) and largest < _DIVERGED_PARAMETER:
        return None
    return (
        f"the model cannot be evaluated after step {run.state.step}: the updates diverged (its "
        f"largest parameter is {largest:.3g}; train.learning_rate = "
        f"{run.config.train.learning_rate:g} is far too large); lower train.learning_rate and "
        f"start again with --overwrite; {_kept(run)}"
    )


# Parameters of a KAN model stay near 1; one beyond this means the updates ran away.
_DIVERGED_PARAMETER = 1e6


def _one_step(
    run: Run, callbacks: Callback, bar: Any, stop: _StopRequest, start_time: float
) -> None:
    """One update and the callback events that fall on it."""
    state, train = run.state, run.config.train
    if stop.requested(run.context):
        callbacks.on_checkpoint(run)
        raise RunStopped(
            f"stopped by a signal after step {state.step}; "
            f"resume with --resume (checkpoint in {run.paths.checkpoints})",
            stop.signal or signal.SIGINT,
        )
    step = state.step + 1
    epoch, position = divmod(step - 1, run.steps_per_epoch)
    if step == 1 and _grid_update_due(run, step):
        bar.set_description_str(_FIRST_GRID_UPDATE)
    try:
        out = _update(run, step, epoch, position)
    except TrainingError as exc:
        raise TrainingError(f"{exc}; {_kept(run)}") from None
    state.step = step
    state.add(out)
    state.elapsed = time.perf_counter() - start_time
    if step == 1:
        bar.set_description_str("train", refresh=False)
    bar.update(1)
    bar.set_postfix(_postfix(out))
    callbacks.on_step(run, out)
    periodic = step % run.log_interval == 0  # with log_every = 0: at most one epoch apart
    last = step == run.total_steps
    if step == 1 or periodic or last:
        entry = state.close_interval(epoch if step > 1 else 0)
        if step == 1 and entry.mean_ess < 2.0:  # NaN (no ESS) compares False
            bar.write(_LOW_ESS.format(ess=entry.mean_ess, n=train.importance_samples))
        if entry.skipped:
            bar.write(
                f"step {step}: {entry.skipped} of the {entry.updates} updates since the "
                "last log were skipped (non-finite loss or gradients)"
            )
        state.last_loss = entry.mean_loss
        if math.isnan(state.first_loss):
            state.first_loss = entry.mean_loss
        callbacks.on_log(run, entry)
        callbacks.on_checkpoint(run)
    elif train.checkpoint_every > 0 and step % train.checkpoint_every == 0:
        callbacks.on_checkpoint(run)


_LOW_ESS = (
    "note: mean ESS {ess:.2f} of {n}: the importance weights sit on about one prior sample, as "
    "is usual for images (the log-likelihoods of prior samples differ by hundreds of nats); "
    "see the README, 'Reading loss.csv'"
)

# Shown on the progress bar during step 1 (the bar's description is cleared after it).
_FIRST_GRID_UPDATE = "first grid update (one-off least-squares refits)"


def _grid_update_due(run: Run, step: int) -> bool:
    model = run.model
    return run.schedule.due(step) and (model.update_prior_grid or model.update_generator_grid)


def _kept(run: Run) -> str:
    """What a failed run leaves to resume from."""
    kept = run.paths.checkpoint_files()
    if not kept:
        return "no checkpoint was written yet"
    return f"the last checkpoint ({kept[0].name}) is kept: resume from it with --resume"


def _update(run: Run, step: int, epoch: int, position: int) -> LossOutput:
    """Update ``step``: the epoch's batch at ``position``, a grid update when one is due (drawn
    from the shared stream), then one Adam step (drawn from the shard streams)."""
    model, config = run.model, run.config
    order = _epoch_order(len(run.train_x), config.train.seed, epoch)
    size = run.batch_size
    batch = run.train_x[order[position * size : (position + 1) * size].to(run.device)]
    restore = None
    if _grid_update_due(run, step):
        if config.grid_update.compat_discard_refit:
            restore = _restorer(model)
        latents = grid_latents(model, batch, config, run.shared_rng)
        run.state.grid_updated |= model.update_grids(latents)
        run.schedule.mark(step)
    rngs, memories = list(run.shard_rngs.values()), list(run.shard_memories.values())
    return train_step(
        model, run.optimizer, batch, config, rngs, step, run.total_steps, run.context, memories,
        before_update=restore,
    )  # fmt: skip


def _restorer(model: torch.nn.Module) -> Callable[[], None]:
    """A function that puts back the parameters as they are now (the grid update changes only
    coefficients; grids and bandwidths stay updated)."""
    saved = [(p, p.detach().clone()) for p in model.parameters()]

    def restore() -> None:
        with torch.no_grad():
            for param, value in saved:
                param.copy_(value)

    return restore


@functools.lru_cache(maxsize=2)
def _epoch_order(num: int, seed: int, epoch: int) -> torch.Tensor:
    """The epoch's batch order, drawn once per epoch (a pure function of its arguments; the
    cache keeps the running epoch's, so the steps of an epoch only slice it)."""
    return torch.randperm(num, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))


def _postfix(out: LossOutput) -> dict[str, str]:
    postfix = {"loss": f"{float(out.loss):.4g}"}
    if "ess" in out.metrics:
        postfix["ess"] = f"{out.metrics['ess']:.1f}"
    return postfix


class RunStopped(KeyboardInterrupt):
    """SIGINT or SIGTERM stopped the run (after a checkpoint, unless a second signal came).

    Attributes:
        signum: the signal's number (``tkam`` exits with ``128 + signum``, as the shell does).
    """

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.signum = int(signum)


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
            raise RunStopped("stopped at once by a second signal", signum)
        self.signal = signum
        print(
            f"\ntkam: {signal.Signals(signum).name}: stopping after the current step with a "
            "checkpoint; send it again to stop at once",
            file=sys.stderr,
            flush=True,
        )

    def requested(self, context: Context) -> bool:
        """Whether any rank got a signal (collective, so that all ranks stop at the same step)."""
        flag = context.sum_(torch.tensor([float(self.signal is not None)]))
        return float(flag[0]) > 0

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
