"""The cyclical learning-rate practical (seed 000, "Learning rate schedules"; Smith 2017,
"Cyclical Learning Rates"; Smith & Topin 2018, "Super-Convergence"): the bundled `mlp` recipe
(SGD with momentum here) trained for the same epochs with a constant rate and with one-cycle
(peak = the same rate); one-cycle ends more accurate."""

from __future__ import annotations

import tempfile
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from trainlab.durable import save_figure
from trainlab.lab.registry import Finding, experiment, verdict
from trainlab.run.bundled import bundled_recipes
from trainlab.run.config import load_recipe
from trainlab.run.runner import train_recipe

SCHEDULES = ("constant", "one_cycle")


@experiment("cyclic-lr", deck="seed 000 (learning-rate schedules); Smith 2017",
            claim="a one-cycle schedule beats a constant rate in the same epochs",
            minutes=2.0)  # fmt: skip
def run(out: Path, quick: bool, seed: int) -> Finding:
    subset, epochs = (4000, 3) if quick else (20000, 8)
    results = {}
    with tempfile.TemporaryDirectory() as runs:
        for name in SCHEDULES:
            sets = [f"schedule.name={name}", "optimizer.name=sgd", "optimizer.lr=0.1",
                    "optimizer.momentum=0.9", f"data.subset={subset}", f"train.epochs={epochs}",
                    "train.early_stopping=null", f"seed={seed}", f"runs_dir={runs}",
                    "train.threads=1", "diagnose.probes=false",
                    "diagnose.report=false"]  # fmt: skip
            result = train_recipe(load_recipe(bundled_recipes()["mlp"], sets), quiet=True)
            results[name] = (result.test_acc, result.history)
    fig = Figure(figsize=(5, 3.4))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for name, (_, history) in results.items():
        ax.plot([h["epoch"] for h in history], [h["val_acc"] for h in history], "o-", label=name)
    ax.set(xlabel="epoch", ylabel="validation accuracy", title="bundled mlp: constant vs one-cycle")
    ax.legend()
    constant, cycle = results["constant"][0], results["one_cycle"][0]
    return Finding(
        numbers={"test acc constant": constant, "test acc one_cycle": cycle,
                 "epochs": epochs, "training examples": subset},
        verdict=verdict(cycle > constant),
        rule="holds if one-cycle's test accuracy is above the constant rate's (one seed, same "
             "recipe, epochs and peak rate)",
        figures=[save_figure(fig, out / "cyclic_lr.png")],
        note=f"test accuracy: constant {constant:.2%}, one-cycle {cycle:.2%}.",
    )  # fmt: skip
