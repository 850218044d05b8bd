"""Model-wise double descent (seed 001, Figure 1 of Belkin et al. 2019, "Reconciling modern
machine learning practice and the bias-variance trade-off"; Nakkiran et al. 2019, "Deep Double
Descent"): test error peaks near the interpolation threshold, the smallest width that fits the
noisy training set, and falls again as the width grows.

Setting (the MNIST-1D authors'): MNIST-1D, 4,000 training examples with 15% of their labels
replaced by a random other class (the indices recorded), its 1,000 held-out test examples; MLP
40-h-h-10, He init, SGD lr 0.01 momentum 0.9, batch 100, 500 epochs, widths 2..400 on a
log-spaced grid, 3 seeds (initialization and data order); the same sweep without label noise
beside it. Every model of the sweep is trained at once in a few width buckets
(`trainlab.stack`), so the 144 runs take minutes, not hours.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from rich.progress import Progress
from torch import nn

from trainlab import optim
from trainlab.data import InMemoryLoader, TensorSplit, load_dataset, with_label_noise
from trainlab.durable import save_figure, write_json
from trainlab.init.model import init_model
from trainlab.lab.registry import Finding, experiment, verdict
from trainlab.stack import StackedModel, evaluate_stacked, fit_stacked, stacked_optimizer
from trainlab.stack.widths import mlp_flops, pad_mlp, padding_waste, plan_buckets
from trainlab.train import get_loss

LR, MOMENTUM, BATCH = 0.01, 0.9, 100
OVERHEAD_WIDTH = 160  # per-step overhead of one stack, in the compute of one model this wide


@dataclass(frozen=True)
class Sweep:
    """What to train: widths x seeds x label-noise levels, for ``epochs`` epochs."""

    widths: tuple[int, ...]
    seeds: int
    noises: tuple[float, ...]
    epochs: int
    epochwise: bool  # evaluate test error after every epoch (the heat map)
    seed: int = 0


def width_grid(points: int = 24, low: int = 2, high: int = 400) -> tuple[int, ...]:
    """At least ``points`` distinct log-spaced integer widths from ``low`` to ``high`` (rounding
    merges some small ones, so the geometric grid is refined until enough remain)."""
    n = points
    while True:
        grid = np.unique(np.round(np.geomspace(low, high, n)).astype(int))
        if len(grid) >= points:
            return tuple(int(w) for w in grid)
        n += 1


def _data(seed: int) -> tuple[TensorSplit, TensorSplit]:
    bundle = load_dataset("mnist1d")
    x, xt = bundle.train.x.flatten(1), bundle.test.x.flatten(1)
    mean, std = x.mean(0), x.std(0)
    return TensorSplit((x - mean) / std, bundle.train.y), TensorSplit(
        (xt - mean) / std, bundle.test.y
    )


def _model(width: int, seed: int) -> nn.Sequential:
    """MLP 40-h-h-10 with He (Kaiming normal) weights and zero biases, seeded."""
    model = nn.Sequential(nn.Linear(40, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(),
                          nn.Linear(width, 10))  # fmt: skip
    init_model(model, "kaiming_normal", "zeros", generator=torch.Generator().manual_seed(seed))
    return model


def _members(sweep: Sweep) -> list[tuple[float, int, int]]:
    return [(n, w, s) for n in sweep.noises for w in sweep.widths for s in range(sweep.seeds)]


def run_sweep(sweep: Sweep, out: Path) -> dict:
    """Train every (noise, width, seed) model, bucketed by width; return per-model final train
    error (on the labels it trained on), test error and, if epochwise, test error per epoch."""
    train, test = _data(sweep.seed)
    splits, flipped = {}, {}
    for noise in sweep.noises:
        splits[noise], flipped[noise] = with_label_noise(train, noise, 10, seed=sweep.seed + 1)
    write_json(out / "label_noise.json", {str(n): f.tolist() for n, f in flipped.items()})
    members = _members(sweep)

    def cost(w: int) -> float:
        return float(mlp_flops([w, w], 40, 10))

    widths = [w for _, w, _ in members]
    buckets = plan_buckets(widths, cost, cost(OVERHEAD_WIDTH))
    results: dict[int, dict] = {}
    with Progress(transient=True) as bar:
        task = bar.add_task("double descent", total=len(buckets) * sweep.epochs)
        for bucket in buckets:
            chosen = [members[i] for i in bucket]
            found = _train_bucket(chosen, splits, test, sweep, lambda: bar.advance(task))
            results.update(dict(zip(bucket, found, strict=True)))
    return {"members": members, "results": [results[i] for i in range(len(members))],
            "buckets": [[widths[i] for i in b] for b in buckets],
            "padding_waste": padding_waste(widths, buckets, cost),
            "flipped": {n: len(f) for n, f in flipped.items()}}  # fmt: skip


def _train_bucket(chosen: list[tuple[float, int, int]], splits: dict, test: TensorSplit,
                  sweep: Sweep, tick) -> list[dict]:  # noqa: ANN001  # fmt: skip
    top = max(w for _, w, _ in chosen)
    seeds = [1000 * s + w for _, w, s in chosen]  # own init and data order per model
    stack = StackedModel([pad_mlp(_model(w, sd), [top, top])
                          for (_, w, _), sd in zip(chosen, seeds, strict=True)])  # fmt: skip
    opt = stacked_optimizer(stack, optim.sgd, "sgd", [LR] * len(chosen), [0.0] * len(chosen),
                            momentum=MOMENTUM)  # fmt: skip
    loaders = [InMemoryLoader(splits[n], BATCH, seed=sd)
               for (n, _, _), sd in zip(chosen, seeds, strict=True)]  # fmt: skip
    loss = get_loss("cross_entropy")
    curves: list[list[float]] = [[] for _ in chosen]

    def on_epoch(epoch: int, run) -> None:  # noqa: ANN001
        if sweep.epochwise:
            _, acc = evaluate_stacked(stack, test, loss)
            for k, a in enumerate(acc.tolist()):
                curves[k].append(1 - a)
        tick()

    fit_stacked(stack, loaders, opt, loss, epochs=sweep.epochs, on_epoch=on_epoch)
    _, test_acc = evaluate_stacked(stack, test, loss)
    noises = {n for n, _, _ in chosen}
    train_acc = {n: evaluate_stacked(stack, splits[n], loss)[1] for n in noises}
    return [{"train_error": 1 - float(train_acc[n][k]), "test_error": 1 - float(test_acc[k]),
             "curve": curves[k]} for k, (n, _, _) in enumerate(chosen)]  # fmt: skip


# ---------------------------------------------------------------- analysis and figures


def summarize(sweep: Sweep, found: dict) -> dict[float, dict]:
    """Per noise level: per width mean and std over seeds of train and test error, the
    interpolation threshold (smallest width every seed fits exactly), the peak (width of the
    highest mean test error) and the test errors there and at the largest width."""
    out = {}
    for noise in sweep.noises:
        rows = []
        for w in sweep.widths:
            picked = [r for (n, wd, _), r in zip(found["members"], found["results"], strict=True)
                      if n == noise and wd == w]  # fmt: skip
            tr = np.array([r["train_error"] for r in picked])
            te = np.array([r["test_error"] for r in picked])
            curves = np.array([r["curve"] for r in picked]) if picked[0]["curve"] else None
            rows.append({"width": w, "train": tr, "test": te, "curves": curves})
        out[noise] = _landmarks(rows)
    return out


def _landmarks(rows: list[dict]) -> dict:
    """The interpolation threshold (smallest width every seed fits exactly); the classical
    sweet spot (lowest mean test error at or below the threshold); the peak (highest mean test
    error from the sweet spot on: the second descent's summit, not the underfitting end of the
    U); and the test errors there, at the threshold and at the largest width."""
    mean_test = np.array([r["test"].mean() for r in rows])
    fits = [r["width"] for r in rows if (r["train"] == 0).all()]
    threshold = fits[0] if fits else None
    limit = threshold if threshold is not None else rows[-1]["width"]
    classical = [i for i, r in enumerate(rows) if r["width"] <= limit]
    sweet = min(classical, key=lambda i: mean_test[i])
    peak = sweet + int(np.argmax(mean_test[sweet:]))
    at = {r["width"]: r for r in rows}
    return {"rows": rows, "threshold": threshold, "sweet_width": rows[sweet]["width"],
            "sweet": _stats(rows[sweet]["test"]), "peak_width": rows[peak]["width"],
            "rises": peak > sweet, "peak": _stats(rows[peak]["test"]),
            "largest": _stats(rows[-1]["test"]),
            "at_threshold": _stats(at[threshold]["test"]) if threshold else None,
            "gap": float(mean_test[peak] - mean_test[-1])}  # fmt: skip


def _stats(values: np.ndarray) -> tuple[float, float]:
    return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0


def _curve_figure(summary: dict[float, dict], path: Path) -> Path:
    fig = Figure(figsize=(5.2 * len(summary), 3.8), layout="constrained")
    FigureCanvasAgg(fig)
    for i, (noise, s) in enumerate(summary.items()):
        ax = fig.add_subplot(1, len(summary), i + 1)
        widths = [r["width"] for r in s["rows"]]
        for key, color in (("train", "tab:blue"), ("test", "tab:red")):
            mean = np.array([r[key].mean() for r in s["rows"]]) * 100
            std = np.array([r[key].std() for r in s["rows"]]) * 100
            ax.plot(widths, mean, "o-", ms=3, color=color, label=f"{key} error")
            ax.fill_between(widths, mean - std, mean + std, color=color, alpha=0.2)
        if s["threshold"] is not None:
            ax.axvline(s["threshold"], color="k", ls="--", lw=1, label="interpolation threshold")
        if s["rises"]:
            ax.plot(s["peak_width"], s["peak"][0] * 100, "k^", ms=8, label="peak")
        ax.set(xscale="log", xlabel="hidden width h (MLP 40-h-h-10)", ylabel="error (%)",
               title=f"{noise:.0%} label noise")  # fmt: skip
        ax.legend(fontsize=7)
    return save_figure(fig, path)


def _epochwise_figure(s: dict, epochs: int, path: Path) -> Path:
    """Width x epoch heat map of mean test error, and test error vs epoch near the threshold
    (Nakkiran et al. 2019, Figure 2 style)."""
    fig = Figure(figsize=(10, 3.8), layout="constrained")
    FigureCanvasAgg(fig)
    grid = np.array([r["curves"].mean(0) for r in s["rows"]]) * 100
    widths = [r["width"] for r in s["rows"]]
    ax = fig.add_subplot(1, 2, 1)
    image = ax.pcolormesh(np.arange(1, epochs + 1), widths, grid, shading="nearest",
                          cmap="viridis")  # fmt: skip
    ax.set(yscale="log", xscale="log", xlabel="epoch", ylabel="width", title="test error (%)")
    fig.colorbar(image, ax=ax)
    near = s["threshold"] or s["peak_width"]
    ax2 = fig.add_subplot(1, 2, 2)
    for r in s["rows"]:
        if r["width"] in (widths[0], near, widths[-1]):
            ax2.plot(np.arange(1, epochs + 1), r["curves"].mean(0) * 100, label=f"h={r['width']}")
    ax2.set(xscale="log", xlabel="epoch", ylabel="test error (%)", title="epoch-wise")
    ax2.legend(fontsize=7)
    return save_figure(fig, path)


def _pm(stats: tuple[float, float]) -> str:
    return f"{stats[0]:.1%} ± {stats[1]:.1%}"


def _table(summary: dict[float, dict]) -> list[list]:
    noises = list(summary)
    head = ["width"] + [f"{k} error {n:.0%} noise" for n in noises for k in ("train", "test")]
    rows = [head]
    for i, w in enumerate(summary[noises[0]]["rows"]):
        cells = [w["width"]]
        for n in noises:
            r = summary[n]["rows"][i]
            cells += [_pm(_stats(r["train"])), _pm(_stats(r["test"]))]
        rows.append(cells)
    return rows


def double_descent(out: Path, sweep: Sweep) -> Finding:
    """Run ``sweep`` into ``out`` and judge it (the rule is in the finding)."""
    found = run_sweep(sweep, out)
    summary = summarize(sweep, found)
    figures = [_curve_figure(summary, out / "double_descent.png")]
    noisy = summary[max(summary)]
    if sweep.epochwise:
        figures.append(_epochwise_figure(noisy, sweep.epochs, out / "epochwise.png"))
    numbers = {"widths": list(sweep.widths), "seeds": sweep.seeds, "epochs": sweep.epochs,
               "buckets": [sorted(set(b)) for b in found["buckets"]],
               "padding waste": found["padding_waste"],
               "labels flipped": {f"{n:.0%}": c for n, c in found["flipped"].items()}}  # fmt: skip
    for n, s in summary.items():
        keys = (
            "threshold",
            "sweet_width",
            "sweet",
            "peak_width",
            "peak",
            "at_threshold",
            "largest",
            "gap",
        )
        numbers |= {f"{n:.0%} noise: {k}": s[k] for k in keys}
    holds, why = _judge(summary)
    return Finding(numbers=numbers, verdict=verdict(holds), rule=RULE, figures=figures,
                   table=_table(summary), note=why)  # fmt: skip


RULE = (
    "holds if with the most label noise the mean test error at its peak width is at least 5 "
    "points above that at the largest width, the peak lies within a factor 2 of the "
    "interpolation threshold (smallest width all seeds fit exactly), and, when a sweep with "
    "less noise ran, its peak-minus-largest gap is smaller"
)


def _judge(summary: dict[float, dict]) -> tuple[bool, str]:
    noisy, clean = summary[max(summary)], summary[min(summary)]
    t, p = noisy["threshold"], noisy["peak_width"]
    near = t is not None and t / 2 <= p <= 2 * t
    high = noisy["rises"] and noisy["gap"] >= 0.05
    shrinks = len(summary) == 1 or clean["gap"] < noisy["gap"]
    why = (f"{max(summary):.0%} noise: test error falls to {noisy['sweet'][0]:.1%} at width "
           f"{noisy['sweet_width']}, rises to a peak at width {p} "
           f"({noisy['peak'][0]:.1%} ± {noisy['peak'][1]:.1%}), {noisy['gap']:.1%} above width "
           f"{noisy['rows'][-1]['width']} ({noisy['largest'][0]:.1%} ± {noisy['largest'][1]:.1%}); "
           f"interpolation threshold {t if t is not None else 'not reached'}")  # fmt: skip
    if len(summary) > 1:
        why += (f"; {min(summary):.0%} noise: gap {clean['gap']:.1%} (peak at width "
                f"{clean['peak_width']})")  # fmt: skip
    return near and high and shrinks, why + "."


@experiment("double-descent", deck="seed 001 (Figure 1, double descent); Nakkiran et al. 2019",
            claim="test error peaks at the interpolation threshold, then falls again as the "
                  "width grows; label noise makes the peak", minutes=14.0)  # fmt: skip
def run(out: Path, quick: bool, seed: int) -> Finding:
    if quick:
        sweep = Sweep(widths=(4, 8, 16, 32, 64, 128), seeds=1, noises=(0.15, 0.0), epochs=40,
                      epochwise=True, seed=seed)  # fmt: skip
    else:
        sweep = Sweep(widths=width_grid(24), seeds=3, noises=(0.15, 0.0), epochs=500,
                      epochwise=True, seed=seed)  # fmt: skip
    return double_descent(out, sweep)
