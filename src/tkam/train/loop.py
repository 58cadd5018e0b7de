"""Training: one step, and the loop that logs, checkpoints and resumes exactly (spec section 5).

Exact resume: the data order of epoch ``e`` comes from a stream seeded by ``(seed, e)``, the
training stream's state is in every checkpoint, and logging/evaluation draw from their own streams,
so a run stopped at step k and resumed reaches bitwise the parameters of an uninterrupted run.
"""

from __future__ import annotations

import csv
import math
import signal
import threading
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from tkam.build import build_model
from tkam.config import ExperimentConfig, dumps_toml
from tkam.data import ImageData, load_dataset
from tkam.kan.grid import GridUpdateSchedule
from tkam.losses import LossOutput, compute_loss, posterior_samples, posterior_settings
from tkam.model import TKAM
from tkam.plots import (
    plot_losses,
    plot_prior,
    readable_scale,
    save_evolution_gif,
    save_image_grid,
    snapshot_frames,
)
from tkam.train.checkpoint import (
    CheckpointError,
    atomic_save,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from tkam.train.distributed import Context, shard_seed

__all__ = ["TrainingError", "RunState", "train_step", "fit", "make_optimizer", "grid_latents"]

LOSS_COLUMNS = [
    "Time (s)",
    "Epoch",
    "Train MLE Loss",
    "Test MSE Loss",
    "Grid Updated",
    "Step",
    "Mean ESS",
    "Skipped Steps",
]
KEEP_CHECKPOINTS = 3


class TrainingError(RuntimeError):
    """Training cannot go on (non-finite loss, a run folder that is not resumable, ...)."""


@dataclass
class RunState:
    """Plain run state stored in checkpoints beside the tensors."""

    step: int = 0
    elapsed: float = 0.0
    schedule: dict[str, float] = field(default_factory=dict)
    loss_sum: float = 0.0
    ess_sum: float = 0.0
    count: int = 0
    grid_updated: bool = False
    skipped: int = 0

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def make_optimizer(model: TKAM, learning_rate: float) -> torch.optim.Optimizer:
    """Adam (beta 0.9/0.999, eps 1e-8, no decay) over the model's parameter groups (one group,
    or the latent EBM's energy net at its own rate), fused where supported."""
    try:
        return torch.optim.Adam(model.parameter_groups(learning_rate), lr=learning_rate, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.Adam(model.parameter_groups(learning_rate), lr=learning_rate)


@torch.no_grad()
def grid_latents(
    model: TKAM, batch: torch.Tensor, config: ExperimentConfig, rng: torch.Generator
) -> torch.Tensor:
    """Latents for a grid update (A16): prior samples for the importance-sampling loss (and the
    VAE's ELBO), posterior samples of the current batch (t = 1) for the Langevin and
    thermodynamic losses (and the latent EBM's)."""
    if config.train.loss in ("importance", "elbo"):
        return model.prior.sample(config.grid_update.num_samples, rng)
    with torch.enable_grad():
        return posterior_samples(model, batch, posterior_settings(config), rng)


def train_step(
    model: TKAM,
    optimizer: torch.optim.Optimizer,
    batch: torch.Tensor,
    config: ExperimentConfig,
    rng: torch.Generator | Sequence[torch.Generator],
    step: int,
    total_steps: int = 1,
    context: Context | None = None,
) -> LossOutput:
    """One Adam update on the config's loss (spec 5).

    The batch is split into this rank's shards (one per random stream in ``rng``; see
    :mod:`tkam.train.distributed`), each shard's loss weighted by its share of the global batch,
    and the gradients are summed over shards and ranks before the update.

    Raises:
        TrainingError: on a non-finite loss or gradient, or gradients that are all zero (unless
            ``train.skip_nonfinite``, which skips the update and reports it in the metrics).
    """
    rngs = [rng] if isinstance(rng, torch.Generator) else list(rng)
    context = context or Context(accumulate=len(rngs))
    optimizer.zero_grad(set_to_none=True)
    total = torch.zeros(2, dtype=torch.float64)  # weighted loss, non-finite shard count
    metrics: dict[str, float] = {}
    for (shard, weight), shard_rng in zip(context.shards(batch), rngs, strict=True):
        out = compute_loss(model, shard, config, shard_rng, step, total_steps)
        if torch.isfinite(out.loss):
            (out.loss * weight).backward()
            total[0] += float(out.loss.detach()) * weight
        else:
            total[1] += 1
        for key, value in out.metrics.items():
            metrics[key] = metrics.get(key, 0.0) + value * weight
    params = [p for p in model.parameters() if p.requires_grad]
    context.sum_gradients(params)
    named = [(n, p.grad) for n, p in model.named_parameters() if p.grad is not None]
    grads = [g for _, g in named]
    norms = torch.stack(torch._foreach_norm(grads)) if grads else torch.zeros(0)  # one pass
    problem = None
    if total[1] > 0 or not torch.isfinite(norms).all():
        bad = [n for (n, _), v in zip(named, norms.tolist()) if not math.isfinite(v)]
        what = "loss" if total[1] > 0 else "gradient of " + ", ".join(bad)
        problem = f"non-finite {what} at step {step}"
    elif not bool((norms > 0).any()):
        problem = f"all gradients are zero at step {step}"
    context.sum_(total)  # every rank sees the same verdict
    if problem is None and total[1] > 0:
        problem = f"non-finite loss on another process at step {step}"
    if problem is not None:
        if not config.train.skip_nonfinite:
            raise TrainingError(f"{problem}; the last good checkpoint is kept")
        optimizer.zero_grad(set_to_none=True)
        return LossOutput(torch.tensor(float("nan")), {**metrics, "skipped": 1.0})
    optimizer.step()
    share = sum(weight for _, weight in context.shards(batch))  # this rank's part of the batch
    metrics = {k: v / share for k, v in metrics.items()}
    return LossOutput(torch.tensor(float(total[0])), {**metrics, "skipped": 0.0})


def _epoch_order(num: int, seed: int, epoch: int) -> torch.Tensor:
    return torch.randperm(num, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))


@torch.no_grad()
def _test_mse(model: TKAM, test: torch.Tensor, batch_size: int, seed: int) -> float:
    """Mean over test batches of the MSE against as many unpaired fresh samples (spec 5)."""
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


def _prepare_loss_csv(path: Path, resume: bool, step: int) -> None:
    """A fresh ``loss.csv``; on resume keep the rows up to the checkpoint's step (a run killed
    after logging but before its checkpoint would otherwise log those steps twice)."""
    if resume and path.exists():
        with path.open(newline="") as handle:
            rows = list(csv.reader(handle))
        if rows and rows[0][: len(LOSS_COLUMNS) - 1] == LOSS_COLUMNS[: len(LOSS_COLUMNS) - 1]:
            step_column = rows[0].index("Step")
            kept = [r for r in rows[1:] if r and int(r[step_column]) <= step]
            with path.open("w", newline="") as handle:
                writer = csv.writer(handle)
                writer.writerow(LOSS_COLUMNS)
                writer.writerows(kept)
            return
    with path.open("w", newline="") as handle:
        csv.writer(handle).writerow(LOSS_COLUMNS)


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

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


class _Run:
    """The files of one run folder."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.checkpoints = self.root / "checkpoints"
        self.samples = self.root / "samples"
        self.loss_csv = self.root / "loss.csv"
        self.config = self.root / "config.toml"
        self.model = self.root / "model.safetensors"


def fit(
    config: ExperimentConfig,
    run_dir: str | Path,
    data: ImageData | None = None,
    resume: bool = False,
    progress: bool = True,
) -> TKAM:
    """Train a T-KAM model, writing ``config.toml``, ``loss.csv``, ``checkpoints/``,
    ``samples/*.png``, ``model.safetensors``, ``prior.png``, ``loss.png`` and ``evolution.gif``
    into ``run_dir``.

    Args:
        config: the resolved experiment config.
        run_dir: output folder; must not hold a run unless ``resume``.
        data: the data (loaded from ``config.data`` when omitted).
        resume: continue from the newest readable checkpoint in ``run_dir/checkpoints``.
        progress: show a progress bar.

    Returns:
        The trained model.
    """

    train = config.train
    context = Context.from_environment(train.accumulate, train.device)
    try:
        return _fit(config, Path(run_dir), data, resume, progress, context)
    finally:
        context.close()


def _fit(
    config: ExperimentConfig,
    run_dir: Path,
    data: ImageData | None,
    resume: bool,
    progress: bool,
    context: Context,
) -> TKAM:
    main = context.is_main
    run = _Run(run_dir)
    existing = latest_checkpoint(run.checkpoints)
    if existing and not resume:
        raise TrainingError(
            f"{run.root} already holds a run ({existing[0].name}); pass --resume to continue it "
            "or choose another --out"
        )
    if resume and not existing:
        raise TrainingError(f"nothing to resume in {run.root}: no checkpoints/step_*.safetensors")
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
    # One stream per shard (its own samples and noise) and one shared by all ranks (grid updates).
    shard_rngs = {
        f"shard_{j}": torch.Generator(device=device).manual_seed(shard_seed(train.seed, j))
        for j in context.shard_ids
    }
    shared_rng = torch.Generator(device=device).manual_seed(train.seed + 2)
    schedule = GridUpdateSchedule(config.grid_update.frequency, config.grid_update.decay)
    state = RunState()

    if resume:
        for path in existing:
            try:
                saved = load_checkpoint(
                    path, model, optimizer, {**shard_rngs, "shared": shared_rng}
                )
                break
            except CheckpointError as exc:
                warnings.warn(f"skipping unreadable checkpoint: {exc}", stacklevel=2)
        else:
            raise TrainingError(f"no readable checkpoint in {run.checkpoints}")
        state = RunState(**saved)
        schedule.load_state_dict(state.schedule)
    if main:
        run.root.mkdir(parents=True, exist_ok=True)
        run.config.write_text(dumps_toml(config))

    batch_size = min(train.batch_size, len(train_x))
    if batch_size < context.num_shards:
        raise TrainingError(
            f"train.batch_size {batch_size} is smaller than the {context.num_shards} shards "
            f"({context.world_size} processes x train.accumulate {context.accumulate})"
        )
    steps_per_epoch = math.ceil(len(train_x) / batch_size)
    total = train.max_steps or train.epochs * steps_per_epoch
    metadata = {"image_shape": ",".join(map(str, image_shape)), "dataset": data.name}
    checkpoint_metadata = {
        **metadata,
        "config": dumps_toml(config),
        "shards": str(context.num_shards),
    }

    if main:
        _prepare_loss_csv(run.loss_csv, resume, state.step)

    def checkpoint() -> None:
        # Collective: every rank contributes its streams; rank 0 writes.
        states = context.gather_states([g.get_state() for g in shard_rngs.values()])
        if not main:
            return
        state.schedule = schedule.state_dict()
        rng_states = {f"shard_{j}": st for j, st in enumerate(states)}
        rng_states["shared"] = shared_rng.get_state()
        path = run.checkpoints / f"step_{state.step:08d}.safetensors"
        save_checkpoint(
            path, model, optimizer, rng_states, state.to_json(), extra=checkpoint_metadata
        )
        for old in latest_checkpoint(run.checkpoints)[KEEP_CHECKPOINTS:]:
            old.unlink(missing_ok=True)

    def log_event(epoch: int) -> None:
        mean_loss = state.loss_sum / max(state.count, 1)
        mean_ess = state.ess_sum / max(state.count, 1)
        skipped, state.skipped = state.skipped, 0
        state.loss_sum, state.ess_sum, state.count = 0.0, 0.0, 0
        updated, state.grid_updated = state.grid_updated, False
        if not main:
            return
        test_mse = _test_mse(model, test_x, batch_size, seed=train.seed * 7 + state.step)
        with run.loss_csv.open("a", newline="") as handle:
            csv.writer(handle).writerow(
                [
                    f"{state.elapsed:.3f}",
                    epoch,
                    f"{mean_loss:.6g}",
                    f"{test_mse:.6g}",
                    int(updated),
                    state.step,
                    f"{mean_ess:.4g}" if math.isfinite(mean_ess) else "",
                    skipped,
                ]
            )
        rng = torch.Generator(device=device).manual_seed(train.seed)
        samples = model.sample(train.num_plot_samples, rng).float().cpu()
        if len(image_shape) == 3 and image_shape[0] in (1, 3):
            save_image_grid(
                samples,
                run.samples / f"step_{state.step:06d}.png",
                title=f"step {state.step}",
                scale=readable_scale(*image_shape[1:]),
            )
        else:  # token sequences: the most likely token index at every position
            run.samples.mkdir(parents=True, exist_ok=True)
            tokens = samples.argmax(dim=1).tolist()
            text = "\n".join(" ".join(map(str, row)) for row in tokens)
            (run.samples / f"step_{state.step:06d}.txt").write_text(text + "\n")

    bar = tqdm(
        total=total,
        initial=state.step,
        disable=not (progress and main),
        desc="train",
        unit="step",
    )
    start_time = time.perf_counter() - state.elapsed
    model.train()
    stop = _StopRequest()
    try:
        while state.step < total:
            flag = context.sum_(torch.tensor([float(stop.signal is not None)]))
            if float(flag[0]) > 0:
                checkpoint()
                raise KeyboardInterrupt(
                    f"stopped by a signal after step {state.step}; "
                    f"resume with --resume (checkpoint in {run.checkpoints})"
                )
            step = state.step + 1
            epoch, position = divmod(step - 1, steps_per_epoch)
            order = _epoch_order(len(train_x), train.seed, epoch)
            index = order[position * batch_size : (position + 1) * batch_size].to(device)
            batch = train_x[index]
            if schedule.due(step) and (model.update_prior_grid or model.update_generator_grid):
                latents = grid_latents(model, batch, config, shared_rng)
                state.grid_updated |= model.update_grids(latents)
                schedule.mark(step)
            out = train_step(
                model, optimizer, batch, config, list(shard_rngs.values()), step, total, context
            )
            state.step = step
            if out.metrics.get("skipped"):
                state.skipped += 1
            else:
                state.loss_sum += float(out.loss)
                state.ess_sum += out.metrics.get("ess", float("nan"))
                state.count += 1
            state.elapsed = time.perf_counter() - start_time
            bar.update(1)
            postfix = {"loss": f"{float(out.loss):.4g}"}
            if "ess" in out.metrics:
                postfix["ess"] = f"{out.metrics['ess']:.1f}"
            bar.set_postfix(postfix)
            end_of_epoch = position == steps_per_epoch - 1
            periodic = train.log_every > 0 and step % train.log_every == 0
            if step == 1 or periodic or (train.log_every == 0 and end_of_epoch) or step == total:
                log_event(epoch if step > 1 else 0)
                checkpoint()
            elif train.checkpoint_every > 0 and step % train.checkpoint_every == 0:
                checkpoint()
    finally:
        stop.restore()
        bar.close()

    model.eval()
    if main:
        atomic_save(
            dict(model.state_dict().items()),
            run.model,
            {**checkpoint_metadata, "step": str(state.step)},
        )
        if model.prior.has_components:
            plot_prior(model.prior.export(), run.root / "prior.png")
        plot_losses(run.loss_csv, run.root / "loss.png")
        if snapshot_frames(run.samples):
            save_evolution_gif(run.samples, run.root / "evolution.gif")
    context.barrier()
    return model
