"""Data-parallel training on ``torch.distributed`` (launched by ``torchrun``).

The global batch of every step is split into ``world_size * accumulate`` shards; shard ``j`` is
processed by rank ``j // accumulate`` with its own random stream (seeded by ``(seed, j)``), and
the gradients of all shards are summed with each shard's loss weighted by its share of the batch.
A run on W processes therefore computes exactly what one process computes with
``train.accumulate = W`` (up to the order of floating-point sums), which is how it is tested.
Grid updates draw from a stream that is identical on every rank, so every rank stays in step.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.distributed as dist

__all__ = ["Context", "intra_op_threads", "shard_seed"]


def shard_seed(seed: int, shard: int) -> int:
    """Seed of shard ``shard``'s random stream (shard 0 keeps the single-process stream)."""
    return seed + 1 + 7919 * shard


def intra_op_threads(requested: int, environ: Mapping[str, str] | None = None) -> int | None:
    """The intra-op thread count a training process should use (``None``: leave torch's).

    Processes that share cores must share them: two runs on two cores with two threads each
    were 2.3x slower per step than with one thread each (benchmarks/RESULTS.md).

    Args:
        requested: ``train.threads``; > 0 is used as given.
        environ: the environment (default ``os.environ``).

    Returns:
        ``requested`` when > 0; else, under a launcher of several local processes
        (``LOCAL_WORLD_SIZE`` > 1) and without ``OMP_NUM_THREADS``, the usable cores divided
        evenly (at least 1); else ``None`` (torch's default, or ``OMP_NUM_THREADS``, which
        ``torchrun`` sets to 1 for several processes unless it is set already).
    """
    if requested > 0:
        return requested
    environ = os.environ if environ is None else environ
    local = int(environ.get("LOCAL_WORLD_SIZE", "1") or 1)
    if local <= 1 or environ.get("OMP_NUM_THREADS"):
        return None
    return max(1, len(os.sched_getaffinity(0)) // local)


@dataclass
class Context:
    """Where this process sits in a (possibly single-process) data-parallel run."""

    world_size: int = 1
    rank: int = 0
    local_rank: int = 0
    accumulate: int = 1
    owns_group: bool = False

    @classmethod
    def from_environment(cls, accumulate: int, device_name: str) -> Context:
        """Read ``torchrun``'s ``WORLD_SIZE``/``RANK``/``LOCAL_RANK`` and join the group
        (gloo on CPU, NCCL on CUDA)."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls(accumulate=accumulate)
        rank = int(os.environ["RANK"])
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        owns = False
        if not dist.is_initialized():
            cuda = device_name != "cpu" and torch.cuda.is_available()
            if cuda:
                torch.cuda.set_device(local_rank)
            dist.init_process_group("nccl" if cuda else "gloo")
            owns = True
        return cls(world, rank, local_rank, accumulate, owns)

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0 writes every file."""
        return self.rank == 0

    @property
    def num_shards(self) -> int:
        return self.world_size * self.accumulate

    @property
    def shard_ids(self) -> range:
        """The global shard indices this rank processes."""
        return range(self.rank * self.accumulate, (self.rank + 1) * self.accumulate)

    def device(self, name: str) -> torch.device:
        """The device of this rank: ``auto`` picks CUDA (this rank's GPU) when present."""
        if name == "auto":
            name = "cuda" if torch.cuda.is_available() else "cpu"
        if name == "cuda" and self.distributed:
            return torch.device("cuda", self.local_rank)
        return torch.device(name)

    def shards(self, batch: torch.Tensor) -> list[tuple[torch.Tensor, float]]:
        """This rank's shards of the global batch with their weights ``n_j / B``."""
        pieces = torch.tensor_split(batch, self.num_shards)
        return [(pieces[j], len(pieces[j]) / len(batch)) for j in self.shard_ids]

    def sum_(self, tensor: torch.Tensor) -> torch.Tensor:
        """All-reduce (sum) in place across ranks; a no-op on one process."""
        if self.distributed:
            dist.all_reduce(tensor)
        return tensor

    def sum_gradients(self, parameters: list[torch.nn.Parameter]) -> None:
        """Sum the gradients of all ranks, in one flat buffer."""
        if not self.distributed:
            return
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in parameters]
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        offset = 0
        for p, g in zip(parameters, grads):
            n = g.numel()
            p.grad = flat[offset : offset + n].view_as(p).clone()
            offset += n

    def gather_states(self, states: list[torch.Tensor]) -> list[torch.Tensor]:
        """Every rank's random-stream states, in global shard order (collective)."""
        if not self.distributed:
            return states
        stacked = torch.stack([s.to(torch.uint8) for s in states])
        if dist.get_backend() == "nccl":  # NCCL moves CUDA tensors only
            stacked = stacked.to(torch.device("cuda", self.local_rank))
        out = [torch.empty_like(stacked) for _ in range(self.world_size)]
        dist.all_gather(out, stacked)
        return [row.cpu() for block in out for row in block]

    def gather_vectors(self, vectors: list[torch.Tensor]) -> list[torch.Tensor]:
        """Every rank's float vectors (any lengths), in global shard order (collective)."""
        if not self.distributed:
            return vectors
        device = (
            torch.device("cuda", self.local_rank)
            if dist.get_backend() == "nccl"
            else torch.device("cpu")
        )
        lengths = torch.tensor([v.numel() for v in vectors], dtype=torch.int64, device=device)
        longest = lengths.max().reshape(1).clone()
        dist.all_reduce(longest, op=dist.ReduceOp.MAX)
        padded = torch.zeros(len(vectors), int(longest), dtype=torch.float64, device=device)
        for row, vector in zip(padded, vectors):
            row[: vector.numel()] = vector.to(device, torch.float64).flatten()
        all_lengths = [torch.empty_like(lengths) for _ in range(self.world_size)]
        all_padded = [torch.empty_like(padded) for _ in range(self.world_size)]
        dist.all_gather(all_lengths, lengths)
        dist.all_gather(all_padded, padded)
        return [
            row[: int(n)].cpu()
            for block, counts in zip(all_padded, all_lengths)
            for row, n in zip(block, counts)
        ]

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def close(self) -> None:
        if self.owns_group and dist.is_initialized():
            dist.destroy_process_group()
