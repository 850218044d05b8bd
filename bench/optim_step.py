"""Optimizer step time: trainlab.optim aliases vs torch.optim (fused / foreach / for-loop).

Protocol: float32 CPU parameter lists shaped like ResNet-20 (59 tensors, 0.27M parameters) and
like a ~10M-parameter CNN; gradients are fixed random tensors set once. For each optimizer
(SGD momentum 0.9, Adam, AdamW wd=1e-2) every implementation is warmed up, then timed in
interleaved repetitions (impl A, B, C, D, A, B, ...), each repetition the mean of a block of
``step()`` calls; we print the median over repetitions and the ratios to torch's fused and
foreach steps measured in the same run. Our step is ``trainlab.optim.Optimizer(params, alias)
.step()`` — the full adapter path a training loop uses (default "fast" backend: the bucketed
in-place kernels of ``trainlab.optim.fused``; from 2M elements in big tensors, as in the 10M
case, one compiled pass over them, ``trainlab.optim.compiled`` — its first step compiles, printed
separately and excluded from the timings).
Machine noise is large on a shared 2-core box: read the ratios, not the microseconds.

Run: ``python bench/optim_step.py [--reps 15] [--threads 1] [--compiled]``. ``--compiled`` also
times ``use_backend("compiled")`` (the compiled pass at every size).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable

import torch

import trainlab.optim as to


def resnet20_shapes() -> list[tuple[int, ...]]:
    """CIFAR ResNet-20 (He et al. 2016, option-A shortcuts): 59 tensors, 0.27M parameters."""
    shapes: list[tuple[int, ...]] = [(16, 3, 3, 3), (16,), (16,)]
    cin = 16
    for c in (16, 32, 64):
        for _ in range(3):
            shapes += [(c, cin, 3, 3), (c,), (c,), (c, c, 3, 3), (c,), (c,)]
            cin = c
    return shapes + [(10, 64), (10,)]


def cnn10m_shapes() -> list[tuple[int, ...]]:
    """A VGG-like stack of ~9.7M parameters in 28 tensors (conv weights + BN pairs + head)."""
    shapes: list[tuple[int, ...]] = []
    cin = 3
    for c in (64, 128, 256, 256, 512, 512, 512, 512):
        shapes += [(c, cin, 3, 3), (c,), (c,)]
        cin = c
    return shapes + [(1000, 512), (1000,), (10, 1000), (10,)]


def make_params(shapes: list[tuple[int, ...]]) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    params = [torch.randn(s, generator=g).requires_grad_() for s in shapes]
    for p in params:
        p.grad = torch.randn(p.shape, generator=g) * 1e-3
    return params


OPTIMIZERS: dict[str, tuple[Callable[..., to.Transform], type, dict]] = {
    "sgd-momentum": (to.sgd, torch.optim.SGD, dict(lr=0.01, momentum=0.9)),
    "adam": (to.adam, torch.optim.Adam, dict(lr=1e-3)),
    "adamw": (to.adamw, torch.optim.AdamW, dict(lr=1e-3, weight_decay=1e-2)),
}


def build(shapes, name: str) -> dict[str, torch.optim.Optimizer]:
    ours, cls, kw = OPTIMIZERS[name]
    impls = {}
    for impl in ("torch-fused", "torch-foreach", "torch-forloop", "trainlab"):
        params = make_params(shapes)
        if impl == "trainlab":
            impls[impl] = to.Optimizer(params, ours(**kw))
            t0 = time.perf_counter()
            impls[impl].step()
            print(f"    ({name}: trainlab first step {time.perf_counter() - t0:.2f} s)")
        else:
            flags = {"torch-fused": dict(fused=True), "torch-foreach": dict(foreach=True)}
            impls[impl] = cls(params, **kw, **flags.get(impl, dict(foreach=False)))
    return impls


def bench(shapes, name: str, reps: int, block: int, ours_builder=None) -> dict[str, float]:
    impls = build(shapes, name)
    for extra, make in (ours_builder or {}).items():
        impls[extra] = make(shapes, name)
    for opt in impls.values():
        for _ in range(3):
            opt.step()
    times: dict[str, list[float]] = {k: [] for k in impls}
    order = list(impls)
    for r in range(reps):
        # Interleaved, and the order rotates each repetition so no implementation always runs
        # right after the same neighbour.
        for k in order[r % len(order) :] + order[: r % len(order)]:
            opt = impls[k]
            t0 = time.perf_counter()
            for _ in range(block):
                opt.step()
            times[k].append((time.perf_counter() - t0) / block)
    return {k: statistics.median(v) for k, v in times.items()}


def compiled_builder(shapes, name: str) -> torch.optim.Optimizer:
    ours, _, kw = OPTIMIZERS[name]
    with to.use_backend("compiled"):
        opt = to.Optimizer(make_params(shapes), ours(**kw))
    t0 = time.perf_counter()
    opt.step()
    print(f"    ({name}: compiled backend, first step {time.perf_counter() - t0:.2f} s)")
    return opt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=15)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument("--sizes", default="resnet20,cnn10m")
    parser.add_argument("--optimizers", default=",".join(OPTIMIZERS))
    parser.add_argument(
        "--compiled", action="store_true", help="also time use_backend('compiled') (compiles)"
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    load = os.getloadavg()
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{platform.processor() or platform.machine()}, load average "
        f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )
    print(
        f"protocol: float32, fixed grads; 3 warm-up steps each; {args.reps} interleaved "
        "repetitions (rotating order), each the mean of a block of steps; medians; ratios to "
        "torch fused (xF) and torch foreach (xE) of the same run"
    )
    extra = {"trainlab-compiled": compiled_builder} if args.compiled else {}
    sizes = {"resnet20": (resnet20_shapes(), 20), "cnn10m": (cnn10m_shapes(), 3)}
    for label in args.sizes.split(","):
        shapes, block = sizes[label]
        n = sum(torch.Size(s).numel() for s in shapes)
        print(f"\n{label}: {len(shapes)} tensors, {n / 1e6:.2f}M params (median of {args.reps})")
        for name in args.optimizers.split(","):
            med = bench(shapes, name, args.reps, block, extra)
            fused, foreach = med["torch-fused"], med["torch-foreach"]
            cells = "  ".join(
                f"{k} {v * 1e6:7.0f}us" for k, v in med.items() if not k.startswith("trainlab")
            )
            print(f"  {name:13s} {cells}")
            for k, v in med.items():
                if k.startswith("trainlab"):
                    print(
                        f"  {'':13s} {k:18s} {v * 1e6:7.0f}us  {v / fused:5.2f}xF  "
                        f"{v / foreach:5.2f}xE"
                    )
    load = os.getloadavg()
    print(f"\nload average at the end {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


if __name__ == "__main__":
    main()
