"""Where a training step's time goes: torch.profiler's top operators (self CPU time) for a
recipe's steps in fp32 and in bf16 autocast, to choose what to speed up (issue #18, item 3).

Protocol: the recipe's model, optimizer and loss as `trainlab train` builds them; WARMUP steps,
then STEPS profiled steps through `trainlab.train.loop.train_step` on the recipe's batches;
the top TOP operators by self CPU time, with their share of the total. The same run's 2048
matmul GFLOP/s is printed as the anchor of the machine's speed.
Run: .venv/bin/python bench/profile_step.py [RECIPE] [--steps N] [--top N]
"""

from __future__ import annotations

import argparse
import itertools

import torch
from _machine import cpu_line, matmul_gflops
from torch.profiler import ProfilerActivity, profile

from trainlab.run.bundled import recipe_file
from trainlab.run.config import load_recipe
from trainlab.run.experiment import build
from trainlab.train.loop import train_step


def top_ops(recipe_name: str | None, autocast: torch.dtype | None, steps: int, top: int) -> None:
    recipe = load_recipe(None if recipe_name is None else recipe_file(recipe_name))
    exp = build(recipe)
    batches = itertools.cycle(list(itertools.islice(exp.loader.epoch(0), steps + 5)))
    fmt = torch.channels_last if recipe.train.channels_last else torch.contiguous_format

    def step() -> None:
        x, y = next(batches)
        x = x.contiguous(memory_format=fmt) if x.dim() == 4 else x
        train_step(exp.model, exp.optimizer, exp.loss_fn, x, y, autocast=autocast)

    for _ in range(5):
        step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    name = "fp32" if autocast is None else "bf16 autocast"
    print(f"\n{recipe.name}, {name}: {total / steps / 1000:.1f} ms of operator time per step")
    for e in sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:top]:
        share = 100 * e.self_cpu_time_total / total
        print(f"  {e.key:42s} {e.self_cpu_time_total / steps / 1000:7.2f} ms  {share:5.1f}%")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipe", nargs="?", help="bundled name or file (default recipe)")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--top", type=int, default=8)
    opts = parser.parse_args()
    print(cpu_line())
    print(f"anchor: matmul 2048^2 fp32: {matmul_gflops():.1f} GFLOP/s, "
          f"{torch.get_num_threads()} threads")  # fmt: skip
    for autocast in (None, torch.bfloat16):
        top_ops(opts.recipe, autocast, opts.steps, opts.top)


if __name__ == "__main__":
    main()
