"""Optimizer paths on the classic test surfaces (seed 000, CS231n's optimizer animations;
seed 003): SGD, momentum, Nesterov, AdaGrad, RMSProp, Adadelta, Adam, NAdam and SAM (all
trainlab optimizers) on Beale, Rosenbrock, Himmelblau, the saddle x^2 - y^2 and an
ill-conditioned quadratic. Each optimizer's learning rate is the best of one log grid by the
final value after N steps (the same grid and N for all), not tuned per picture."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from matplotlib.animation import PillowWriter
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from trainlab import optim
from trainlab.durable import replacing, save_figure
from trainlab.lab.registry import Finding, experiment, verdict

Fn = Callable[[torch.Tensor], torch.Tensor]
TOL = 1e-6

FUNCTIONS: dict[str, tuple[Fn, tuple[float, float], float, tuple[float, float, float, float]]] = {
    # name: (f, start, f*, plot box)
    "beale": (lambda p: (1.5 - p[0] + p[0] * p[1]) ** 2 + (2.25 - p[0] + p[0] * p[1] ** 2) ** 2
              + (2.625 - p[0] + p[0] * p[1] ** 3) ** 2, (3.0, 4.0), 0.0, (-4.5, 4.5, -4.5, 4.5)),
    "rosenbrock": (lambda p: (1 - p[0]) ** 2 + 100 * (p[1] - p[0] ** 2) ** 2, (-2.0, 2.0), 0.0,
                   (-2.5, 2.0, -1.0, 3.0)),
    "himmelblau": (lambda p: (p[0] ** 2 + p[1] - 11) ** 2 + (p[0] + p[1] ** 2 - 7) ** 2,
                   (-1.0, -1.0), 0.0, (-5.0, 5.0, -5.0, 5.0)),
    "ill-conditioned quadratic": (lambda p: 0.5 * (p[0] ** 2 + 100 * p[1] ** 2), (-4.0, 1.0), 0.0,
                                  (-4.5, 4.5, -1.5, 1.5)),
    "saddle": (lambda p: p[0] ** 2 - p[1] ** 2, (1.0, 1e-3), -math.inf, (-1.5, 1.5, -1.5, 1.5)),
}  # fmt: skip

OPTIMIZERS: dict[str, Callable[[float, list[torch.Tensor]], torch.optim.Optimizer]] = {
    "sgd": lambda lr, p: optim.Optimizer(p, optim.sgd(lr)),
    "momentum": lambda lr, p: optim.Optimizer(p, optim.sgd(lr, momentum=0.9)),
    "nesterov": lambda lr, p: optim.Optimizer(p, optim.sgd(lr, momentum=0.9, nesterov=True)),
    "adagrad": lambda lr, p: optim.Optimizer(p, optim.adagrad(lr)),
    "rmsprop": lambda lr, p: optim.Optimizer(p, optim.rmsprop(lr)),
    "adadelta": lambda lr, p: optim.Optimizer(p, optim.adadelta(lr)),
    "adam": lambda lr, p: optim.Optimizer(p, optim.adam(lr)),
    "nadam": lambda lr, p: optim.Optimizer(p, optim.nadam(lr)),
    "sam": lambda lr, p: optim.SAM(p, optim.sgd(lr, momentum=0.9), optim.sam_policy(0.05)),
}


def _path(fn: Fn, start: tuple[float, float], make: Callable, lr: float, steps: int) -> np.ndarray:
    """Iterates (steps + 1, 2) of one optimizer from ``start``; stops early at a non-finite f."""
    p = torch.tensor(start, dtype=torch.float64, requires_grad=True)
    opt = make(lr, [p])
    path = [p.detach().clone()]

    def closure() -> torch.Tensor:
        opt.zero_grad()
        value = fn(p)
        value.backward()
        return value

    for _ in range(steps):
        opt.step(closure)
        if not torch.isfinite(p).all() or not math.isfinite(float(fn(p.detach()))):
            break
        path.append(p.detach().clone())
    return torch.stack(path).numpy()


def _best(fn: Fn, f_star: float, start: tuple, make: Callable, grid: np.ndarray,
          steps: int) -> tuple:  # fmt: skip
    """The grid's learning rate that reaches f - f* < TOL in the fewest steps, ties (and runs
    that never reach it) broken by the lowest final f; diverged runs are out. For the saddle
    (f* = -inf) that is simply the lowest final f."""
    best, best_key = None, None
    for lr in grid:
        path = _path(fn, start, make, float(lr), steps)
        if len(path) < steps + 1:
            continue  # diverged
        final = float(fn(torch.from_numpy(path[-1])))
        hit = _steps_to(fn, path, f_star) if math.isfinite(f_star) else None
        key = (hit if hit is not None else steps + 1, final)
        if best_key is None or key < best_key:
            best, best_key = (float(lr), final, path), key
    return best if best is not None else (math.nan, math.inf, np.array([start]))


def _steps_to(fn: Fn, path: np.ndarray, f_star: float) -> int | None:
    """The first step whose f - f* < TOL, or None."""
    values = fn(torch.from_numpy(path.T)).numpy() - f_star
    hit = np.flatnonzero(values < TOL)
    return int(hit[0]) if len(hit) else None


def _contour(ax, fn: Fn, box: tuple, paths: dict[str, np.ndarray]) -> None:  # noqa: ANN001
    xs, ys = np.linspace(box[0], box[1], 160), np.linspace(box[2], box[3], 160)
    grid = torch.from_numpy(np.stack(np.meshgrid(xs, ys)))
    z = fn(grid).numpy()
    ax.contour(xs, ys, np.log1p(z - z.min()), 25, cmap="Greys", linewidths=0.5)
    for name, path in paths.items():
        ax.plot(path[:, 0], path[:, 1], lw=1, label=name)
    ax.set(xlim=box[:2], ylim=box[2:])


def _gif(fn: Fn, box: tuple, paths: dict[str, np.ndarray], path: Path, frames: int) -> Path:
    """An animation of every optimizer's path (``frames`` frames)."""
    fig = Figure(figsize=(4.5, 4))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    _contour(ax, fn, box, {})
    lines = {n: ax.plot([], [], lw=1, label=n)[0] for n in paths}
    ax.legend(fontsize=6, loc="upper right")
    longest = max(len(p) for p in paths.values())
    writer = PillowWriter(fps=10)
    with replacing(path) as tmp, writer.saving(fig, str(tmp.with_suffix(".gif")), dpi=60):
        for k in np.linspace(1, longest, frames).astype(int):
            for n, p in paths.items():
                lines[n].set_data(p[:k, 0], p[:k, 1])
            writer.grab_frame()
        tmp.with_suffix(".gif").replace(tmp)
    return path


