"""Increase the batch size instead of decaying the learning rate (Smith, Kindermans, Ying & Le
2018, "Don't Decay the Learning Rate, Increase the Batch Size"; seed 003): multiplying the
batch by 5 where a step schedule would divide the rate by 5 reaches the same test accuracy
with fewer parameter updates. Both arms are ordinary recipes (`data.batch_growth` vs a
`multistep` schedule), trained by the runner."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from trainlab.durable import save_figure
from trainlab.lab.registry import Finding, experiment, verdict
from trainlab.run.config import validate_recipe
from trainlab.run.runner import train_recipe

FACTOR, TOLERANCE = 5, 0.01


def _recipe(arm: str, data: dict[str, Any], epochs: int, at: list[int], steps_per_epoch: int,
            seed: int, runs: str) -> dict[str, Any]:  # fmt: skip
    recipe = {
        "name": f"batch-growth-{arm}", "seed": seed, "runs_dir": runs,
        "diagnose": {"probes": False, "report": False},
        "data": {**data, "batch_size": 64}, "model": {"name": "mlp", "widths": [128]},
        "optimizer": {"name": "sgd", "lr": 0.1, "momentum": 0.9},
        "train": {"epochs": epochs, "early_stopping": None, "threads": 1},
    }  # fmt: skip
    if arm == "decay":
        milestones = [e * steps_per_epoch for e in at]
        recipe["schedule"] = {"name": "multistep", "milestones": milestones, "gamma": 1 / FACTOR}
    else:
        recipe["schedule"] = {"name": "constant"}
        recipe["data"]["batch_growth"] = {"epochs": at, "factor": FACTOR}
    return recipe


@experiment("batch-growth", deck="seed 003 (batch size); Smith et al. 2018",
            claim="growing the batch instead of decaying the rate: same accuracy, fewer updates",
            minutes=2.0)  # fmt: skip
def run(out: Path, quick: bool, seed: int) -> Finding:
    if quick:
        data, epochs, at, seeds = {"name": "fashion_mnist", "subset": 4000}, 6, [2, 4], 1
    else:
        data, epochs, at, seeds = {"name": "fashion_mnist", "subset": 20000}, 15, [5, 10], 3
    runs_by_arm: dict[str, list] = {"decay": [], "growth": []}
    with tempfile.TemporaryDirectory() as runs:
        probe = train_recipe(
            validate_recipe(_recipe("decay", data, 1, [1], 1, seed, runs)), quiet=True
        )
        per_epoch = probe.history[-1]["step"]
        for s in range(seed, seed + seeds):
            for arm, arm_runs in runs_by_arm.items():
                recipe = validate_recipe(_recipe(arm, data, epochs, at, per_epoch, s, runs))
                result = train_recipe(recipe, quiet=True)
                arm_runs.append((result.test_acc, result.history[-1]["step"], result.history))
    accs = {k: np.array([r[0] for r in v]) for k, v in runs_by_arm.items()}
    acc = {k: float(v.mean()) for k, v in accs.items()}
    spread = {k: float(v.std(ddof=1)) if len(v) > 1 else 0.0 for k, v in accs.items()}
    updates = {k: v[0][1] for k, v in runs_by_arm.items()}
    results = {k: v[0] for k, v in runs_by_arm.items()}  # the first seed's curves are drawn
    fig = Figure(figsize=(5, 3.4))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for arm, (_, _, history) in results.items():
        ax.plot([h["step"] for h in history], [h["val_acc"] for h in history], "o-",
                label=f"{arm}: {updates[arm]} updates")  # fmt: skip
    ax.set(xlabel="parameter updates", ylabel="validation accuracy",
           title=f"Rate / {FACTOR} vs batch x {FACTOR} at epochs {at}")  # fmt: skip
    ax.legend()
    close = abs(acc["growth"] - acc["decay"]) <= TOLERANCE
    return Finding(
        numbers={"test acc, lr decay": acc["decay"], "test acc, batch growth": acc["growth"],
                 "test acc std, lr decay": spread["decay"],
                 "test acc std, batch growth": spread["growth"], "seeds": seeds,
                 "updates, lr decay": updates["decay"], "updates, batch growth": updates["growth"],
                 "epochs": epochs, "change at epochs": at, "factor": FACTOR},
        verdict=verdict(close and updates["growth"] < updates["decay"]),
        rule=f"holds if batch growth's test accuracy is within {TOLERANCE:.0%} (absolute) of "
             "the rate decay's (means over the seeds), with fewer parameter updates",
        figures=[save_figure(fig, out / "batch_growth.png")],
        note=f"test accuracy over {seeds} seed(s): decay {acc['decay']:.2%} ± "
             f"{spread['decay']:.2%} with {updates['decay']} updates, growth "
             f"{acc['growth']:.2%} ± {spread['growth']:.2%} with {updates['growth']} updates.",
    )  # fmt: skip
