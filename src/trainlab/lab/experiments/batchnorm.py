"""What BatchNorm buys (seed 000, CS231n "Batch Normalization": "allows higher learning rates,
reduces the strong dependence on initialization"; Ioffe & Szegedy 2015): the same MLP on a
Fashion-MNIST subset with and without BatchNorm, (a) the largest learning rate that does not
diverge, found by the lectures' halving search, (b) test accuracy across weight-init scales."""

from __future__ import annotations

from pathlib import Path

import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from torch import nn

from trainlab import optim
from trainlab.data import InMemoryLoader
from trainlab.diagnose import halving_search
from trainlab.durable import save_figure
from trainlab.init import get_initializer
from trainlab.lab.experiments._fashion import fashion_subset, step_losses
from trainlab.lab.registry import Finding, experiment, verdict
from trainlab.nn import mlp
from trainlab.train import evaluate, get_loss

NORMS = {"without BatchNorm": "none", "with BatchNorm": "batch"}


def _model(norm: str, seed: int, std: float | None = None) -> nn.Module:
    torch.manual_seed(seed)
    model = mlp((1, 28, 28), 10, widths=(100, 100), norm=norm)
    if std is not None:  # every Linear weight redrawn from N(0, std^2)
        init, g = get_initializer("normal", std=std), torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for m in model.modules():
                if isinstance(m, nn.Linear):
                    m.weight.copy_(init(tuple(m.weight.shape), generator=g))
    return model


@experiment("batchnorm-lr", deck="seed 000 (CS231n, Batch Normalization)",
            claim="BatchNorm allows much higher learning rates", minutes=0.5)  # fmt: skip
def run_lr(out: Path, quick: bool, seed: int) -> Finding:
    n, steps = (2000, 60) if quick else (10000, 300)
    train, _ = fashion_subset(n, 100, seed)
    loss = get_loss("cross_entropy")
    found = {}
    for name, norm in NORMS.items():

        def fresh(lr: float, norm: str = norm) -> tuple[nn.Module, torch.optim.Optimizer]:
            model = _model(norm, seed)
            return model, optim.Optimizer(model.parameters(), optim.sgd(lr))

        found[name] = halving_search(
            fresh, loss, InMemoryLoader(train, 64, seed=seed), 256.0, steps
        )
    lr = {k: r.lr for k, r in found.items()}
    plain, bn = lr["without BatchNorm"], lr["with BatchNorm"]
    fig = Figure(figsize=(5, 3.2))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for name, r in found.items():
        ax.plot([t.lr for t in r.trail], [min(t.final_loss, 10) for t in r.trail], "o-", label=name)
    ax.set(xscale="log", xlabel="learning rate tried (halving from 256)",
           ylabel="final smoothed loss (10 = diverged)", title="Halving search")  # fmt: skip
    ax.legend()
    ratio = bn / plain if bn and plain else None
    return Finding(
        numbers={"largest stable lr without BN": plain, "largest stable lr with BN": bn,
                 "ratio": ratio, "steps per try": steps},
        verdict=verdict(None if ratio is None else ratio >= 2),
        rule="holds if the halving search's stable rate with BatchNorm is at least twice the "
             "rate without (each try: plain SGD for the given steps; stable = finite and below "
             "the first batch's loss)",
        figures=[save_figure(fig, out / "batchnorm_lr.png")],
        note=f"stable rates: without BN {plain}, with BN {bn}.",
    )  # fmt: skip


@experiment("batchnorm-init", deck="seed 000 (CS231n, Batch Normalization)",
            claim="BatchNorm reduces the dependence on the initialization scale",
            minutes=1.0)  # fmt: skip
def run_init(out: Path, quick: bool, seed: int) -> Finding:
    n, steps = (2000, 150) if quick else (10000, 800)
    stds = [1e-3, 1e-1, 1.0] if quick else [1e-3, 1e-2, 1e-1, 1.0, 3.0]
    train, test = fashion_subset(n, 1000, seed)
    loss = get_loss("cross_entropy")
    acc: dict[str, list[float]] = {}
    for name, norm in NORMS.items():
        for std in stds:
            model = _model(norm, seed, std)
            opt = optim.Optimizer(model.parameters(), optim.sgd(0.05, momentum=0.9))
            step_losses(model, opt, loss, InMemoryLoader(train, 64, seed=seed), steps)
            acc.setdefault(name, []).append(float(evaluate(model, test, loss)[1] or 0.0))
    spread = {k: max(v) - min(v) for k, v in acc.items()}
    fig = Figure(figsize=(5, 3.2))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for name, values in acc.items():
        ax.semilogx(stds, values, "o-", label=name)
    ax.set(xlabel="init std of every weight", ylabel="test accuracy", title="Init scale")
    ax.legend()
    return Finding(
        numbers={**{f"{k}: test accuracy by std": v for k, v in acc.items()},
                 **{f"{k}: spread": s for k, s in spread.items()}, "stds": stds},
        verdict=verdict(spread["with BatchNorm"] < spread["without BatchNorm"]),
        rule="holds if the spread (max - min) of test accuracy across init scales is smaller "
             "with BatchNorm",
        figures=[save_figure(fig, out / "batchnorm_init.png")],
        table=[["init std", *acc],
               *([s, *(v[i] for v in acc.values())] for i, s in enumerate(stds))],
        note=f"accuracy spread across init scales: without BN {spread['without BatchNorm']:.2f}, "
             f"with BN {spread['with BatchNorm']:.2f}.",
    )  # fmt: skip
