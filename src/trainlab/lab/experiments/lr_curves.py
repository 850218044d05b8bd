"""The learning-rate picture (seed 000, CS231n "Learning rate": loss vs epoch for a very high,
high, good and low learning rate): the same MLP on a Fashion-MNIST subset trained at four
rates spaced around the range test's suggestion. Very high diverges (or ends highest), high
plateaus above good, low is still decreasing slowly, good ends lowest."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from trainlab import optim
from trainlab.data import InMemoryLoader, TensorSplit
from trainlab.diagnose import lr_range_test
from trainlab.durable import save_figure
from trainlab.lab.experiments._fashion import fashion_subset, step_losses
from trainlab.lab.registry import Finding, experiment, verdict
from trainlab.nn import mlp
from trainlab.train import evaluate, get_loss
from trainlab.train.losses import LossFn

FACTORS = {"very high": 100.0, "high": 10.0, "good": 1.0, "low": 0.1}


def _fresh(seed: int, lr: float) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(seed)
    model = mlp((1, 28, 28), 10, widths=(100,))
    return model, optim.Optimizer(model.parameters(), optim.sgd(lr, momentum=0.9))


def _smooth(losses: list[float], k: int = 20) -> np.ndarray:
    finite = np.array([v for v in losses if math.isfinite(v)])
    return np.convolve(finite, np.ones(k) / k, mode="valid") if len(finite) >= k else finite


def _full_loss(model: torch.nn.Module, data: TensorSplit, loss: LossFn) -> float:
    """The loss over the whole training subset at the final weights (not a minibatch mean, so
    the verdict is not decided by the last few batches' noise); inf if it is not finite."""
    value = evaluate(model, data, loss)[0]
    return value if math.isfinite(value) else math.inf


@experiment("lr-too-high-too-low", deck="seed 000 (CS231n, learning rate)",
            claim="very high lr diverges, high plateaus, low crawls, a good lr ends lowest",
            minutes=1.0)  # fmt: skip
def run(out: Path, quick: bool, seed: int) -> Finding:
    n, steps = (3000, 200) if quick else (20000, 1500)
    train, _ = fashion_subset(n, 100, seed)
    loss = get_loss("cross_entropy")
    finder = lr_range_test(*_fresh(seed, 1e-3), loss, InMemoryLoader(train, 64, seed=seed),
                           start=1e-5, end=10.0, steps=100)  # fmt: skip
    good = finder.suggestions["valley"]
    curves, final = {}, {}
    for name, factor in FACTORS.items():
        model, opt = _fresh(seed, good * factor)
        curves[name] = step_losses(model, opt, loss, InMemoryLoader(train, 64, seed=seed), steps)
        final[name] = (
            _full_loss(model, train, loss) if math.isfinite(curves[name][-1]) else math.inf
        )
    fig = Figure(figsize=(5.5, 3.8))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for name, v in curves.items():
        ax.plot(_smooth(v), label=f"{name}: lr {good * FACTORS[name]:.3g}")
    ax.set(xlabel="step", ylabel="training loss (20-step mean)", ylim=(0, 3),
           title="Learning rates around the range test's suggestion")  # fmt: skip
    ax.legend(fontsize=8)
    holds = (final["good"] < min(final["high"], final["low"])
             and final["very high"] >= max(final["high"], final["low"]))  # fmt: skip
    return Finding(
        numbers={"range-test suggestion (valley)": good, "steps": steps,
                 **{f"final loss {k}": v for k, v in final.items()},
                 "very high diverged": not math.isfinite(curves["very high"][-1])},
        verdict=verdict(holds),
        rule="rates = the range test's 'valley' suggestion times 100, 10, 1, 1/10; holds if the "
             "good rate's final loss (on the whole training subset) is below high's and low's, and "
             "very high diverges or ends highest",
        figures=[save_figure(fig, out / "lr_curves.png")],
        note="final losses: " + ", ".join(f"{k} {v:.3g}" for k, v in final.items()) + ".",
    )  # fmt: skip
