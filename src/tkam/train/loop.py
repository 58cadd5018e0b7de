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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from tkam.config import ExperimentConfig, dumps_toml
from tkam.data import ImageData, load_dataset
from tkam.kan.grid import GridUpdateSchedule
from tkam.losses import LossOutput, importance_loss
from tkam.model import TKAM
from tkam.train.checkpoint import (
    CheckpointError,
    atomic_save,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
)

__all__ = ["TrainingError", "RunState", "train_step", "fit", "build_model", "resolve_device"]

LOSS_COLUMNS = [
    "Time (s)",
    "Epoch",
    "Train MLE Loss",
    "Test MSE Loss",
    "Grid Updated",
    "Step",
    "Mean ESS",
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

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when present, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def build_model(config: ExperimentConfig, image_shape: tuple[int, int, int]) -> TKAM:
    """The model of a config, initialised from its own stream seeded by ``train.seed``."""
    return TKAM(config, image_shape, generator=torch.Generator().manual_seed(config.train.seed))


def make_optimizer(model: torch.nn.Module, learning_rate: float) -> torch.optim.Optimizer:
    """Adam (beta 0.9/0.999, eps 1e-8, no decay) over all parameters, fused where supported."""
    try:
        return torch.optim.Adam(model.parameters(), lr=learning_rate, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.Adam(model.parameters(), lr=learning_rate)


def train_step(
    model: TKAM,
    optimizer: torch.optim.Optimizer,
    batch: torch.Tensor,
    config: ExperimentConfig,
    generator: torch.Generator,
    step: int,
) -> LossOutput:
    """One Adam update on the importance-sampling loss; raises on a non-finite loss or gradient."""
    train = config.train
    optimizer.zero_grad(set_to_none=True)
    out = importance_loss(
        model,
        batch,
        train.importance_samples,
        generator=generator,
        resampler=train.resampler,
        threshold=train.resampling_threshold,
        contrastive=train.contrastive,
    )
    if not torch.isfinite(out.loss):
        raise TrainingError(
            f"non-finite loss ({float(out.loss.detach())}) at step {step}; the last good checkpoint is kept"
        )
    out.loss.backward()
    named = [(n, p.grad) for n, p in model.named_parameters() if p.grad is not None]
    norms = torch.stack(torch._foreach_norm([g for _, g in named]))  # one fused pass
    if not torch.isfinite(norms).all():
        bad = [n for (n, _), v in zip(named, norms.tolist()) if not math.isfinite(v)]
        raise TrainingError(f"non-finite gradient of {', '.join(bad)} at step {step}")
    optimizer.step()
    return out


def _epoch_order(num: int, seed: int, epoch: int) -> torch.Tensor:
    return torch.randperm(num, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))


@torch.no_grad()
def _test_mse(model: TKAM, test: torch.Tensor, batch_size: int, seed: int) -> float:
    """Mean over test batches of the MSE against as many unpaired fresh samples (spec 5)."""
    if len(test) == 0:
        return float("nan")
    generator = torch.Generator(device=test.device).manual_seed(seed)
    total, batches = 0.0, 0
    for start in range(0, len(test), batch_size):
        x = test[start : start + batch_size]
        samples = model.sample(len(x), generator)
        total += float((samples - x).square().mean())
        batches += 1
    return total / batches


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
    ``samples/*.png``, ``model.safetensors`` and ``prior.png`` into ``run_dir``.

    Args:
        config: the resolved experiment config.
        run_dir: output folder; must not hold a run unless ``resume``.
        data: the data (loaded from ``config.data`` when omitted).
        resume: continue from the newest readable checkpoint in ``run_dir/checkpoints``.
        progress: show a progress bar.

    Returns:
        The trained model.
    """
    from tkam.plots import plot_losses, plot_prior, readable_scale, save_image_grid

    run = _Run(Path(run_dir))
    existing = latest_checkpoint(run.checkpoints)
    if existing and not resume:
        raise TrainingError(
            f"{run.root} already holds a run ({existing[0].name}); pass --resume to continue it "
            "or choose another --out"
        )
    if resume and not existing:
        raise TrainingError(f"nothing to resume in {run.root}: no checkpoints/step_*.safetensors")
    train = config.train
    device = resolve_device(train.device)
    data = data if data is not None else load_dataset(config.data)
    train_x, test_x = data.train.to(device), data.test.to(device)
    if len(train_x) == 0:
        raise TrainingError(f"data set {data.name!r} has no training images")
    image_shape = tuple(int(s) for s in train_x.shape[1:])
    model = build_model(config, image_shape).to(device)
    if train.compile:
        model.compile_kernels()
    optimizer = make_optimizer(model, train.learning_rate)
    rng = torch.Generator(device=device).manual_seed(train.seed + 1)
    schedule = GridUpdateSchedule(config.grid_update.frequency, config.grid_update.decay)
    state = RunState()

    if resume:
        for path in existing:
            try:
                saved = load_checkpoint(path, model, optimizer, rng)
                break
            except CheckpointError as exc:
                warnings.warn(f"skipping unreadable checkpoint: {exc}", stacklevel=2)
        else:
            raise TrainingError(f"no readable checkpoint in {run.checkpoints}")
        state = RunState(**saved)
        schedule.load_state_dict(state.schedule)
    run.root.mkdir(parents=True, exist_ok=True)
    run.config.write_text(dumps_toml(config))

    batch_size = min(train.batch_size, len(train_x))
    steps_per_epoch = math.ceil(len(train_x) / batch_size)
    total = train.max_steps or train.epochs * steps_per_epoch
    metadata = {"image_shape": ",".join(map(str, image_shape)), "dataset": data.name}
    checkpoint_metadata = {**metadata, "config": dumps_toml(config)}

    if not resume or not run.loss_csv.exists():
        with run.loss_csv.open("w", newline="") as handle:
            csv.writer(handle).writerow(LOSS_COLUMNS)

    def checkpoint() -> None:
        state.schedule = schedule.state_dict()
        path = run.checkpoints / f"step_{state.step:08d}.safetensors"
        save_checkpoint(path, model, optimizer, rng, state.to_json(), extra=checkpoint_metadata)
        for old in latest_checkpoint(run.checkpoints)[KEEP_CHECKPOINTS:]:
            old.unlink(missing_ok=True)

    def log_event(epoch: int) -> None:
        mean_loss = state.loss_sum / max(state.count, 1)
        mean_ess = state.ess_sum / max(state.count, 1)
        test_mse = _test_mse(model, test_x, batch_size, seed=train.seed * 7 + state.step)
        with run.loss_csv.open("a", newline="") as handle:
            csv.writer(handle).writerow(
                [
                    f"{state.elapsed:.3f}",
                    epoch,
                    f"{mean_loss:.6g}",
                    f"{test_mse:.6g}",
                    int(state.grid_updated),
                    state.step,
                    f"{mean_ess:.4g}",
                ]
            )
        state.loss_sum, state.ess_sum, state.count, state.grid_updated = 0.0, 0.0, 0, False
        generator = torch.Generator(device=device).manual_seed(train.seed)
        images = model.sample(train.num_plot_samples, generator)
        save_image_grid(
            images.cpu(),
            run.samples / f"step_{state.step:06d}.png",
            title=f"step {state.step}",
            scale=readable_scale(*image_shape[1:]),
        )

    bar = tqdm(total=total, initial=state.step, disable=not progress, desc="train", unit="step")
    start_time = time.perf_counter() - state.elapsed
    model.train()
    stop = _StopRequest()
    try:
        while state.step < total:
            if stop.signal is not None:
                checkpoint()
                raise KeyboardInterrupt(
                    f"stopped by signal {stop.signal} after step {state.step}; "
                    f"resume with --resume (checkpoint in {run.checkpoints})"
                )
            step = state.step + 1
            epoch, position = divmod(step - 1, steps_per_epoch)
            order = _epoch_order(len(train_x), train.seed, epoch)
            index = order[position * batch_size : (position + 1) * batch_size].to(device)
            if schedule.due(step) and (model.update_prior_grid or model.update_generator_grid):
                z = model.prior.sample(config.grid_update.num_samples, rng)
                state.grid_updated |= model.update_grids(z)
                schedule.mark(step)
            out = train_step(model, optimizer, train_x[index], config, rng, step)
            state.step = step
            state.loss_sum += float(out.loss.detach())
            state.ess_sum += out.metrics["ess"]
            state.count += 1
            state.elapsed = time.perf_counter() - start_time
            bar.update(1)
            bar.set_postfix(loss=f"{float(out.loss.detach()):.4g}", ess=f"{out.metrics['ess']:.1f}")
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
    atomic_save(
        {k: v for k, v in model.state_dict().items()},
        run.model,
        {**checkpoint_metadata, "step": str(state.step)},
    )
    export = model.prior.export()
    rows = "inputs" if model.prior.rows_are_inputs else "outputs"
    plot_prior(export, run.root / "prior.png", rows=rows)
    plot_losses(run.loss_csv, run.root / "loss.png")
    return model
