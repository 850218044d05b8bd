"""L2 regularization and weight decay are the same thing for SGD but not for Adam (Loshchilov
& Hutter 2019, "Decoupled Weight Decay Regularization"; seed 000, "AdamW"): with plain SGD the
coupled L2 gradient g + lambda*theta and the decoupled shrink theta *= 1 - lr*lambda (applied
separately, before the gradient step, as SGDW / torch's AdamW do) give the same iterates up to
rounding; with Adam the L2 term is rescaled per coordinate by the adaptive denominator, so
Adam + L2 and AdamW follow different paths. Heavy-ball momentum breaks the equivalence too (the
L2 term is accumulated in the velocity), which the experiment also measures."""

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


LR_SGD, LR_ADAM, MOMENTUM = 0.05, 1e-3, 0.9

# name -> (the library's transform, the lr of a separate multiplicative shrink, or None)
ARMS: dict[str, tuple] = {
    "sgd + L2": (lambda: optim.sgd(LR_SGD, weight_decay=LAMBDA), None),
    "sgd + decoupled decay": (lambda: optim.sgd(LR_SGD), LR_SGD),
    "momentum + L2": (lambda: optim.sgd(LR_SGD, MOMENTUM, weight_decay=LAMBDA), None),
    "momentum + decoupled decay": (lambda: optim.sgd(LR_SGD, MOMENTUM), LR_SGD),
    "adam + L2": (lambda: optim.adam(LR_ADAM, weight_decay=LAMBDA), None),
    "adamw (decoupled)": (lambda: optim.adamw(LR_ADAM, weight_decay=LAMBDA), None),
}


class ShrinkThenStep(optim.Optimizer):
    """Decoupled decay as its own step (SGDW; Loshchilov & Hutter 2019, Algorithm 1): take the
    gradient at theta, then ``theta *= 1 - shrink`` (``shrink = lr*lambda``), then the wrapped
    rule's gradient step -- arithmetic independent of the coupled ``g + lambda*theta``."""

    def __init__(self, params, transform: optim.Transform, shrink: float) -> None:
        super().__init__(params, transform, flat_params=False)
        self.shrink = shrink

    def step(self, closure=None):  # noqa: ANN001, ANN201 - torch's signature
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        with torch.no_grad():
            for group in self.param_groups:
                torch._foreach_mul_(group["params"], 1.0 - self.shrink)
        super().step()
        return loss


def _train(arm: tuple, epochs: int, seed: int, subset: int) -> tuple:
    data = load_dataset("digits")
    scale = float(data.train.x.max())  # pixels 0..16 -> 0..1
    x = data.train.x[:subset].double().flatten(1) / scale
    y = data.train.y[:subset]
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(x.shape[1], 64), nn.Tanh(), nn.Linear(64, 10)).double()
    loader = InMemoryLoader(type(data.train)(x, y), batch_size=32, seed=seed)
    make, shrink = arm
    if shrink is None:
        opt = optim.Optimizer(model.parameters(), make(), flat_params=False)
    else:
        opt = ShrinkThenStep(model.parameters(), make(), shrink * LAMBDA)
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
    results = {name: _train(arm, epochs, seed, subset) for name, arm in ARMS.items()}
    sgd_gap = _relative(results["sgd + L2"][0], results["sgd + decoupled decay"][0])
    momentum_gap = _relative(results["momentum + L2"][0], results["momentum + decoupled decay"][0])
    adam_gap = _relative(results["adam + L2"][0], results["adamw (decoupled)"][0])
    fig = Figure(figsize=(5, 3.2))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.bar(["SGD", "SGD + momentum", "Adam vs AdamW"],
           [max(sgd_gap, 1e-18), momentum_gap, adam_gap])  # fmt: skip
    ax.set(yscale="log", ylabel="relative distance of the final weights",
           title="Coupled L2 vs decoupled weight decay")  # fmt: skip
    table = [["optimizer", "test accuracy"]] + [[n, r[1]] for n, r in results.items()]
    return Finding(
        numbers={"sgd_relative_distance": sgd_gap, "momentum_relative_distance": momentum_gap,
                 "adam_relative_distance": adam_gap,
                 **{f"test_acc {n}": r[1] for n, r in results.items()}, "epochs": epochs},
        verdict=verdict(sgd_gap < 1e-10 and adam_gap > 1e-3),
        rule="holds if SGD's two final weight vectors agree to < 1e-10 (relative, float64) "
             "and Adam's differ by > 1e-3",
        figures=[save_figure(fig, out / "l2_vs_decay.png")],
        table=table,
        note=f"after {epochs} epochs: plain SGD's L2 and decoupled-decay runs differ by "
             f"{sgd_gap:.1e} (rounding), Adam + L2 and AdamW by {adam_gap:.1e}; with momentum "
             f"0.9 the SGD pair differs too ({momentum_gap:.1e}), so the deck's equivalence is "
             "for plain SGD only.",
    )  # fmt: skip
