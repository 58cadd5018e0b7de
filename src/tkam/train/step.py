"""One training update (maths 5): the optimiser, the grid-update latents and the Adam step.

These pieces know nothing of run folders, logs or checkpoints; the trainer
(:mod:`tkam.train.loop`) calls them once per step, and benchmarks call them directly.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

from tkam.config import ExperimentConfig
from tkam.losses import LossOutput, compute_loss, posterior_samples, posterior_settings
from tkam.model import LatentModel
from tkam.posterior.memory import StepSizeMemory
from tkam.train.distributed import Context

__all__ = ["TrainingError", "grid_latents", "make_optimizer", "train_step"]


class TrainingError(RuntimeError):
    """Training cannot go on (non-finite loss, a run folder that is not resumable, ...)."""


def make_optimizer(
    model: LatentModel, learning_rate: float, beta1: float = 0.9
) -> torch.optim.Optimizer:
    """Adam (betas ``beta1``/0.999, eps 1e-8, no decay) over the model's parameter groups (one
    group, or the latent EBM's energy net at its own rate), fused where supported."""
    betas = (beta1, 0.999)
    # Fresh group dicts for each attempt: a refused constructor has already filled its defaults
    # (``fused`` among them) into the dicts it was given.
    try:
        return torch.optim.Adam(
            model.parameter_groups(learning_rate), lr=learning_rate, betas=betas, fused=True
        )
    except (RuntimeError, TypeError):
        return torch.optim.Adam(
            model.parameter_groups(learning_rate), lr=learning_rate, betas=betas
        )


@torch.no_grad()
def grid_latents(
    model: LatentModel, batch: torch.Tensor, config: ExperimentConfig, rng: torch.Generator
) -> torch.Tensor:
    """Latents for a grid update (departures A16): prior samples for the importance-sampling
    loss (and the VAE's ELBO), posterior samples of the current batch (t = 1) for the Langevin
    and thermodynamic losses (and the latent EBM's)."""
    if config.train.loss in ("importance", "elbo"):
        return model.prior.sample(config.grid_update.num_samples, rng)
    with torch.enable_grad():
        return posterior_samples(model, batch, posterior_settings(config), rng)


def train_step(
    model: LatentModel,
    optimizer: torch.optim.Optimizer,
    batch: torch.Tensor,
    config: ExperimentConfig,
    rng: torch.Generator | Sequence[torch.Generator],
    step: int,
    total_steps: int = 1,
    context: Context | None = None,
    memories: Sequence[StepSizeMemory] | None = None,
    before_update: Callable[[], None] | None = None,
) -> LossOutput:
    """One Adam update on the config's loss (maths 5).

    The batch is split into this rank's shards (one per random stream in ``rng``; see
    :mod:`tkam.train.distributed`), each shard's loss weighted by its share of the global batch,
    and the gradients are summed over shards and ranks before the update. ``memories`` (one
    per shard, beside its stream) keep the posterior sampler's adapted step sizes.
    ``before_update`` runs after the gradients are complete and before the optimiser applies
    them (``grid_update.compat_discard_refit`` restores the pre-refit parameters there).

    Raises:
        TrainingError: on a non-finite loss or gradient, or gradients that are all zero (unless
            ``train.skip_nonfinite``, which skips the update and reports it in the metrics).
    """
    rngs = [rng] if isinstance(rng, torch.Generator) else list(rng)
    context = context or Context(accumulate=len(rngs))
    optimizer.zero_grad(set_to_none=True)
    total = torch.zeros(2, dtype=torch.float64)  # weighted loss, non-finite shard count
    metrics: dict[str, float] = {}
    memory_list: list[StepSizeMemory | None] = (
        list(memories) if memories is not None else [None] * len(rngs)
    )
    shards = zip(context.shards(batch), rngs, memory_list, strict=True)
    for (shard, weight), shard_rng, memory in shards:
        out = compute_loss(model, shard, config, shard_rng, step, total_steps, memory)
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
            hint = "" if "zero" in problem else " (train.skip_nonfinite = true skips such updates)"
            raise TrainingError(problem + hint)
        optimizer.zero_grad(set_to_none=True)
        return LossOutput(torch.tensor(float("nan")), {**metrics, "skipped": 1.0})
    if before_update is not None:
        before_update()
    optimizer.step()
    share = sum(weight for _, weight in context.shards(batch))  # this rank's part of the batch
    metrics = {k: v / share for k, v in metrics.items()}
    return LossOutput(torch.tensor(float(total[0])), {**metrics, "skipped": 0.0})
