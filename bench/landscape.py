"""A 21x21 loss plane: trainlab's surface (vmap or point loop, chosen by timing) against the
reference tools' method (a point loop that writes θ + α d₁ + β d₂ into the model with
`load_state_dict` and calls it), measured in the same run.

Protocol: two models, float32 on CPU, freshly initialized with the recipe's seed, BatchNorm in
eval mode, two filter-normalized directions (Li et al. 2018, biases and norms ignored), grid
21x21 over [-1, 1]², cross-entropy and accuracy at each of the 441 points:

    cnn  the default recipe's model (`trainlab.run.config.Recipe()`: 3 conv+BN stages 32-64-128,
         channels_last as the recipe trains it), the first 1000 Fashion-MNIST test images of
         the recipe's splits, one batch of 1000
    mlp  MLP 40-32-32-10 (2,698 parameters) on MNIST-1D, 256 test examples (one batch of 256)

One *run* of ours is `plane_surface(..., evaluator="auto")` from scratch (the timing probe
that picks the evaluator is inside the run); one run of the loop computes loss and accuracy at
each point, as ours does. After a warm-up of each on a 3x3 grid, the two methods run in
interleaved repetitions, in ABBA order (ours, loop, loop, ours, ...) so that a machine load
drifting during the runs cancels out; we print the medians, the ratio loop / ours (> 1: ours
is faster), the evaluator chosen and the largest difference between the two loss surfaces.
`--mlp-examples 1000` measures the MLP on 1000 examples (4 batches of 256) instead of one batch.

Run: ``python bench/landscape.py [--reps 3] [--models cnn mlp] [--threads N]``.

Measured on the shared 2-core VM (torch 2.13 CPU), 2 threads, quiet machine (load 1.0),
2 reps ABBA, both models in one run (2026-11-22):
- cnn, 1000 images: ours 84.9 s ± 3.0 (loop chosen, 186 ms/point: the loop evaluates in
  forward calls of `micro_batch` = 112 images, which stay in cache), loop 179.9 s ± 0.9,
  loop / ours = 2.12x, max |diff| 4.7e-07. Before micro-batching ours was 0.95x (198 vs
  188 s): the 1000-image forward runs out of cache (measured 400-480 ms vs 180-190 ms/point).
- mlp, 256 examples: ours 0.07 s (vmap chosen: loop 0.53 ms/point, vmap 0.12), loop 0.25 s,
  3.82x, max |diff| 7.2e-07.
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from trainlab.landscape.directions import plane_directions, state_names, state_of
from trainlab.landscape.surface import SplitData, grid_axis, plane_surface
from trainlab.run.config import Recipe
from trainlab.run.experiment import build


def cnn_case(examples: int) -> tuple[nn.Module, list[tuple[Tensor, Tensor]]]:
    """The default recipe's CNN and its first `examples` test images (one batch)."""
    exp = build(Recipe())
    x, y = exp.test.x[:examples], exp.test.y[:examples]
    if exp.recipe.train.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return exp.model, [(x, y)]


def mlp_case(examples: int, batch: int) -> tuple[nn.Module, list[tuple[Tensor, Tensor]]]:
    """An MLP 40-32-32-10 on MNIST-1D's test split, in batches of `batch`."""
    exp = build(Recipe(data={"name": "mnist1d", "normalize": "per_feature"},
                       model={"name": "mlp", "widths": [32, 32]}))  # fmt: skip
    x, y = exp.test.x[:examples], exp.test.y[:examples]
    return exp.model, [(x[i : i + batch], y[i : i + batch]) for i in range(0, len(x), batch)]


def ours(model, batches, dirs, axis) -> tuple[float, np.ndarray, str]:
    start = time.perf_counter()
    s = plane_surface(model, F.cross_entropy, {"test": SplitData(batches)}, dirs, axis)
    return time.perf_counter() - start, s.loss["test"], s.evaluator["test"]


