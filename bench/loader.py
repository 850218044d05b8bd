"""Epoch time of `trainlab.data.InMemoryLoader` as a ratio against torch's DataLoader.

Protocol: both loaders iterate one full shuffled epoch (batch 128, last short batch kept) over
the same Fashion-MNIST-shaped tensors, x float32 (60000, 1, 28, 28) and y int64: the real
training set when it is installed, else uniform random tensors of that shape. The anchor is
`torch.utils.data.DataLoader(TensorDataset(x, y), batch_size=128, shuffle=True)` with its
defaults (no workers). Each loader runs one untimed warm-up epoch, then REPS timed epochs,
interleaved (ours, theirs, ours, ...; the first of each pair alternates) so drift in machine
load hits both; we report medians, mean +- std, and the ratio of medians (ours / DataLoader;
below 1 means ours is faster). Batches are only produced, not consumed by a model. The
machine's 1-minute load average is printed before and after, since a shared machine's load
changes what both loaders cost.
Run: .venv/bin/python bench/loader.py [--reps N]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import torch
from torch.utils.data import DataLoader, TensorDataset

from trainlab.data import DataNotFoundError, InMemoryLoader, TensorSplit, load_dataset

BATCH = 128


def fashion_like() -> tuple[torch.Tensor, torch.Tensor, str]:
    """The real Fashion-MNIST training split if present (never downloads), else random."""
    try:
        train = load_dataset("fashion_mnist", download=False).train
        return train.x, train.y, "real Fashion-MNIST train split"
    except DataNotFoundError:
        g = torch.Generator().manual_seed(0)
        x = torch.rand(60000, 1, 28, 28, generator=g)
        return x, torch.randint(0, 10, (60000,), generator=g), "random tensors"


def time_epoch(batches, expected: int) -> float:
    """Seconds to draw every batch of one epoch (checking that all samples came out)."""
    start = time.perf_counter()
    n = 0
    for x, _ in batches:
        n += x.shape[0]
    elapsed = time.perf_counter() - start
    if n != expected:
        raise RuntimeError(f"epoch produced {n} samples, expected {expected}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=11, help="timed epochs per loader")
    args = parser.parse_args()

    load_before = os.getloadavg()[0]
    x, y, what = fashion_like()
    ours = InMemoryLoader(TensorSplit(x, y), BATCH, shuffle=True, seed=0)
    torch.manual_seed(0)
    theirs = DataLoader(TensorDataset(x, y), batch_size=BATCH, shuffle=True)
    runners = {"InMemoryLoader": lambda e: ours.epoch(e), "DataLoader": lambda e: iter(theirs)}

    for run in runners.values():  # warm-up: allocator, page faults, lazy imports
        time_epoch(run(0), len(x))
    times: dict[str, list[float]] = {name: [] for name in runners}
    for rep in range(args.reps):
        order = list(runners) if rep % 2 == 0 else list(reversed(runners))
        for name in order:
            times[name].append(time_epoch(runners[name](rep + 1), len(x)))

    for name, ts in times.items():
        print(
            f"{name:<15} epoch: median {statistics.median(ts) * 1e3:8.1f} ms   "
            f"mean {statistics.mean(ts) * 1e3:8.1f} +- {statistics.stdev(ts) * 1e3:6.1f} ms"
        )
    ratio = statistics.median(times["InMemoryLoader"]) / statistics.median(times["DataLoader"])
    print(f"ratio ours / DataLoader (medians): {ratio:.4f}  (speed-up {1 / ratio:.1f}x)")
    print(
        f"protocol: {args.reps} interleaved timed epochs per loader after 1 warm-up; "
        f"batch {BATCH}, shuffle; x {tuple(x.shape)} float32 ({what}); torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads; Python {platform.python_version()}, "
        f"{platform.machine()}, {os.cpu_count()} CPUs; load average "
        f"{load_before:.2f} before, {os.getloadavg()[0]:.2f} after"
    )


if __name__ == "__main__":
    main()
