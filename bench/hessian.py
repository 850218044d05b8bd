"""Top Hessian eigenvalue by 20 power iterations: three Hessian-vector products compared.

Protocol: the model zoo's CNN ``cnn((1, 28, 28), 10, channels=(16, 32, 48))`` (3 conv+BN
stages, 19,258 parameters, freshly initialized with seed 0), float32 on CPU, 1000 Fashion-MNIST
training images (a seeded random subset; random images if the set is not on disk) as one
batch, cross-entropy, BatchNorm in eval mode. One *run* is
``top_eigenvalues_power(make_hvp(loss, params, method), params, 1, max_iter=20, tol=0)``:
exactly 20 Hessian-vector products, timed from building the HVP (so the graph of the kept
double backward is paid inside the run) to the eigenvalue. Methods:

    double_backward  gradient graph built once (create_graph), one backward per product
                     (anchor = 1.00; PyHessian's single-batch method)
    func             torch.func.jvp of torch.func.grad (forward-over-reverse), per product
    rebuild          double backward with the gradient graph rebuilt for every product

After one warm-up run each, the methods run in interleaved repetitions (double_backward, func,
rebuild, double_backward, ...); we print each method's median seconds and its ratio to the
anchor's median measured in the same run, and the eigenvalues (they agree up to float32
rounding). A shared 2-core box is noisy: read the ratios. ANCHORS.md measured, for a similar
CNN: double backward 1.00, PyHessian 1.07x, torch.func jvp-of-grad 1.51x.

Run: ``python bench/hessian.py [--reps 5] [--iters 20] [--examples 1000] [--threads N]``.
It takes about 6 runs x 3 methods x 20-80 s on a loaded 2-core box (~30 min); ``--threads 1``
avoids OpenMP oversubscription there (as in bench/sam_step.py).

Measured (2-core VM under a load average of 2-5, --threads 1, 5 reps):
double_backward 45.5 s = 1.00, func 1.69x, rebuild 1.49x; eigenvalue 0.550029 by all three
(max difference 6e-8).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import torch
import torch.nn.functional as F

from trainlab.landscape import loss_of_params, make_hvp, model_params, top_eigenvalues_power
from trainlab.nn.zoo import cnn

METHODS = ("double_backward", "func", "rebuild")


def load_images(n: int) -> tuple[torch.Tensor, torch.Tensor, str]:
    """n Fashion-MNIST training images and labels (seeded subset), or random ones."""
    try:
        from trainlab.data.registry import load_dataset

        bundle = load_dataset("fashion_mnist", download=False)
        idx = torch.randperm(len(bundle.train.x), generator=torch.Generator().manual_seed(0))[:n]
        return bundle.train.x[idx].float(), bundle.train.y[idx], f"Fashion-MNIST ({bundle.source})"
    except Exception as error:  # noqa: BLE001 (any failure to load falls back to random data)
        gen = torch.Generator().manual_seed(0)
        x = torch.rand(n, 1, 28, 28, generator=gen)
        return x, torch.randint(0, 10, (n,), generator=gen), f"random images ({error})"


def run_once(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, method: str, iters: int):
    start = time.perf_counter()
    loss = loss_of_params(model, F.cross_entropy, (x, y))
    params = model_params(model)
    hvp = make_hvp(loss, params, method)
    top = top_eigenvalues_power(hvp, params, 1, max_iter=iters, tol=0.0, seed=0)
    return time.perf_counter() - start, float(top.values[0]), top.iterations[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--examples", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = cnn((1, 28, 28), 10, channels=(16, 32, 48))
    x, y, source = load_images(args.examples)
    n_params = sum(p.numel() for p in model.parameters())
    print(
        f"# torch {torch.__version__}, {platform.machine()}, {os.cpu_count()} cores, "
        f"{torch.get_num_threads()} threads; CNN {n_params} params; {len(x)} images from "
        f"{source}; {args.iters} power iterations; {args.reps} interleaved reps, medians"
    )
    times: dict[str, list[float]] = {m: [] for m in METHODS}
    values: dict[str, float] = {}
    for method in METHODS:  # warm-up
        _, values[method], _ = run_once(model, x, y, method, args.iters)
    for rep in range(args.reps):
        for method in METHODS:
            seconds, values[method], steps = run_once(model, x, y, method, args.iters)
            assert steps == args.iters
            times[method].append(seconds)
        done = ", ".join(f"{m} {times[m][-1]:.1f} s" for m in METHODS)
        print(f"# rep {rep + 1}/{args.reps}: {done}", flush=True)
    anchor = statistics.median(times["double_backward"])
    print(
        f"{'method':18s} {'median s':>9s} {'ratio':>7s} {'min s':>8s} {'max s':>8s}  top eigenvalue"
    )
    for method in METHODS:
        med = statistics.median(times[method])
        print(
            f"{method:18s} {med:9.3f} {med / anchor:6.2f}x {min(times[method]):8.3f} "
            f"{max(times[method]):8.3f}  {values[method]:.6g}"
        )
    spread = max(values.values()) - min(values.values())
    relative = spread / abs(values["double_backward"])
    print(f"# eigenvalues differ by at most {spread:.3g} ({relative:.1e} relative)")


if __name__ == "__main__":
    main()
