"""L2 regularization and weight decay are the same thing for SGD but not for Adam (Loshchilov
& Hutter 2019, "Decoupled Weight Decay Regularization"; seed 000, "AdamW"): with plain SGD the
coupled L2 gradient g + lambda*theta and the decoupled step theta -= lr*lambda*theta give the
same iterates; with Adam the L2 term is rescaled per coordinate by the adaptive denominator,
so Adam + L2 and AdamW follow different paths."""

from __future__ import annotations

from pathlib import Path

import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from torch import nn

from trainlab import optim
from trainlab.data import InMemoryLoader, load_dataset
from trainlab.durable import save_figure
from trainlab.lab.registry import Finding, experiment, verdict
from trainlab.train import evaluate, fit, get_loss

LAMBDA = 1e-3


def _optimizers(lr_sgd: float, lr_adam: float) -> dict[str, optim.Transform]:
    """The four update rules, all trainlab transforms (the library's, not copies)."""
    return {
        "sgd + L2": optim.sgd(lr_sgd, weight_decay=LAMBDA),
        "sgd + decoupled decay": optim.chain(
            optim.add_decayed_weights(LAMBDA), optim.scale_by_lr(lr_sgd)),
        "adam + L2": optim.adam(lr_adam, weight_decay=LAMBDA),
        "adamw (decoupled)": optim.adamw(lr_adam, weight_decay=LAMBDA),
    }  # fmt: skip


def _train(transform: optim.Transform, epochs: int, seed: int, subset: int) -> tuple:
    data = load_dataset("digits")
    scale = float(data.train.x.max())  # pixels 0..16 -> 0..1
    x = data.train.x[:subset].double().flatten(1) / scale
    y = data.train.y[:subset]
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(x.shape[1], 64), nn.Tanh(), nn.Linear(64, 10)).double()
    loader = InMemoryLoader(type(data.train)(x, y), batch_size=32, seed=seed)
    opt = optim.Optimizer(model.parameters(), transform, flat_params=False)
    fit(model, loader, opt, get_loss("cross_entropy"), epochs=epochs)
    test = type(data.test)(data.test.x.double().flatten(1) / scale, data.test.y)
    _, acc = evaluate(model, test, get_loss("cross_entropy"))
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()]), acc


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


@experiment("l2-vs-weight-decay", deck="seed 000 (AdamW); Loshchilov & Hutter 2019",
            claim="L2 and weight decay coincide for SGD but differ for Adam",
            minutes=0.3)  # fmt: skip
def run(out: Path, quick: bool, seed: int) -> Finding:
    epochs, subset = (2, 400) if quick else (10, 1200)
    results = {name: _train(t, epochs, seed, subset) for name, t in _optimizers(0.05, 1e-3).items()}
    sgd_gap = _relative(results["sgd + L2"][0], results["sgd + decoupled decay"][0])
    adam_gap = _relative(results["adam + L2"][0], results["adamw (decoupled)"][0])
    fig = Figure(figsize=(5, 3.2))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.bar(["SGD: L2 vs decay", "Adam: L2 vs AdamW"], [max(sgd_gap, 1e-18), adam_gap])
    ax.set(yscale="log", ylabel="relative distance of the final weights",
           title="Coupled L2 vs decoupled weight decay")  # fmt: skip
    table = [["optimizer", "test accuracy"]] + [[n, r[1]] for n, r in results.items()]
    return Finding(
        numbers={"sgd_relative_distance": sgd_gap, "adam_relative_distance": adam_gap,
                 **{f"test_acc {n}": r[1] for n, r in results.items()}, "epochs": epochs},
        verdict=verdict(sgd_gap < 1e-10 and adam_gap > 1e-3),
        rule="holds if SGD's two final weight vectors agree to < 1e-10 (relative, float64) "
             "and Adam's differ by > 1e-3",
        figures=[save_figure(fig, out / "l2_vs_decay.png")],
        table=table,
        note=f"after {epochs} epochs: SGD's L2 and decay runs differ by {sgd_gap:.1e} "
             f"(rounding), Adam + L2 and AdamW by {adam_gap:.1e}.",
    )  # fmt: skip
