"""SAM's training-step cost as a ratio to its base optimizer's step (target: at most 2.1x).

Protocol: the Fashion-MNIST-shaped CNN of the model zoo (``cnn((1, 28, 28), 10)``: 3 conv+BN
stages of 32/64/128 channels, ~94k parameters), float32 on CPU, one fixed random batch of 128
images and labels, cross-entropy. One *step* is the whole training step a loop pays for:

    base:  zero_grad; forward; backward; Optimizer(params, sgd(0.05, momentum=0.9)).step()
    SAM:   SAM(params, sgd(0.05, momentum=0.9), policy, model=model).step(closure)
           (two forward/backward passes, perturb, restore, BN buffers kept to pass 1)

After a warm-up, the variants are timed in interleaved repetitions (base, SAM, OG-SAM, base,
...), each repetition the mean of a block of steps; we print medians and the ratio to the base
step measured in the same run. A shared 2-core box is noisy: read the ratios.

Run: ``python bench/sam_step.py [--reps 15] [--block 3] [--threads N]``. On a loaded 2-core
machine, ``--threads 1`` avoids OpenMP oversubscription (2 threads ran 1.5-8x slower per step
under a load average of ~4, with the same ratio).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable

import torch

from trainlab.nn.zoo import cnn
from trainlab.optim.aliases import sgd
from trainlab.optim.sam_policies import og_sam_policy, sam_policy
from trainlab.optim.sharpness import SAM
from trainlab.optim.torch_adapter import Optimizer


def make_step(kind: str, x: torch.Tensor, y: torch.Tensor) -> Callable[[], None]:
    torch.manual_seed(0)
    model = cnn((1, 28, 28), 10)
    loss_fn = torch.nn.functional.cross_entropy

    def closure() -> torch.Tensor:
        loss = loss_fn(model(x), y)
        loss.backward()
        return loss

    if kind == "base":
        opt = Optimizer(model.parameters(), sgd(0.05, momentum=0.9))

        def step() -> None:
            opt.zero_grad()
            closure()
            opt.step()

        return step
    policy = sam_policy(0.05) if kind == "SAM" else og_sam_policy(0.05)
    sam = SAM(model.parameters(), sgd(0.05, momentum=0.9), policy, model=model)
    return lambda: sam.step(closure)


def wrapper_overhead(reps: int, block: int = 50) -> dict[str, float]:
    """Median seconds per step with a closure that only installs fixed gradients (no forward or
    backward): the optimizer-side cost of base vs SAM (perturb, copy, restore, BN buffers)."""
    torch.manual_seed(0)
    model = cnn((1, 28, 28), 10)
    params = list(model.parameters())
    fixed = [torch.randn_like(p) for p in params]

    def install() -> None:
        for p, g in zip(params, fixed, strict=True):
            p.grad = g.clone()

    base = Optimizer(params, sgd(0.05, momentum=0.9))
    sam = SAM(params, sgd(0.05, momentum=0.9), sam_policy(0.05), model=model)

    def base_step() -> None:
        base.zero_grad()
        install()
        base.step()

    fns = {"base": base_step, "SAM": lambda: sam.step(install)}
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(reps):
        for k, f in fns.items():
            t0 = time.perf_counter()
            for _ in range(block):
                f()
            times[k].append((time.perf_counter() - t0) / block)
    return {k: statistics.median(v) for k, v in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=15)
    parser.add_argument("--block", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(128, 1, 28, 28, generator=g)
    y = torch.randint(0, 10, (128,), generator=g)
    kinds = ["base", "SAM", "OG-SAM"]
    steps = {k: make_step(k, x, y) for k in kinds}
    for k in kinds:  # warm-up
        for _ in range(2):
            steps[k]()
    times: dict[str, list[float]] = {k: [] for k in kinds}
    for _ in range(args.reps):
        for k in kinds:
            t0 = time.perf_counter()
            for _ in range(args.block):
                steps[k]()
            times[k].append((time.perf_counter() - t0) / args.block)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{platform.processor() or platform.machine()}, load {os.getloadavg()[0]:.2f}; "
        f"median of {args.reps} interleaved reps x {args.block} steps, batch 128"
    )
    for k in kinds:
        spread = f"[{min(times[k]) * 1e3:.1f}, {max(times[k]) * 1e3:.1f}]"
        print(f"  {k:7s} {med[k] * 1e3:8.1f} ms  {spread:>16s}  {med[k] / med['base']:.2f}x base")
    print(f"SAM / base = {med['SAM'] / med['base']:.2f} (target <= 2.1)")
    over = wrapper_overhead(args.reps)
    print(
        f"optimizer side only (closure installs fixed grads): base {over['base'] * 1e6:.0f} us, "
        f"SAM {over['SAM'] * 1e6:.0f} us per step"
    )


if __name__ == "__main__":
    main()
