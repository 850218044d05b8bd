"""Training with input noise is L2 regularization (Bishop 1995, "Training with Noise is
Equivalent to Tikhonov Regularization"; seed 000, "Suppose we add Gaussian noise to the
inputs"; seed 004, "Input-noise"): for linear least squares with loss (1/2N) sum (y - w.x)^2
and inputs x + eps, eps ~ N(0, sigma^2 I), the expected loss is the clean loss plus
(sigma^2 / 2) ||w||^2 -- ridge regression with lambda = sigma^2, whose
minimiser is (X^T X / N + sigma^2 I)^{-1} X^T y / N."""

from __future__ import annotations

from pathlib import Path

import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from torch import nn

from trainlab import optim
from trainlab.data import InMemoryLoader, TensorSplit
from trainlab.durable import save_figure
from trainlab.lab.registry import Finding, experiment, verdict
from trainlab.nn import GaussianNoise
from trainlab.schedules import get_schedule
from trainlab.train import fit

SIGMA, DIM, N, TOLERANCE = 0.5, 8, 1000, 0.02


def _problem(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(N, DIM, generator=g, dtype=torch.float64)
    y = x @ torch.randn(DIM, generator=g, dtype=torch.float64)
    return x, y + 0.1 * torch.randn(N, generator=g, dtype=torch.float64)


def _closed_form(x: torch.Tensor, y: torch.Tensor, lam: float) -> torch.Tensor:
    gram = x.T @ x / len(x) + lam * torch.eye(x.shape[1], dtype=x.dtype)
    return torch.linalg.solve(gram, x.T @ y / len(x))


def _noise_trained(x: torch.Tensor, y: torch.Tensor, epochs: int, seed: int) -> torch.Tensor:
    """A linear model behind trainlab's GaussianNoise(sigma), full-batch SGD with a cosine
    decay to zero (fresh noise every step)."""
    model = nn.Sequential(GaussianNoise(SIGMA), nn.Linear(DIM, 1, bias=False)).double()
    nn.init.zeros_(model[1].weight)
    loss = lambda out, t: 0.5 * (out.squeeze(-1) - t).pow(2).mean()  # noqa: E731
    loader = InMemoryLoader(TensorSplit(x, y), batch_size=len(x), seed=seed)
    opt = optim.Optimizer(model.parameters(), optim.sgd(0.2))
    fit(
        model,
        loader,
        opt,
        loss,
        epochs=epochs,
        schedule=get_schedule("cosine", lr=0.2, total_steps=epochs),
    )
    return model[1].weight.detach().reshape(-1)


@experiment("noise-is-l2", deck="seed 000 (Gaussian noise on the inputs) / seed 004; Bishop 1995",
            claim="training with Gaussian input noise sigma equals ridge with lambda = sigma^2",
            minutes=0.3)  # fmt: skip
def run(out: Path, quick: bool, seed: int) -> Finding:
    epochs = 400 if quick else 4000
    x, y = _problem(seed)
    ridge, ols = _closed_form(x, y, SIGMA**2), _closed_form(x, y, 0.0)
    noisy = _noise_trained(x, y, epochs, seed)
    to_ridge = float((noisy - ridge).norm() / ridge.norm())
    to_ols = float((noisy - ols).norm() / ols.norm())
    fig = Figure(figsize=(5, 3.4))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    idx = range(DIM)
    ax.plot(idx, ols.numpy(), "s", label="least squares (no noise)")
    ax.plot(idx, ridge.numpy(), "o", label=f"ridge, lambda = sigma^2 = {SIGMA**2:g}")
    ax.plot(idx, noisy.numpy(), "x", label=f"trained with input noise sigma = {SIGMA:g}")
    ax.set(xlabel="weight index", ylabel="value", title="Input noise as Tikhonov regularization")
    ax.legend(fontsize=7)
    return Finding(
        numbers={"relative_distance_to_ridge": to_ridge, "relative_distance_to_ols": to_ols,
                 "sigma": SIGMA, "lambda": SIGMA**2, "epochs": epochs},
        verdict=verdict(to_ridge < TOLERANCE and to_ridge < to_ols / 5),
        rule=f"holds if the noise-trained weights are within {TOLERANCE:.0%} (relative) of the "
             "ridge closed form with lambda = sigma^2, and 5x closer to it than to plain least "
             "squares",
        figures=[save_figure(fig, out / "noise_is_l2.png")],
        note=f"{epochs} full-batch noisy epochs: {to_ridge:.2%} from ridge, {to_ols:.1%} from "
             "least squares.",
    )  # fmt: skip
