"""Momentum's advantage grows with the condition number (seed 000, "SGD + Momentum": plain SGD
crawls along shallow directions of an ill-conditioned valley; Polyak 1964): on a quadratic of
condition number kappa, gradient descent with its best constant step needs O(kappa log 1/eps)
steps and heavy-ball momentum with Polyak's constants O(sqrt(kappa) log 1/eps)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from trainlab import optim
from trainlab.durable import save_figure
from trainlab.lab.registry import Finding, experiment, verdict

TOL = 1e-6  # ||x_k|| / ||x_0||
DIM = 50


def _steps_to_tolerance(kappa: float, lr: float, momentum: float, limit: int) -> int | None:
    """Steps of trainlab's `sgd` (torch.optim.SGD's momentum form, the library's rule) on
    f(x) = 1/2 sum_i lambda_i x_i^2, lambda log-spaced in [1, kappa], from x_0 = 1."""
    lam = torch.logspace(0, math.log10(kappa), DIM, dtype=torch.float64)
    x = torch.ones(DIM, dtype=torch.float64)
    start = float(x.norm())
    t = optim.sgd(lr, momentum=momentum)
    state = t.init([x])
    for k in range(1, limit + 1):
        update, state = t.update([lam * x], state, [x])
        x = x + update[0]
        if float(x.norm()) < TOL * start:
            return k
    return None


def _constants(kappa: float) -> dict[str, tuple[float, float]]:
    """GD's best constant step 2/(L+mu), and Polyak's heavy-ball constants (mu = 1, L = kappa)."""
    root = math.sqrt(kappa)
    heavy = (4 / (root + 1) ** 2, ((root - 1) / (root + 1)) ** 2)
    return {"gradient descent": (2 / (kappa + 1), 0.0), "heavy-ball momentum": heavy}


@experiment("momentum-conditioning", deck="seed 000 (CS231n, SGD + Momentum)",
            claim="steps to converge grow like kappa for GD but like sqrt(kappa) with momentum",
            minutes=0.5)  # fmt: skip
def run(out: Path, quick: bool, seed: int) -> Finding:
    kappas = [10.0, 100.0, 1000.0] if quick else [10.0, 100.0, 1000.0, 10000.0]
    steps: dict[str, list[int]] = {}
    for name in ("gradient descent", "heavy-ball momentum"):
        for kappa in kappas:
            lr, beta = _constants(kappa)[name]
            found = _steps_to_tolerance(kappa, lr, beta, limit=int(40 * kappa * 14) + 1000)
            steps.setdefault(name, []).append(found if found is not None else -1)
    logk = np.log(kappas)
    slopes = {n: float(np.polyfit(logk, np.log(s), 1)[0]) for n, s in steps.items()}
    gd, hb = slopes["gradient descent"], slopes["heavy-ball momentum"]
    fig = Figure(figsize=(5, 3.6))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for name, s in steps.items():
        ax.loglog(kappas, s, "o-", label=f"{name} (slope {slopes[name]:.2f})")
    ax.set(xlabel="condition number kappa", ylabel=f"steps to ||x||/||x0|| < {TOL:g}",
           title="Momentum and conditioning")  # fmt: skip
    ax.legend()
    table = [["kappa", *steps]] + [
        [k, *(s[i] for s in steps.values())] for i, k in enumerate(kappas)
    ]
    return Finding(
        numbers={"slope_gradient_descent": gd, "slope_momentum": hb, "kappas": kappas,
                 "steps_gradient_descent": steps["gradient descent"],
                 "steps_momentum": steps["heavy-ball momentum"]},
        verdict=verdict(0.8 <= gd <= 1.2 and 0.35 <= hb <= 0.65),
        rule="holds if the fitted slope of log(steps) vs log(kappa) is in [0.8, 1.2] for GD "
             "and in [0.35, 0.65] for momentum (theory: 1 and 1/2)",
        figures=[save_figure(fig, out / "momentum_conditioning.png")],
        table=table,
        note=f"slopes: gradient descent {gd:.2f}, heavy-ball momentum {hb:.2f}.",
    )  # fmt: skip