@torch.no_grad()
def reference_loop(model, batches, dirs, axis) -> tuple[float, np.ndarray, str]:
    """The reference tools' method: for each point, load θ + α d₁ + β d₂ into the model and run
    it over the batches (on a copy, so the bench's model stays as it was)."""
    start = time.perf_counter()
    net = copy.deepcopy(model).eval()
    names = state_names(net)
    theta = [t.clone() for t in state_of(net, names)]  # load_state_dict writes into net
    state = net.state_dict()
    total = sum(len(y) for _, y in batches)
    out = np.zeros((len(axis), len(axis)))
    for j, b in enumerate(axis):
        for i, a in enumerate(axis):
            point = {n: t + a * d1 + b * d2
                     for n, t, d1, d2 in zip(names, theta, *dirs, strict=True)}  # fmt: skip
            net.load_state_dict({**state, **point})
            loss = correct = 0.0
            for x, y in batches:
                logits = net(x)
                loss += F.cross_entropy(logits, y).item() * len(y)
                correct += (logits.argmax(-1) == y).sum().item()
            out[j, i] = loss / total
    return time.perf_counter() - start, out, "load_state_dict loop"


def bench(name: str, model: nn.Module, batches, reps: int) -> None:
    names = state_names(model)
    dirs = plane_directions(state_of(model, names), torch.Generator().manual_seed(0))
    axis = grid_axis(-1.0, 1.0, 21)
    params = sum(p.numel() for p in model.parameters())
    times: dict[str, list[float]] = {"ours": [], "loop": []}
    surfaces, chosen = {}, []
    ours(model, batches, dirs, grid_axis(-1.0, 1.0, 3))  # warm-up on a 3x3 grid
    reference_loop(model, batches, dirs, grid_axis(-1.0, 1.0, 3))
    methods = [("ours", ours), ("loop", reference_loop)]
    for rep in range(reps):  # ABBA order: a load that drifts over the runs cancels out
        for label, fn in methods if rep % 2 == 0 else methods[::-1]:
            seconds, surface, how = fn(model, batches, dirs, axis)
            times[label].append(seconds)
            surfaces[label] = surface
            if label == "ours":
                chosen.append(how)
    med = {k: statistics.median(v) for k, v in times.items()}
    spread = {k: statistics.stdev(v) if len(v) > 1 else 0.0 for k, v in times.items()}
    diff = float(np.abs(surfaces["ours"] - surfaces["loop"]).max())
    print(f"{name}: {params} parameters, {sum(len(y) for _, y in batches)} examples, "
          f"batches of {len(batches[0][1])}, 21x21 plane")  # fmt: skip
    print(f"  ours  {med['ours']:8.2f} s ± {spread['ours']:.2f}   chosen: {chosen[-1]}")
    print(f"  loop  {med['loop']:8.2f} s ± {spread['loop']:.2f}   (load_state_dict per point)")
    print(f"  loop / ours = {med['loop'] / med['ours']:.2f}x   max |difference| = {diff:.2e}")
    print(f"  evaluators chosen over the runs: {sorted(set(c.split(' ')[0] for c in chosen))}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--models", nargs="+", default=["mlp", "cnn"], choices=["mlp", "cnn"])
    p.add_argument("--mlp-examples", type=int, default=256)
    p.add_argument("--examples", type=int, default=1000)
    p.add_argument("--threads", type=int)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {platform.machine()}, {torch.get_num_threads()} threads, "
          f"load average {os.getloadavg()[0]:.2f}, {args.reps} interleaved reps")  # fmt: skip
    for name in args.models:
        model, batches = (
            cnn_case(args.examples) if name == "cnn" else mlp_case(args.mlp_examples, 256)
        )
        torch.set_num_threads(args.threads or torch.get_num_threads())
        bench(name, model, batches, args.reps)


if __name__ == "__main__":
    main()
