"""Overhead of `trainlab.train.fit` over a raw PyTorch loop, as a ratio measured in one run.

Protocol: one epoch of an MLP 784-256-256-10 (ReLU) with torch Adam (lr 1e-3), batch 128, on
Fashion-MNIST-shaped in-memory tensors (the real training set when installed, else random
tensors of shape (60000, 1, 28, 28)). The anchor is the raw loop of ANCHORS.md: randperm
batches indexed from the in-memory tensors, forward, cross-entropy, zero_grad, backward, step.
Ours is `fit()` over the same tensors with an `InMemoryLoader`, twice: quiet (no callbacks) and
as `trainlab train` runs it (rich progress bar + metrics.jsonl). Every epoch starts from the
same initial weights and a fresh optimizer. One warm-up epoch each, then REPS epochs of each,
interleaved in rotating order so load drift hits all; medians and ratios of medians are printed
(1.00 = no overhead). Target: fit / raw <= 1.05.
Run: .venv/bin/python bench/loop_overhead.py [--reps N]
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from rich.console import Console

from trainlab.data import DataNotFoundError, InMemoryLoader, TensorSplit, load_dataset
from trainlab.nn import mlp
from trainlab.train import fit
from trainlab.train.metrics_log import MetricsLog
from trainlab.train.progress import ProgressBar

BATCH = 128


def fashion_tensors() -> tuple[TensorSplit, str]:
    try:
        bundle = load_dataset("fashion_mnist", download=False)
        return bundle.train, "real Fashion-MNIST"
    except DataNotFoundError:
        g = torch.Generator().manual_seed(0)
        x = torch.rand(60000, 1, 28, 28, generator=g)
        return TensorSplit(x, torch.randint(0, 10, (60000,), generator=g)), "random tensors"


def raw_epoch(model: torch.nn.Module, split: TensorSplit) -> None:
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, y = split.x, split.y
    perm = torch.randperm(len(x))
    for i in range(0, len(x), BATCH):
        idx = perm[i : i + BATCH]
        loss = F.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()


def fit_epoch(model: torch.nn.Module, split: TensorSplit, with_ui: bool) -> None:
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    callbacks = []
    if with_ui:
        log = Path(tempfile.mkdtemp()) / "metrics.jsonl"
        console = Console(file=io.StringIO(), force_terminal=True, width=120)
        callbacks = [MetricsLog(log), ProgressBar(1, console)]
    fit(model, InMemoryLoader(split, BATCH, seed=0), opt, F.cross_entropy, epochs=1,
        callbacks=callbacks)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    reps = parser.parse_args().reps
    split, source = fashion_tensors()
    torch.manual_seed(0)
    init = mlp((1, 28, 28), 10, widths=(256, 256)).state_dict()
    runners = {
        "raw loop": lambda m: raw_epoch(m, split),
        "fit quiet": lambda m: fit_epoch(m, split, with_ui=False),
        "fit + bar + log": lambda m: fit_epoch(m, split, with_ui=True),
    }
    times: dict[str, list[float]] = {name: [] for name in runners}
    names = list(runners)
    for rep in range(reps + 1):
        for k in range(len(names)):
            name = names[(rep + k) % len(names)]
            model = mlp((1, 28, 28), 10, widths=(256, 256))
            model.load_state_dict(init)
            start = time.perf_counter()
            runners[name](model)
            if rep > 0:
                times[name].append(time.perf_counter() - start)
    anchor = statistics.median(times["raw loop"])
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"{name:<16} median {med:6.3f} s  ({min(ts):.3f}-{max(ts):.3f})  "
              f"ratio to raw loop {med / anchor:.3f}")  # fmt: skip
    print(f"protocol: {reps} interleaved epochs each after a warm-up; {source}; batch {BATCH}; "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"load average {os.getloadavg()[0]:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
