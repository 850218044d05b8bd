"""The processes one data-parallel run trains in (torchrun's ranks), and what they must agree on.

Data parallelism (as `torch.nn.parallel.DistributedDataParallel`): every rank holds the same
weights, takes its own slice of each global batch, and the gradients are averaged across ranks
before the identical update. For the run to equal a single process with the same global
batch, three more things are reduced here:

* each step's statistics -- the global batch's mean loss, correct count and size -- in one
  all-reduce that also carries the stop flag (a Ctrl-C on any rank stops every rank after the
  same step, so they checkpoint together and none waits forever in a collective);
* each rank's loss weight ``size * n_rank / n_global``: DDP divides the summed gradients by the
  world size, so with this weight the averaged gradient is the gradient of the global mean
  even when the last batch of an epoch splits unevenly;
* evaluation: each rank scores a contiguous slice of the split and the sums are added, with
  rank 0's buffers (BatchNorm running statistics, the ones checkpoints save) copied to all
  ranks first.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from trainlab.data.loader import share_of


@dataclass(frozen=True)
class World:
    """This process's place among the ranks of a run; `World()` is a single process."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    local_size: int = 1

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def main(self) -> bool:
        """Rank 0 writes the run directory, the logs and the progress bar."""
        return self.rank == 0

    @classmethod
    def from_env(cls) -> World:
        """The world torchrun describes in the environment (RANK, WORLD_SIZE, LOCAL_RANK,
        LOCAL_WORLD_SIZE); a single process when they are absent."""
        env = os.environ
        if "RANK" not in env or "WORLD_SIZE" not in env:
            return cls()
        size = int(env["WORLD_SIZE"])
        return cls(int(env["RANK"]), size, int(env.get("LOCAL_RANK", 0)),
                   int(env.get("LOCAL_WORLD_SIZE", size)))  # fmt: skip

    def slice(self, n: int) -> slice:
        """This rank's contiguous share of n rows (`trainlab.data.loader.share_of`)."""
        return share_of(n, self.rank, self.size)


SINGLE = World()


def all_sum(world: World, values: torch.Tensor) -> torch.Tensor:
    """`values` summed over the ranks (in place), or as they are in a single process."""
    if world.distributed:
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


def share_buffers(world: World, model: nn.Module) -> None:
    """Copy rank 0's buffers (BatchNorm running statistics) to every rank."""
    if world.distributed:
        for buffer in model.buffers():
            dist.broadcast(buffer, src=0)


class StepSync:
    """One all-reduce per step: the global batch's loss sum, correct count and size, and
    whether any rank was asked to stop (see the module docstring)."""

    def __init__(self, world: World, interrupt: threading.Event | None = None) -> None:
        self.world = world
        self.interrupt = interrupt
        self.stop = False
        self.total = 0  # the last global batch's size

    def reduce(self, loss: torch.Tensor, correct: int, size: int) -> tuple[float, int, int, float]:
        """(global mean loss, global correct, global size, this rank's loss weight) from this
        rank's mean loss, correct count and size."""
        asked = self.interrupt is not None and self.interrupt.is_set()
        local = loss.detach().double() * size if size else torch.zeros((), dtype=torch.float64)
        stats = torch.stack([local, torch.tensor(float(correct), dtype=torch.float64),
                             torch.tensor(float(size), dtype=torch.float64),
                             torch.tensor(float(asked), dtype=torch.float64)])  # fmt: skip
        all_sum(self.world, stats)
        total = self.total = int(stats[2])
        self.stop = bool(stats[3] > 0)
        weight = self.world.size * size / total
        return float(stats[0]) / total, int(stats[1]), total, weight
