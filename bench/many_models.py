"""Many small models at once: stacked training (`trainlab.stack`) vs one `fit()` after another,
in one run, plus the stacked step's achieved GFLOP/s against a large matmul's.

Protocol (issue #13): 64 MNIST-1D MLPs 40-h-h-10 (ReLU, PyTorch default init, own seed and own
data order each), SGD lr 0.01 momentum 0.9, batch 100, 4,000 training examples, 2,000 steps
(50 epochs) each, float32, for h = 32 and h = 100. The anchor is the same 64 models trained
one after another with `trainlab.train.fit`, at its faster of 1 and all threads. Timed:
training only (no evaluation), each model or the stack started fresh; the sequential time is
measured on SEQUENTIAL_SAMPLE models and scaled to 64 (each fit is the same work; --full: all
64). GFLOP/s counts the step's matrix products (3 x 2 x batch x multiply-adds per example x
models) over the stacked time per step; the matmul anchor is a 2048 x 2048 float32 product
(median of 10), same threads. Exactness: 4 models stacked vs each trained alone in float64
for 200 steps, largest weight gap.
Run: .venv/bin/python bench/many_models.py [--full] [--steps N]
"""

from __future__ import annotations

import argparse
import time

import torch
from _machine import cpu_line, matmul_gflops
from torch import nn

from trainlab import optim
from trainlab.data import InMemoryLoader, TensorSplit, load_dataset
from trainlab.stack import StackedModel, fit_stacked, stacked_optimizer
from trainlab.stack.widths import mlp_flops
from trainlab.train import fit, get_loss

MODELS, BATCH, LR, MOMENTUM = 64, 100, 0.01, 0.9
SEQUENTIAL_SAMPLE = 8


def mnist1d(dtype: torch.dtype) -> TensorSplit:
    train = load_dataset("mnist1d").train
    x = train.x.flatten(1).to(dtype)
    return TensorSplit((x - x.mean(0)) / x.std(0), train.y)


def model(h: int, seed: int, dtype: torch.dtype) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(40, h), nn.ReLU(), nn.Linear(h, h), nn.ReLU(),
                         nn.Linear(h, 10)).to(dtype)  # fmt: skip


def sequential(h: int, data: TensorSplit, epochs: int, count: int) -> list[nn.Module]:
    out = []
    for k in range(count):
        m = model(h, k, data.x.dtype)
        opt = optim.Optimizer(m.parameters(), optim.sgd(LR, MOMENTUM))
        fit(m, InMemoryLoader(data, BATCH, seed=k), opt, get_loss("cross_entropy"), epochs=epochs)
        out.append(m)
    return out


def stacked(h: int, data: TensorSplit, epochs: int, count: int) -> StackedModel:
    stack = StackedModel([model(h, k, data.x.dtype) for k in range(count)])
    opt = stacked_optimizer(stack, optim.sgd, "sgd", [LR] * count, [0.0] * count,
                            momentum=MOMENTUM)  # fmt: skip
    loaders = [InMemoryLoader(data, BATCH, seed=k) for k in range(count)]
    fit_stacked(stack, loaders, opt, get_loss("cross_entropy"), epochs=epochs)
    return stack


def timed(fn, *args) -> float:  # noqa: ANN001
    started = time.perf_counter()
    fn(*args)
    return time.perf_counter() - started


def exactness(data: TensorSplit) -> float:
    """Largest |stacked - alone| weight difference, float64, 4 models, 200 steps (h = 32)."""
    data64 = TensorSplit(data.x.double(), data.y)
    epochs = 5  # 40 steps an epoch
    stack = stacked(32, data64, epochs, 4)
    alone = sequential(32, data64, epochs, 4)
    return max(
        float((a - b).detach().abs().max())
        for k in range(4)
        for a, b in zip(stack.unstack(k).parameters(), alone[k].parameters(), strict=True)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="time all 64 sequential fits")
    parser.add_argument("--steps", type=int, default=2000)
    args = parser.parse_args()
    data = mnist1d(torch.float32)
    epochs = max(1, args.steps // (len(data) // BATCH))
    steps = epochs * (len(data) // BATCH)
    count = MODELS if args.full else SEQUENTIAL_SAMPLE
    print(f"# {cpu_line()}; torch {torch.__version__}, {torch.get_num_threads()} threads")
    peak = matmul_gflops()
    print(f"matmul 2048x2048 float32: {peak:.1f} GFLOP/s")
    threads = torch.get_num_threads()
    for h in (32, 100):
        per_threads = {}
        for n in sorted({1, threads}):  # the anchor at its best thread count
            torch.set_num_threads(n)
            per_threads[n] = timed(sequential, h, data, epochs, count) * MODELS / count
        torch.set_num_threads(threads)
        best = min(per_threads, key=per_threads.get)
        seq = per_threads[best]
        print(f"h={h:3d}: sequential fit() by threads: "
              + ", ".join(f"{n}: {t:.1f} s" for n, t in per_threads.items()))  # fmt: skip
        stk = timed(stacked, h, data, epochs, MODELS)
        flops = 3 * 2 * BATCH * mlp_flops([h, h], 40, 10) * MODELS * steps
        gflops = flops / stk / 1e9
        print(f"h={h:3d}: sequential {seq:7.1f} s ({seq / MODELS / steps * 1e6:5.0f} us per "
              f"model-step, {best} thread(s), {count} of {MODELS} timed)  stacked {stk:6.1f} s "
              f"({stk / MODELS / steps * 1e6:5.1f} us)  speedup {seq / stk:5.2f}x  "
              f"stacked step {gflops:6.1f} GFLOP/s = {gflops / peak:.0%} of matmul")  # fmt: skip
    print(f"exactness: largest |stacked - alone| weight gap, float64, 200 steps: "
          f"{exactness(data):.2e}")  # fmt: skip
    print(f"protocol: {MODELS} MLPs 40-h-h-10, SGD lr {LR} momentum {MOMENTUM}, batch {BATCH}, "
          f"{steps} steps each, MNIST-1D {len(data)} training examples, float32")  # fmt: skip


if __name__ == "__main__":
    main()
