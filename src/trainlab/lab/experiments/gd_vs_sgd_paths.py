"""Gradient descent vs stochastic and minibatch gradient descent on a 2-D convex problem (seed
000/001: full-batch GD follows the smooth steepest path, SGD's single-example gradients make
a noisy path that keeps hovering around the optimum, minibatches in between): linear least
squares in two weights, the same learning rate and number of steps for each."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from trainlab import optim
from trainlab.data import InMemoryLoader, TensorSplit
from trainlab.durable import save_figure
from trainlab.lab.registry import Finding, experiment, verdict

N, LR = 256, 0.3
START = torch.tensor([-2.0, 3.0], dtype=torch.float64)


def _problem(seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(N, 2, generator=g, dtype=torch.float64) * torch.tensor(
        [1.0, 0.4], dtype=torch.float64
    )
    y = x @ torch.tensor([1.0, -1.0], dtype=torch.float64) + 0.5 * torch.randn(
        N, generator=g, dtype=torch.float64
    )
    w_star = torch.linalg.lstsq(x, y.unsqueeze(1)).solution.squeeze(1)
    return x, y, w_star


def _path(x: torch.Tensor, y: torch.Tensor, batch: int, steps: int, seed: int) -> np.ndarray:
    """Iterates of trainlab's `sgd` on (1/2b) sum (y - w.x)^2 over the loader's batches."""
    w, t = START.clone(), optim.sgd(LR)
    state, path = t.init([w]), [w.clone()]
    batches = InMemoryLoader(TensorSplit(x, y), batch_size=batch, seed=seed)
    epoch = 0
    while len(path) <= steps:
        for xb, yb in batches.epoch(epoch):
            grad = xb.T @ (xb @ w - yb) / len(yb)
            update, state = t.update([grad], state, [w])
            w = w + update[0]
            path.append(w.clone())
            if len(path) > steps:
                break
        epoch += 1
    return torch.stack(path).numpy()


def _figure(x: torch.Tensor, y: torch.Tensor, paths: dict[str, np.ndarray], path: Path) -> Path:
    fig = Figure(figsize=(5.5, 4.5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    a, b = np.meshgrid(np.linspace(-2.5, 2.5, 120), np.linspace(-2.5, 3.5, 120))
    grid = torch.from_numpy(np.stack([a.ravel(), b.ravel()], 1))
    loss = (0.5 * ((x @ grid.T - y[:, None]) ** 2).mean(0)).reshape(a.shape).numpy()
    ax.contour(a, b, np.log(loss), 20, cmap="Greys")
    for name, p in paths.items():
        ax.plot(p[:, 0], p[:, 1], lw=0.8, label=name)
    ax.set(xlabel="w1", ylabel="w2", title="GD vs minibatch vs stochastic GD")
    ax.legend(fontsize=8)
    return save_figure(fig, path)


@experiment("gd-vs-sgd-paths", deck="seed 000 / 001 (SGD vs GD)",
            claim="GD's path is smooth; SGD's is noisy and hovers around the optimum, less so "
                  "with bigger minibatches", minutes=0.1)  # fmt: skip
def run(out: Path, quick: bool, seed: int) -> Finding:
    steps = 300 if quick else 1000
    x, y, w_star = _problem(seed)
    batches = {"full batch (GD)": N, "minibatch 16": 16, "single example (SGD)": 1}
    paths = {n: _path(x, y, b, steps, seed) for n, b in batches.items()}
    length = {n: float(np.linalg.norm(np.diff(p, axis=0), axis=1).sum()) for n, p in paths.items()}
    tail = {n: float(np.linalg.norm(p[-steps // 5:] - w_star.numpy(), axis=1).mean())
            for n, p in paths.items()}  # fmt: skip
    gd, mb, sgd = (tail[n] for n in batches)
    holds = length["single example (SGD)"] > length["full batch (GD)"] and sgd > mb > gd
    return Finding(
        numbers={**{f"path length {n}": v for n, v in length.items()},
                 **{f"mean distance to optimum, last 20%, {n}": v for n, v in tail.items()},
                 "steps": steps, "lr": LR},
        verdict=verdict(holds),
        rule="holds if the single-example path is longer than GD's, and the mean distance to "
             "the optimum over the last 20% of steps orders single example > minibatch 16 > GD",
        figures=[_figure(x, y, paths, out / "gd_vs_sgd_paths.png")],
        table=[["batch", "path length", "hover distance"],
               *([n, length[n], tail[n]] for n in batches)],
        note=f"hover distances: GD {gd:.2g}, minibatch 16 {mb:.2g}, single example {sgd:.2g}.",
    )  # fmt: skip
