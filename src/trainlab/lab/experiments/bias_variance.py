"""The bias-variance trade-off (seeds 000/003; Geman et al. 1992): fit models
of growing capacity (polynomial degree) to many training sets of a noisy 1-D regression task;
over a test grid, bias^2 (squared error of the mean prediction) falls with capacity while the
variance of the predictions across training sets rises. Measured two ways: with independent
training sets drawn from the task (the definition; the verdict) and with bootstrap resamples
of one training set (what one can do in practice)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from trainlab.data import TensorSplit
from trainlab.durable import save_figure
from trainlab.lab.registry import Finding, experiment, verdict
from trainlab.train.ensembles import bootstrap_split

NOISE, N = 0.3, 100


def _target(x: torch.Tensor) -> torch.Tensor:
    return torch.sin(2 * math.pi * x)


def _features(x: torch.Tensor, degree: int) -> torch.Tensor:
    """Legendre-like scaled powers of x in [-1, 1] (well conditioned up to degree ~12)."""
    return torch.stack(
        [torch.special.legendre_polynomial_p(2 * x - 1, k) for k in range(degree + 1)], 1
    )


def _draw(g: torch.Generator) -> TensorSplit:
    """A training set of the task: N points, y = sin(2 pi x) + N(0, NOISE^2)."""
    x = torch.rand(N, generator=g, dtype=torch.float64)
    return TensorSplit(x, _target(x) + NOISE * torch.randn(N, generator=g, dtype=torch.float64))


def _bias_variance(
    split: TensorSplit | None, degree: int, models: int, seed: int
) -> tuple[float, float]:
    """bias^2 and variance over a grid, across ``models`` fits: to bootstrap resamples of
    ``split``, or to fresh training sets when ``split`` is None."""
    grid = torch.linspace(0.05, 0.95, 200, dtype=torch.float64)  # inside the data
    g = torch.Generator().manual_seed(seed)
    preds = []
    for _ in range(models):
        boot = _draw(g) if split is None else bootstrap_split(split, g)
        coef = torch.linalg.lstsq(_features(boot.x, degree), boot.y.unsqueeze(1)).solution
        preds.append((_features(grid, degree) @ coef).squeeze(1))
    stack = torch.stack(preds)
    var = stack.var(0, correction=1)
    # (mean - f)^2 overstates bias^2 by the mean's own variance, var / models: subtract it
    bias2 = ((stack.mean(0) - _target(grid)) ** 2 - var / models).clamp_min(0)
    return float(bias2.mean()), float(var.mean())


def _spearman(a: list[float], b: list[float]) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


@experiment("bias-variance", deck="seed 000 / 003 (bias-variance trade-off); seed 001 Fig. 1",
            claim="as capacity grows, bias^2 falls and variance rises", minutes=0.1)  # fmt: skip
def run(out: Path, quick: bool, seed: int) -> Finding:
    models = 100 if quick else 400
    split = _draw(torch.Generator().manual_seed(seed + 1))
    degrees = list(range(1, 13))
    results = [_bias_variance(None, d, models, seed) for d in degrees]
    boot = [_bias_variance(split, d, models, seed) for d in degrees]
    bias2, var = [r[0] for r in results], [r[1] for r in results]
    rb, rv = _spearman(degrees, bias2), _spearman(degrees, var)
    boot_rb = _spearman(degrees, [r[0] for r in boot])
    fig = Figure(figsize=(5, 3.5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.semilogy(degrees, bias2, "o-", label="bias^2")
    ax.semilogy(degrees, var, "s-", label="variance")
    ax.semilogy(degrees, np.add(bias2, var), "k--", label="bias^2 + variance")
    ax.semilogy(degrees, [r[0] for r in boot], ":", c="C0", label="bias^2, bootstrap of one set")
    ax.semilogy(degrees, [r[1] for r in boot], ":", c="C1", label="variance, bootstrap")
    ax.set(xlabel="polynomial degree (capacity)", title=f"{models} fits per degree")
    ax.legend(fontsize=7)
    best = degrees[int(np.argmin(np.add(bias2, var)))]
    return Finding(
        numbers={"spearman(degree, bias^2)": rb, "spearman(degree, variance)": rv,
                 "bootstrap: spearman(degree, bias^2)": boot_rb,
                 "best degree": best, "models per degree": models,
                 **{f"degree {d}: bias^2, variance": [b, v]
                    for d, b, v in zip(degrees, bias2, var, strict=True)}},
        verdict=verdict(rb < -0.7 and rv > 0.7),
        rule="holds if, over independent training sets, the rank correlation of degree with "
             "bias^2 is < -0.7 and with the variance > 0.7",
        figures=[save_figure(fig, out / "bias_variance.png")],
        note=f"rank correlations: bias^2 {rb:.2f}, variance {rv:.2f}; the sum is lowest at "
             f"degree {best}. With bootstrap resamples of one set the 'bias' correlates "
             f"{boot_rb:.2f} with degree: that set's own noise is in every resample, so its "
             "overfitting shows up as bias, not variance.",
    )  # fmt: skip
