"""A run across torchrun's ranks: joining the process group, what each rank builds, and what
rank 0 decides for all (the run directory, the checkpoint to resume).

The training contract is `trainlab.train.world`'s: the recipe's ``data.batch_size`` is the
*global* batch, each rank takes its share of it, and the run equals a single process with the
same recipe up to floating-point summation order. What differs by construction, and is said:

* BatchNorm normalizes each rank's share of the batch with that share's statistics (DDP's
  default); the running statistics saved and evaluated are rank 0's. ``train.sync_batchnorm``
  asks for statistics over the global batch, which torch's SyncBatchNorm supports on GPUs only.
* SAM's first (ascent) pass uses each rank's own gradient (no all-reduce, Foret et al. 2021's
  m-sharpness with m = the per-rank batch), unless ``optimizer.sam.sync_ascent`` is set.
* Dropout: rank 0 continues the single-process random stream; rank r > 0 draws its own.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from trainlab.data.loader import epoch_seed
from trainlab.durable import crash_point
from trainlab.optim.second_order import SECOND_ORDER
from trainlab.optim.sharpness import SAM
from trainlab.run.config import Recipe, RecipeError
from trainlab.run.experiment import Experiment
from trainlab.train.world import SINGLE, World

T = TypeVar("T")

TIMEOUT_S = 60  # a collective that waits longer than this fails (a rank hung or gone)


def join_world() -> World:
    """This process's world from torchrun's environment, with the process group joined (gloo
    on CPU, NCCL with CUDA) and the intra-op threads set to the node's cores over its ranks
    (torchrun's default of one thread is a silent slowdown; `train.threads` still wins)."""
    world = World.from_env()
    if not world.distributed:
        return world
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend, timeout=timedelta(seconds=TIMEOUT_S))
    torch.set_num_threads(max(1, len(os.sched_getaffinity(0)) // world.local_size))
    return world


def leave_world(world: World) -> None:
    """Leave the process group once no rank has a collective left: a barrier first, since a
    rank tearing gloo down while another still talks to it can abort the process."""
    if world.distributed and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def from_main(world: World, make: Callable[[], T]) -> T:
    """`make()` run on rank 0 and its result (or the RecipeError it raised) sent to every rank,
    so all take the same decision (a run directory, a checkpoint to resume)."""
    if not world.distributed:
        return make()
    box: list[Any] = [None]
    if world.main:
        try:
            box[0] = ("ok", make())
        except RecipeError as err:
            box[0] = ("error", str(err))
    dist.broadcast_object_list(box, src=0)
    kind, value = box[0]
    if kind == "error":
        raise RecipeError(value)
    return value


def check_world(exp: Experiment, world: World) -> None:
    """One RecipeError line for what cannot train across `world`'s ranks, before any step."""
    if not world.distributed:
        if exp.recipe.train.sync_batchnorm:
            raise RecipeError("recipe field train.sync_batchnorm: needs more than one process "
                              "(trainlab train --nproc N, or torchrun)")  # fmt: skip
        return
    recipe, n = exp.recipe, world.size
    check_batch(recipe, n)
    batch = recipe.data.batch_size
    rows = len(exp.loader.split)
    last = rows % batch
    if last and last < n:
        raise RecipeError(
            f"recipe field data.batch_size: the last batch of each epoch has {last} "
            f"example(s), fewer than the {n} processes; choose a batch size that leaves 0 or "
            f"at least {n} ({rows} training examples)"
        )
    if recipe.optimizer.name in SECOND_ORDER:
        raise RecipeError(f"recipe field optimizer.name: {recipe.optimizer.name} solves "
                          "with its own batch's curvature; use one process")  # fmt: skip
    if recipe.train.sync_batchnorm and not torch.cuda.is_available():
        raise RecipeError("recipe field train.sync_batchnorm: torch's SyncBatchNorm runs on "
                          "GPUs only; on CPU each process normalizes its share of the batch "
                          "(set it to false)")  # fmt: skip


def world_notes(world: World, recipe: Recipe) -> dict[str, Any]:
    """What data.json records about the processes (and the run log says in one line)."""
    return {
        "processes": world.size,
        "nodes": world.size // world.local_size,
        "threads_per_process": torch.get_num_threads(),
        "backend": dist.get_backend() if dist.is_initialized() else None,
        "batch_per_process": recipe.data.batch_size // world.size,
    }


def describe_world(notes: dict[str, Any]) -> str:
    return (f"data parallel: {notes['processes']} processes on {notes['nodes']} node(s) x "
            f"{notes['threads_per_process']} thread(s) ({notes['backend']}), "
            f"{notes['batch_per_process']} examples each per step")  # fmt: skip


def check_batch(recipe: Recipe, processes: int) -> None:
    """The global batch must split evenly over the processes (one RecipeError line)."""
    batch = recipe.data.batch_size
    if batch % processes:
        raise RecipeError(f"recipe field data.batch_size: {batch} does not divide over "
                          f"{processes} processes; expected a multiple of {processes} "
                          "(data.batch_size is the global batch)")  # fmt: skip


def shard(exp: Experiment, world: World) -> None:
    """Give this rank its share of every batch (same permutation and batches on all ranks)."""
    if world.distributed:
        exp.loader = exp.loader.sharded(world.rank, world.size)


def data_parallel(exp: Experiment, world: World) -> nn.Module:
    """The module to train: `exp.model` itself in one process, else wrapped in
    DistributedDataParallel (SyncBatchNorm first when asked), with SAM told about the wrapper
    so its ascent pass skips the all-reduce."""
    if not world.distributed:
        return exp.model
    model = exp.model
    if exp.recipe.train.sync_batchnorm:
        model = exp.model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    net = DistributedDataParallel(model)  # rank 0's buffers go to all ranks at each forward
    if isinstance(exp.optimizer, SAM):
        exp.optimizer.model = net
    return net


def seed_rank(world: World, recipe: Recipe) -> None:
    """Dropout's stream on rank r > 0 (rank 0 keeps the single-process one)."""
    if world.distributed and not world.main:
        torch.manual_seed(epoch_seed(recipe.seed, 1_000_000 + world.rank))


def gather_rng(world: World) -> list[torch.Tensor] | None:
    """Every rank's global RNG state, on every rank (None in one process): a checkpoint keeps
    them all so a resume with the same world size continues each rank's dropout exactly."""
    if not world.distributed:
        return None
    crash_point(f"rank{world.rank}:checkpoint")  # test hook: kill one rank, deterministically
    states: list[Any] = [None] * world.size
    dist.all_gather_object(states, torch.get_rng_state())
    return states


def world_entry(world: World, rng: list[torch.Tensor] | None) -> dict[str, Any]:
    """The checkpoint entry that records the world size (and each rank's RNG)."""
    return {"size": world.size, "rng": rng}


def restore_world(world: World, saved: dict[str, Any] | None, where: str) -> None:
    """Check a checkpoint's world size against this one's and set this rank's RNG from it."""
    size = 1 if saved is None else int(saved["size"])
    if size != world.size:
        raise RecipeError(
            f"--resume {where}: the run trained with {size} process(es), this job has "
            f"{world.size}; resume with --nproc {size} (the same world size continues it "
            "exactly)"
        )
    if saved is not None and saved.get("rng") is not None:
        torch.set_rng_state(saved["rng"][world.rank])


__all__ = [
    "SINGLE",
    "check_batch",
    "check_world",
    "data_parallel",
    "describe_world",
    "from_main",
    "gather_rng",
    "join_world",
    "leave_world",
    "restore_world",
    "seed_rank",
    "shard",
    "world_entry",
    "world_notes",
]
