"""The reproductions trainlab already had, in the lab's list and book: the activation-statistics
slide (seed 000), ensembles of independently trained models and snapshot ensembles (seed 000
"Model Ensembles"; Huang et al. 2017), and the overfitting practical (a small MLP on 1,000
Fashion-MNIST images: the training loss falls far below the validation loss)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from trainlab.diagnose.activation_stats import activation_stats, save_histograms
from trainlab.durable import save_figure
from trainlab.lab.registry import Finding, experiment, verdict
from trainlab.run.bundled import bundled_recipes
from trainlab.run.config import load_recipe, validate_recipe
from trainlab.run.runner import train_recipe
from trainlab.study.ensemble import run_ensemble


@experiment("activation-stats", deck="seed 000 (CS231n, activation statistics slides)",
            claim="tanh with N(0, 0.01^2) weights collapses to zero, with N(0, 1) saturates, "
                  "with Xavier keeps its spread", minutes=0.1)  # fmt: skip
def run_activation_stats(out: Path, quick: bool, seed: int) -> Finding:
    width, samples = (200, 300) if quick else (500, 1000)
    settings = {"N(0, 0.01^2)": ("normal", 0.01), "N(0, 1)": ("normal", 1.0),
                "Xavier": ("xavier", None)}  # fmt: skip
    figures, last = [], {}
    for name, (init, std) in settings.items():
        stats = activation_stats("tanh", init, std, 10, width, samples, seed)
        top = stats[-1]
        edge = (top["counts"][0] + top["counts"][-1]) / top["counts"].sum()
        last[name] = (top["std"], float(edge))
        stem = (
            name.replace(" ", "")
            .replace("(", "_")
            .replace(")", "")
            .replace("^", "")
            .replace(",", "_")
        )
        figures.append(save_histograms(stats, out / f"tanh_{stem}.png", title=f"tanh, {name}"))
    holds = (last["N(0, 0.01^2)"][0] < 1e-3 and last["N(0, 1)"][1] > 0.5
             and 0.05 < last["Xavier"][0] < 0.5)  # fmt: skip
    return Finding(
        numbers={**{f"{n}: last-layer std": v[0] for n, v in last.items()},
                 **{f"{n}: last-layer fraction in the end bins (+-1)": v[1]
                    for n, v in last.items()}},
        verdict=verdict(holds),
        rule="holds if the 10th layer's std is < 1e-3 with N(0,0.01), over half of it sits in "
             "the histogram's end bins (saturated near +-1) with N(0,1), and its std is in "
             "(0.05, 0.5) with Xavier",
        figures=figures,
        note="last-layer std: " + ", ".join(f"{n} {v[0]:.3g}" for n, v in last.items()) + ".",
    )  # fmt: skip


def _digits_recipe(runs: str, seed: int, **extra: Any) -> dict[str, Any]:
    return {
        "name": "lab-ensemble", "seed": seed, "runs_dir": runs,
        "diagnose": {"probes": False, "report": False},
        "data": {"name": "digits", "batch_size": 32}, "model": {"name": "mlp", "widths": [32]},
        "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9},
        "schedule": {"name": "constant"}, **extra,
    }  # fmt: skip


def _ensemble_finding(result: Any, out: Path, name: str, kind: str) -> Finding:
    accs = [m["test_acc"] for m in result.members]
    fig = Figure(figsize=(5, 3.2))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.bar([m["name"] for m in result.members] + ["ensemble"], accs + [result.test_acc])
    ax.set(ylim=(min(accs) - 0.05, 1.0), ylabel="test accuracy", title=kind)
    ax.tick_params(axis="x", labelsize=7, rotation=30)
    return Finding(
        numbers={"ensemble test acc": result.test_acc, "mean member test acc":
                 result.mean_member_acc, "best member test acc": max(accs),
                 "members": len(accs), "ensemble test NLL": result.test_nll},
        verdict=verdict(result.test_acc > result.mean_member_acc),
        rule="holds if the ensemble's test accuracy (averaged probabilities) is above its "
             "members' mean",
        figures=[save_figure(fig, out / f"{name}.png")],
        note=f"ensemble {result.test_acc:.2%} vs members' mean {result.mean_member_acc:.2%} "
             f"(best member {max(accs):.2%}).",
    )  # fmt: skip


@experiment("ensembles", deck="seed 000 (CS231n, Model Ensembles)",
            claim="an ensemble of independently trained models beats its average member",
            minutes=0.5)  # fmt: skip
def run_ensembles(out: Path, quick: bool, seed: int) -> Finding:
    members, epochs = (3, 4) if quick else (5, 15)
    with tempfile.TemporaryDirectory() as runs:
        train, ensemble = (
            {"epochs": epochs, "threads": 1},
            {"method": "independent", "members": members},
        )
        recipe = validate_recipe(_digits_recipe(runs, seed, train=train, ensemble=ensemble))
        result = run_ensemble(recipe, quiet=True)
    return _ensemble_finding(result, out, "ensembles", f"{members} independent members")


@experiment("snapshot-ensembles", deck="seed 000 (Model Ensembles); Huang et al. 2017",
            claim="snapshots of one run with cyclic cosine rates ensemble better than their "
                  "average member", minutes=0.5)  # fmt: skip
def run_snapshots(out: Path, quick: bool, seed: int) -> Finding:
    members, epochs = (3, 9) if quick else (5, 20)
    with tempfile.TemporaryDirectory() as runs:
        train = {"epochs": epochs, "threads": 1, "early_stopping": None}
        ensemble = {"method": "snapshot", "members": members}
        recipe = validate_recipe(_digits_recipe(runs, seed, train=train, ensemble=ensemble))
        result = run_ensemble(recipe, quiet=True)
    return _ensemble_finding(result, out, "snapshot_ensembles", f"{members} snapshots, one run")


@experiment("overfitting", deck="seed 000 / 001 (overfitting practical; bundled overfit-mlp)",
            claim="a 784-256-256-10 MLP on 1,000 images drives its training loss far below "
                  "its validation loss, which rises again", minutes=1.0)  # fmt: skip
def run_overfitting(out: Path, quick: bool, seed: int) -> Finding:
    epochs = 15 if quick else 60
    with tempfile.TemporaryDirectory() as runs:
        sets = [f"train.epochs={epochs}", f"train.checkpoint_every={epochs}", f"seed={seed}",
                f"runs_dir={runs}", "diagnose.probes=false", "diagnose.report=false"]  # fmt: skip
        result = train_recipe(load_recipe(bundled_recipes()["overfit-mlp"], sets), quiet=True)
    history = result.history
    train_loss = [h["train_loss"] for h in history]
    val_loss = [h["val_loss"] for h in history]
    best = min(range(len(val_loss)), key=val_loss.__getitem__)
    fig = Figure(figsize=(5, 3.4))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.plot(range(1, len(history) + 1), train_loss, label="training loss")
    ax.plot(range(1, len(history) + 1), val_loss, label="validation loss")
    ax.set(xlabel="epoch", ylabel="loss", yscale="log", title="overfit-mlp")
    ax.legend()
    rising = val_loss[-1] > val_loss[best] * 1.1
    gap = val_loss[-1] / max(train_loss[-1], 1e-12)
    return Finding(
        numbers={"final train loss": train_loss[-1], "final val loss": val_loss[-1],
                 "lowest val loss": val_loss[best], "epoch of lowest val loss": best + 1,
                 "val / train loss at the end": gap, "epochs": epochs},
        verdict=verdict(gap > 5 and rising),
        rule="holds if the final validation loss is over 5x the training loss and over 10% "
             "above its lowest value (it rose again)",
        figures=[save_figure(fig, out / "overfitting.png")],
        note=f"validation loss lowest at epoch {best + 1} ({val_loss[best]:.3f}), "
             f"{val_loss[-1]:.3f} at the end; training loss {train_loss[-1]:.2g}.",
    )  # fmt: skip
