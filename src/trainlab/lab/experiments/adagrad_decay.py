"""AdaGrad's effective step shrinks like 1/sqrt(t) (seed 000, "AdaGrad": the step size decays
as the squared gradients add up; Duchi et al. 2011)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from trainlab import optim
from trainlab.durable import save_figure
from trainlab.lab.registry import Finding, experiment, verdict

TOLERANCE = 0.1  # |fitted exponent - (-1/2)| for "holds"


def _effective_steps(steps: int, seed: int, at_optimum: bool) -> np.ndarray:
    """lr / (sqrt(r_t) + eps) per coordinate, along stochastic gradients of a noisy
    least-squares problem, from trainlab's `scale_by_adagrad` state (the library's rule);
    started at the least-squares solution (stationary, pure-noise gradients) or at zero."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(512, 8, generator=g, dtype=torch.float64)
    noise = 0.5 * torch.randn(512, generator=g, dtype=torch.float64)
    y = x @ torch.randn(8, generator=g, dtype=torch.float64) + noise
    w = torch.zeros(8, dtype=torch.float64)
    if at_optimum:
        w = torch.linalg.lstsq(x, y.unsqueeze(1)).solution.squeeze(1)
    t = optim.scale_by_adagrad(eps=1e-10)
    state = t.init([w])
    lr, out = 0.1, []
    for _ in range(steps):
        i = torch.randint(0, 512, (16,), generator=g)
        grad = x[i].T @ (x[i] @ w - y[i]) / 16
        direction, state = t.update([grad], state, [w])
        w = w - lr * direction[0]
        out.append((lr / (state.sum_sq[0].sqrt() + 1e-10)).numpy().copy())
    return np.array(out)


@experiment("adagrad-decay", deck="seed 000 (CS231n, AdaGrad)",
            claim="AdaGrad's effective per-coordinate step decays like 1/sqrt(t)",
            minutes=0.2)  # fmt: skip
def run(out: Path, quick: bool, seed: int) -> Finding:
    steps = 400 if quick else 5000
    t = np.arange(1, steps + 1)
    tail = t >= 10
    fitted = {}
    for start, at_optimum in (("optimum", True), ("zero", False)):
        eff = _effective_steps(steps, seed, at_optimum)
        fitted[start] = [np.polyfit(np.log(t[tail]), np.log(eff[tail, k]), 1)[0]
                         for k in range(eff.shape[1])]  # fmt: skip
    slopes = fitted["optimum"]
    mean = float(np.mean(slopes))
    converging = float(np.mean(fitted["zero"]))
    fig = Figure(figsize=(5, 3.5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    eff = _effective_steps(steps, seed, True)
    ax.loglog(t, eff, lw=0.8, alpha=0.7)
    ax.loglog(t, eff[9].mean() * np.sqrt(10 / t), "k--", label="slope -1/2")
    ax.set(xlabel="step t", ylabel="effective step lr/sqrt(r_t)", title="AdaGrad's step decay")
    ax.legend()
    path = save_figure(fig, out / "adagrad_decay.png")
    return Finding(
        numbers={"fitted_exponent_mean": mean, "fitted_exponent_min": float(min(slopes)),
                 "fitted_exponent_max": float(max(slopes)),
                 "fitted_exponent_from_zero": converging, "steps": steps},
        verdict=verdict(abs(mean + 0.5) < TOLERANCE),
        rule=f"holds if, with stationary gradients (started at the optimum), the mean log-log "
             f"slope over t >= 10 is within {TOLERANCE} of -1/2",
        figures=[path],
        note=f"fitted exponent {mean:.3f} with stationary gradients (deck: -0.5); started far "
             f"from the optimum the early large gradients dominate the sum and the fitted "
             f"exponent over the same steps is only {converging:.3f}: the 1/sqrt(t) law is "
             f"asymptotic.",
    )  # fmt: skip
