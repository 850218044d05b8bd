"""Training-step time by precision and compilation (issue #18, item 4), in one run.

Protocol: the default recipe's CNN and fashion-best's CNN, built by the recipes themselves
(`trainlab.run.experiment.build`), channels-last, SGD momentum 0.9, cross-entropy, a fixed
batch of 128 Fashion-MNIST-shaped images. Four variants per model: eager fp32, eager with
``torch.autocast("cpu", dtype=torch.bfloat16)`` around forward and loss (fp32 weights and
optimizer state), ``torch.compile``-d model in fp32, and compiled under bf16 autocast. Each:
the first step (compile time included) timed alone, WARMUP more steps, then the median of REPS
timed steps. Anchor: a 2048 x 2048 float32 matmul's GFLOP/s in the same run; the fp32 eager
step's achieved GFLOP/s (FLOPs counted by torch.utils.flop_counter on one step) is printed as a
fraction of it. Ratios are against eager fp32 of the same model.
Run: .venv/bin/python bench/precision.py [--reps N]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from _machine import cpu_line, matmul_gflops
from torch.utils.flop_counter import FlopCounterMode

from trainlab.run.bundled import recipe_file
from trainlab.run.config import load_recipe
from trainlab.run.experiment import build

BATCH, WARMUP = 128, 3


def model_of(name: str | None) -> torch.nn.Module:
    recipe = load_recipe(None if name is None else recipe_file(name))
    return build(recipe).model.to(memory_format=torch.channels_last)


def step_fn(model: torch.nn.Module, bf16: bool) -> Callable[[torch.Tensor, torch.Tensor], None]:
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def step(x: torch.Tensor, y: torch.Tensor) -> None:
        ctx = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
        with ctx:
            loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def timed(step: Callable, x: torch.Tensor, y: torch.Tensor, reps: int) -> tuple[float, float]:
    """(first step's seconds, median step seconds after warm-up)."""
    started = time.perf_counter()
    step(x, y)
    first = time.perf_counter() - started
    for _ in range(WARMUP):
        step(x, y)
    times = []
    for _ in range(reps):
        started = time.perf_counter()
        step(x, y)
        times.append(time.perf_counter() - started)
    return first, statistics.median(times)


def step_flops(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> int:
    with FlopCounterMode(display=False) as counter:
        F.cross_entropy(model(x), y).backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=20)
    args = parser.parse_args()
    print(f"# {cpu_line()}; torch {torch.__version__}, {torch.get_num_threads()} threads")
    peak = matmul_gflops()
    print(f"matmul 2048x2048 float32: {peak:.1f} GFLOP/s")
    g = torch.Generator().manual_seed(0)
    x = torch.randn(BATCH, 1, 28, 28, generator=g).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (BATCH,), generator=g)
    for label, name in (("default CNN", None), ("fashion-best CNN", "fashion-best")):
        flops = step_flops(model_of(name), x, y)
        base = None
        for variant, bf16, compiled in (("eager fp32", False, False), ("eager bf16", True, False),
                                        ("compiled fp32", False, True),
                                        ("compiled bf16", True, True)):  # fmt: skip
            model = model_of(name)
            if compiled:
                model = torch.compile(model)
            first, median = timed(step_fn(model, bf16), x, y, args.reps)
            base = base or median
            extra = f"  {flops / median / 1e9:6.1f} GFLOP/s = {flops / median / 1e9 / peak:.0%} " \
                    "of matmul" if variant == "eager fp32" else ""  # fmt: skip
            print(f"{label:<17} {variant:<14} {median * 1e3:7.1f} ms/step ({median / base:4.2f}x)"
                  f"  first step {first:5.1f} s{extra}")  # fmt: skip
    print(f"protocol: batch {BATCH}, channels-last, SGD momentum; median of {args.reps} steps "
          f"after {WARMUP} warm-up steps; ratios vs eager fp32 of the same model")  # fmt: skip


if __name__ == "__main__":
    main()
