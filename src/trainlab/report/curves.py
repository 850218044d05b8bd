"""Loss and accuracy curves of a run, from its metrics.jsonl records."""

from __future__ import annotations

from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from trainlab.durable import save_figure

TRAIN, VAL = "tab:blue", "tab:orange"


def _series(records: list[dict], kind: str, x: str, y: str) -> tuple[list, list]:
    rows = [r for r in records if r.get("kind") == kind and r.get(y) is not None]
    return [r[x] for r in rows], [r[y] for r in rows]


def plot_curves(records: list[dict], path: Path, title: str = "") -> Path:
    """Save `curves_figure` as a PNG at `path`."""
    save_figure(curves_figure(records, title), path, dpi=100)
    return path


def curves_figure(records: list[dict], title: str = "") -> Figure:
    """Two panels: loss against step (per-step and per-epoch train, validation) and accuracy
    against step (train, validation), with the test result marked."""
    fig = Figure(figsize=(10, 4), layout="constrained")
    FigureCanvasAgg(fig)
    loss_ax, acc_ax = fig.subplots(1, 2)
    # One colour per split in both panels: train blue, validation orange, test black.
    loss_ax.plot(*_series(records, "step", "step", "loss"), color=TRAIN, alpha=0.3,
                 label="train (steps)")  # fmt: skip
    for ax, metric in ((loss_ax, "loss"), (acc_ax, "acc")):
        ax.plot(*_series(records, "epoch", "step", f"train_{metric}"), "o-", color=TRAIN,
                label="train")  # fmt: skip
        ax.plot(*_series(records, "epoch", "step", f"val_{metric}"), "s-", color=VAL,
                label="validation")  # fmt: skip
        test = [
            r for r in records if r.get("kind") == "test" and r.get(f"test_{metric}") is not None
        ]
        if test:
            ax.axhline(test[-1][f"test_{metric}"], ls="--", c="k", lw=1, label="test")
        ax.set_xlabel("step")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        ax.legend()
    loss_ax.set_yscale("log")
    fig.suptitle(title)
    return fig


def overlay_figure(runs: dict[str, list[dict]], metric: str = "val") -> Figure:
    """Several runs' curves in one figure: loss (log scale) and accuracy against epoch, one
    colour per run, `metric` ("val" or "train") solid and the other split dashed."""
    other = "train" if metric == "val" else "val"
    fig = Figure(figsize=(11, 4.2), layout="constrained")
    FigureCanvasAgg(fig)
    loss_ax, acc_ax = fig.subplots(1, 2)
    for k, (name, records) in enumerate(runs.items()):
        colour = f"C{k % 10}"
        for ax, quantity in ((loss_ax, "loss"), (acc_ax, "acc")):
            for split, style in ((metric, "o-"), (other, "--")):
                xs, ys = _series(records, "epoch", "epoch", f"{split}_{quantity}")
                label = f"{name} ({split})" if split == metric or k == 0 else None
                ax.plot(xs, ys, style, color=colour, ms=3, lw=1.5 if split == metric else 1,
                        alpha=1.0 if split == metric else 0.6, label=label)  # fmt: skip
    for ax, quantity in ((loss_ax, "loss"), (acc_ax, "accuracy")):
        ax.set(xlabel="epoch", ylabel=quantity)
        ax.grid(alpha=0.3)
    loss_ax.set_yscale("log")
    acc_ax.legend(fontsize=7)
    fig.suptitle(f"{len(runs)} runs: {metric} solid, {other} dashed")
    return fig
