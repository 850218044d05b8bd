"""L1 regularization makes weights sparse, L2 only small (seed 002, "L1, L2
Regularizations"; seed 000, "L1 penalty"; Tibshirani 1996): softmax regression on 8x8 digits
with an L1 penalty and with the L2 penalty whose training loss matches it, compared by the
fraction of near-zero weights. Subgradient L1 with SGD (`trainlab.optim.add_l1`) leaves
weights jittering around zero rather than exactly at it, so near-zero means |w| < THRESHOLD."""

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
from trainlab.train import evaluate, fit, get_loss

THRESHOLD = 1e-3
L1 = 2e-3
L2_GRID = (1e-3, 3e-3, 1e-2, 3e-2, 1e-1)


def _train(transform: optim.Transform, epochs: int, seed: int) -> tuple[torch.Tensor, float]:
    data = load_dataset("digits")
    x = data.train.x.flatten(1).double() / float(data.train.x.max())
    split = TensorSplit(x, data.train.y)
    torch.manual_seed(seed)
    model = nn.Linear(x.shape[1], 10).double()
    loss = get_loss("cross_entropy")
    opt = optim.Optimizer(model.parameters(), transform)
    fit(model, InMemoryLoader(split, batch_size=32, seed=seed), opt, loss, epochs=epochs)
    return model.weight.detach().reshape(-1), evaluate(model, split, loss)[0]


def _near_zero(w: torch.Tensor) -> float:
    return float((w.abs() < THRESHOLD).double().mean())


@experiment("l1-sparsity", deck="seed 002 (L1, L2 regularizations) / seed 000; Tibshirani 1996",
            claim="an L1 penalty gives sparse weights, an L2 penalty at the same training "
                  "loss does not", minutes=0.5)  # fmt: skip
def run(out: Path, quick: bool, seed: int) -> Finding:
    epochs = 8 if quick else 40
    w1, loss1 = _train(optim.chain(optim.add_l1(L1), optim.sgd(0.1)), epochs, seed)
    tried = {lam: _train(optim.sgd(0.1, weight_decay=lam), epochs, seed) for lam in L2_GRID}
    lam2 = min(tried, key=lambda lam: abs(tried[lam][1] - loss1))  # matched training loss
    w2, loss2 = tried[lam2]
    s1, s2 = _near_zero(w1), _near_zero(w2)
    fig = Figure(figsize=(5.5, 3.4))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    bins = np.linspace(-0.5, 0.5, 81)
    ax.hist(w1.numpy(), bins, alpha=0.6, label=f"L1 {L1:g}: {s1:.0%} near zero")
    ax.hist(w2.numpy(), bins, alpha=0.6, label=f"L2 {lam2:g}: {s2:.0%} near zero")
    ax.set(yscale="log", xlabel="weight", ylabel="count", title="L1 vs L2 at matched loss")
    ax.legend(fontsize=8)
    matched = abs(loss1 - loss2) / loss1
    return Finding(
        numbers={"near_zero_l1": s1, "near_zero_l2": s2, "l1": L1, "l2_matched": lam2,
                 "train_loss_l1": loss1, "train_loss_l2": loss2, "loss_mismatch": matched},
        verdict=verdict(s1 >= 2 * s2 and s1 > 0.1) if matched < 0.1 else verdict(None),
        rule=f"holds if, at training losses within 10% of each other, L1 leaves at least twice "
             f"the fraction of weights with |w| < {THRESHOLD:g} that L2 does (and over 10%); "
             "inconclusive if no L2 strength on the grid matches the loss",
        figures=[save_figure(fig, out / "l1_sparsity.png")],
        note=f"near-zero weights: L1 {s1:.1%}, L2 {s2:.1%} (training losses {loss1:.3f} and "
             f"{loss2:.3f}).",
    )  # fmt: skip
