"""`InMemoryLoader`: mini-batches drawn from a split that already sits in memory as tensors.

Each batch is one gather of rows over a per-epoch permutation, with no per-sample Python work
(unlike `DataLoader` over a `TensorDataset`, which indexes and collates sample by sample).
The permutation of epoch e comes from a `torch.Generator` seeded from (seed, e) alone, so an
epoch can be replayed, or resumed at any batch, with no saved loader state.

Why `np.take` on CPU: a batch gather (128 x 784 floats) is big enough for torch to run
`index_select` as an OpenMP parallel region, and on a loaded 2-core machine every such region
can wait a scheduler time slice for its second thread. Measured on this machine under load
(bench/loader.py protocol, same run): index_select 1.6 s per Fashion-MNIST epoch, np.take
0.11 s; idle: 0.03 s vs 0.05 s. np.take is single-threaded and never stalls. Other devices
(CUDA) and dtypes numpy lacks (bfloat16) use `index_select`; both give identical batches.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator

import numpy as np
import torch

from .bundle import TensorSplit


def epoch_seed(seed: int, epoch: int) -> int:
    """A 63-bit generator seed for (seed, epoch), mixed by numpy's SeedSequence (no collisions
    such as seed*K + epoch would have)."""
    words = np.random.SeedSequence([seed, epoch]).generate_state(2, dtype=np.uint32)
    return (int(words[0]) << 31) ^ int(words[1])


def share_of(n: int, rank: int, size: int) -> slice:
    """Rank `rank`'s contiguous share of n rows split over `size` ranks (`numpy.array_split`:
    the first n % size ranks take one row more)."""
    base, extra = divmod(n, size)
    lo = rank * base + min(rank, extra)
    return slice(lo, lo + base + (rank < extra))


def _checked_part(part: tuple[int, int]) -> tuple[int, int]:
    if not 0 <= part[0] < part[1]:
        raise ValueError(f"part must be (rank, size) with 0 <= rank < size, got {part}")
    return part


def _numpy_view(tensor: torch.Tensor) -> np.ndarray | None:
    """A numpy array sharing `tensor`'s memory, or None off-CPU or for dtypes numpy lacks."""
    if tensor.device.type != "cpu":
        return None
    try:
        return tensor.detach().numpy()
    except TypeError:  # e.g. bfloat16
        return None


class InMemoryLoader:
    """Whole split as tensors; reshuffled index batches each epoch; deterministic given
    (seed, epoch).

    batch_size 1 is plain SGD and batch_size len(split) is full-batch gradient descent. With
    `drop_last` the final short batch is skipped. Iterating the loader itself yields epoch 0,
    then epoch 1, ... on successive `iter()` calls; `epoch(e, start)` is the stateless form.

    Batch-size increase instead of learning-rate decay (Smith, Kindermans, Ying & Le 2018,
    "Don't Decay the Learning Rate, Increase the Batch Size"): from each epoch in `grow_at` the
    batch size is multiplied by `grow_factor` (capped at the split's size), so epochs get fewer,
    larger batches; `batch_size_at`, `batches_in` and `total_steps` give the per-epoch sizes.
    `len(loader)` is the number of batches of epoch 0.

    Data parallelism: `sharded(rank, size)` is the loader of one rank, which draws the same
    permutation and batches as every rank and yields only its `share_of` each batch
    (DistributedSampler's contract, sliced per batch rather than per epoch, so the ranks
    together see exactly the single-process batches); `batch_size` stays the global batch.
    """

    def __init__(
        self,
        split: TensorSplit,
        batch_size: int,
        *,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
        grow_at: tuple[int, ...] = (),
        grow_factor: int = 1,
    ) -> None:
        n = len(split)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int):
            raise ValueError(f"batch_size must be an int, got {batch_size!r}")
        if not 1 <= batch_size <= n:
            raise ValueError(f"batch_size must be in 1..{n} (the split's size), got {batch_size}")
        self.split = split
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.drop_last = drop_last
        if grow_factor < 1 or any(e < 1 for e in grow_at):
            raise ValueError(
                f"batch growth: grow_factor must be >= 1 and grow_at epochs >= 1, got "
                f"{grow_factor} at {list(grow_at)}"
            )
        self.grow_at, self.grow_factor = tuple(sorted(grow_at)), grow_factor
        self.part = (0, 1)  # (rank, ranks): `sharded`
        self._next_epoch = 0
        x_np, y_np = _numpy_view(split.x), _numpy_view(split.y)
        self._numpy = (x_np, y_np) if x_np is not None and y_np is not None else None

    def sharded(self, rank: int, size: int) -> InMemoryLoader:
        """This loader as rank `rank` of `size` data-parallel ranks sees it (``part``)."""
        shard = copy.copy(self)
        shard.part, shard._next_epoch = _checked_part((rank, size)), 0
        return shard

    def __len__(self) -> int:
        """Batches of epoch 0 (every epoch, unless the batch size grows)."""
        return self.batches_in(0)

    def batch_size_at(self, epoch: int) -> int:
        """The batch size of `epoch`: ``batch_size * grow_factor ** (milestones passed)``."""
        grown = self.batch_size * self.grow_factor ** sum(e <= epoch for e in self.grow_at)
        return min(grown, len(self.split))

    def batches_in(self, epoch: int) -> int:
        """Number of batches in `epoch`."""
        n, size = len(self.split), self.batch_size_at(epoch)
        return n // size if self.drop_last else -(-n // size)

    def total_steps(self, epochs: int) -> int:
        """Steps (batches) in epochs 0 .. epochs-1."""
        if not self.grow_at:
            return epochs * len(self)
        return sum(self.batches_in(e) for e in range(epochs))

    def order(self, epoch: int) -> torch.Tensor | None:
        """The sample permutation of `epoch` (int64), or None when not shuffling."""
        if not self.shuffle:
            return None
        g = torch.Generator().manual_seed(epoch_seed(self.seed, epoch))
        return torch.randperm(len(self.split), generator=g)

    def epoch(self, epoch: int, start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Batches (x, y) of epoch `epoch`, skipping the first `start` (to resume mid-epoch)."""
        count = self.batches_in(epoch)
        if not 0 <= start <= count:
            raise ValueError(f"start must be in 0..{count} (batches in epoch {epoch}), got {start}")
        return self._batches(self.order(epoch), start, self.batch_size_at(epoch), count)

    def _batches(
        self, order: torch.Tensor | None, start: int, size: int, count: int
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        x, y = self.split.x, self.split.y
        for b in range(start, count):
            lo, hi = b * size, min((b + 1) * size, len(self.split))
            if self.part[1] > 1:
                mine = share_of(hi - lo, *self.part)
                lo, hi = lo + mine.start, lo + mine.stop
            if order is None:
                yield x[lo:hi], y[lo:hi]
            else:
                yield self._gather(order[lo:hi])

    def _gather(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Rows `idx` of x and y as new tensors (see the module docstring for np.take)."""
        if self._numpy is None:
            return self.split.x.index_select(0, idx), self.split.y.index_select(0, idx)
        x_np, y_np = self._numpy
        rows = idx.numpy()
        return torch.from_numpy(x_np.take(rows, axis=0)), torch.from_numpy(y_np.take(rows, axis=0))

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Epoch 0 on the first call, epoch 1 on the second, and so on."""
        epoch, self._next_epoch = self._next_epoch, self._next_epoch + 1
        return self.epoch(epoch)
