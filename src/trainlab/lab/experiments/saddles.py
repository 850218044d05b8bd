"""Saddle points and negative curvature along training (Dauphin et al. 2014, "Identifying and
attacking the saddle point problem"; seeds 000/003: in high dimension critical points of high
loss are mostly saddles, and the fraction of negative Hessian eigenvalues shrinks as the loss
falls): the full Hessian spectrum of a small MLP on digits at several points of training."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from torch import nn

from trainlab import optim
from trainlab.data import InMemoryLoader, TensorSplit, load_dataset
from trainlab.durable import save_figure
from trainlab.lab.registry import Finding, experiment, verdict
from trainlab.landscape.hessian import make_hvp
from trainlab.landscape.loss import loss_of_params, model_params
from trainlab.train import evaluate, get_loss
from trainlab.train.loop import train_step

ZERO = 1e-4  # |lambda| below ZERO * lambda_max counts as zero (flat directions, rounding)


def _spectrum(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """Every eigenvalue of the training-loss Hessian, built column by column from the
    library's Hessian-vector products (double backward)."""
    params = model_params(model)
    hvp = make_hvp(loss_of_params(model, get_loss("cross_entropy"), (x, y)), params)
    sizes = [p.numel() for p in params]
    columns = []
    for i in range(sum(sizes)):
        e = torch.zeros(sum(sizes), dtype=torch.float64)
        e[i] = 1.0
        v = [c.view_as(p) for c, p in zip(e.split(sizes), params, strict=True)]
        columns.append(torch.cat([h.reshape(-1) for h in hvp(v)]))
    h = torch.stack(columns, 1)
    return torch.linalg.eigvalsh((h + h.T) / 2).numpy()


def _data(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    data = load_dataset("digits").train
    x = data.x.flatten(1).double() / float(data.x.max())
    return x[:n], data.y[:n]


@experiment("saddles", deck="seed 000 / 003 (saddle points); Dauphin et al. 2014",
            claim="negative curvature is common early in training and shrinks as the loss "
                  "falls", minutes=0.5)  # fmt: skip
def run(out: Path, quick: bool, seed: int) -> Finding:
    n, steps = (300, 300) if quick else (1000, 2000)
    x, y = _data(n)
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(64, 6), nn.Tanh(), nn.Linear(6, 10)).double()
    opt = optim.Optimizer(model.parameters(), optim.sgd(0.5, momentum=0.9), flat_params=False)
    loader = InMemoryLoader(TensorSplit(x, y), batch_size=32, seed=seed)
    marks = sorted({0, steps // 20, steps // 4, steps})
    spectra: dict[int, np.ndarray] = {}
    losses: dict[int, float] = {}
    step, epoch = 0, 0
    while step <= steps:
        for xb, yb in loader.epoch(epoch):
            if step in marks:
                spectra[step] = _spectrum(model, x, y)
                losses[step] = evaluate(model, TensorSplit(x, y), get_loss("cross_entropy"))[0]
            if step == steps:
                break
            train_step(model, opt, get_loss("cross_entropy"), xb, yb)
            step += 1
        epoch += 1
        if step == steps and steps in spectra:
            break
    neg = {s: float((e < -ZERO * e.max()).mean()) for s, e in spectra.items()}
    ratio = {s: float(-e.min() / e.max()) for s, e in spectra.items()}
    early, last = marks[1], marks[-1]
    fig = Figure(figsize=(9, 3.4))
    FigureCanvasAgg(fig)
    for k, s in enumerate(marks):
        ax = fig.add_subplot(1, len(marks), k + 1)
        ax.hist(spectra[s], bins=60, log=True)
        ax.set_title(f"step {s}: loss {losses[s]:.2f}\n{neg[s]:.0%} negative", fontsize=8)
    return Finding(
        numbers={"parameters": int(sum(p.numel() for p in model.parameters())),
                 **{f"step {s}: loss": losses[s] for s in marks},
                 **{f"step {s}: negative fraction": neg[s] for s in marks},
                 **{f"step {s}: -min/max eigenvalue": ratio[s] for s in marks}},
        verdict=verdict(neg[last] < neg[early]),
        rule=f"holds if the index (fraction of negative eigenvalues, below -{ZERO:g} "
             f"lambda_max; smaller ones count as zero) falls from step {early} to the end "
             f"(step {last}), as Dauphin et al.'s index-vs-error relation says; "
             "-lambda_min / lambda_max is reported, not judged",
        figures=[save_figure(fig, out / "saddles.png")],
        table=[["step", "loss", "negative fraction", "-min/max"],
               *([s, losses[s], neg[s], ratio[s]] for s in marks)],
        note="negative fraction by step: "
             + ", ".join(f"{s}: {neg[s]:.1%}" for s in marks)
             + f". The most negative eigenvalue does not shrink with it: -min/max goes "
               f"{ratio[early]:.2f} -> {ratio[last]:.2f} (fewer, but not flatter, negative "
               "directions).",
    )  # fmt: skip
