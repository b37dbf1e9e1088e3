"""Data-parallel fine-tuning under `torchrun`: process group, per-rank shards, and sums across ranks.

Follows PyTorch DistributedDataParallel (Li et al. 2020, "PyTorch Distributed"): every rank holds the whole
model, computes gradients on its shard of each batch, and DDP averages them across ranks during backward.
`torchrun --nproc_per_node N` sets WORLD_SIZE, RANK and LOCAL_RANK; without them the run is one process and
nothing here does anything. Backend: NCCL on CUDA, gloo on the CPU.

Deviation from the usual DistributedSampler recipe: the global batch is the same whatever the number of
processes (rank r takes examples r, r+N, r+2N, ... of each micro-batch), and the loss is scaled by
N / (examples in the global batch), so N processes follow one process's trajectory at the same global batch.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class World:
    """Where this process sits: its rank, the number of processes, and its device."""

    rank: int = 0
    size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        """Rank 0: the only process that writes files and shows progress."""
        return self.rank == 0


def setup_world() -> World:
    """Join the process group torchrun describes in the environment, or a one-process world without it."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    cuda = torch.cuda.is_available()
    local = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device(f"cuda:{local}" if cuda else "cpu")
    if size <= 1:
        return World(0, 1, device)
    if cuda:
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    return World(dist.get_rank(), dist.get_world_size(), device)


def shard(items: Sequence, world: World) -> tuple[list, float]:
    """This rank's share of a micro-batch and its loss weight (1.0, or 0.0 for a stand-in example when the
    micro-batch has fewer items than ranks: every rank must run backward for DDP's all-reduce)."""
    mine = list(items[world.rank :: world.size])
    return (mine, 1.0) if mine else ([items[0]], 0.0)


def all_sum(value: float, world: World) -> float:
    """The sum of `value` over all ranks (the value itself in a one-process world)."""
    if world.size == 1:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=world.device)
    dist.all_reduce(t)
    return float(t.item())