@experiment("trajectories", deck="seed 000 (CS231n, optimizer animations) / seed 003",
            claim="momentum and adaptive methods reach the minimum of the classic surfaces in "
                  "fewer steps than plain SGD", minutes=2.0)  # fmt: skip
def run(out: Path, quick: bool, seed: int) -> Finding:
    steps, grid = (150, np.logspace(-4, 0, 5)) if quick else (1000, np.logspace(-6, 0, 13))
    rows, figures, faster = [["function", *OPTIMIZERS]], [], []
    verdicts: dict[str, tuple[int, int, int]] = {}
    finals: dict[str, dict[str, float]] = {}
    fig = Figure(figsize=(15, 3.4))
    FigureCanvasAgg(fig)
    for k, (name, (fn, start, f_star, box)) in enumerate(FUNCTIONS.items()):
        best = {o: _best(fn, f_star, start, make, grid, steps) for o, make in OPTIMIZERS.items()}
        paths = {o: b[2] for o, b in best.items()}
        ax = fig.add_subplot(1, len(FUNCTIONS), k + 1)
        _contour(ax, fn, box, paths)
        ax.set_title(name, fontsize=9)
        if f_star == -math.inf:  # the saddle: how far each got off the ridge
            escaped = [float(abs(p[-1, 1])) for p in paths.values()]
            rows.append([f"{name}: |y| after {steps} steps", *escaped])
        else:
            hit = {o: _steps_to(fn, p, f_star) for o, p in paths.items()}
            shown = [h if h is not None else "did not" for h in hit.values()]
            rows.append([f"{name}: steps to f - f* < {TOL:g}", *shown])
            count = {o: (h if h is not None else steps + 1) for o, h in hit.items()}
            faster.append(count["momentum"] < count["sgd"] and count["adam"] < count["sgd"])
            verdicts[name] = (count["sgd"], count["momentum"], count["adam"])
            finals[name] = {o: b[1] - f_star for o, b in best.items()}
        figures.append(
            _gif(fn, box, paths, out / f"{name.replace(' ', '_')}.gif", 20 if quick else 60)
        )
        rows.append([f"{name}: chosen lr", *(b[0] for b in best.values())])
    fig.axes[-1].legend(fontsize=6)
    figures.insert(0, save_figure(fig, out / "trajectories.png"))
    wins = sum(faster)
    return Finding(
        numbers={"functions where momentum and adam beat sgd": wins, "of": len(faster),
                 **{f"{n}: final f - f*": v for n, v in finals.items()},
                 "steps": steps, "lr grid": [float(v) for v in grid]},
        verdict=verdict(wins >= 3),
        rule="holds if momentum and Adam both reach f - f* < 1e-6 in fewer steps than plain "
             "SGD (never reaching counts as N+1) on at least 3 of the 4 functions with a "
             "minimum; each optimizer's lr is the one of the same log grid (1e-6..1, half "
             "decades) reaching the tolerance soonest, ties broken by the final f",
        figures=figures,
        table=rows,
        note=f"momentum and Adam beat SGD on {wins} of {len(faster)} functions in {steps} "
             f"steps. Steps (SGD, momentum, Adam; {steps + 1} = never): "
             + "; ".join(f"{n} {v}" for n, v in verdicts.items())
             + ". Where it fails, either no method reaches 1e-6 in the budget or plain SGD at "
               "its best rate is already fast (a well-conditioned minimum).",
    )  # fmt: skip
