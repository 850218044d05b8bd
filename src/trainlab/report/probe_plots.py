"""Figures of a run's probes and schedule, as PNG bytes for the HTML report.

The activation-histogram picture follows fastai's "colorful dimension" (step on x, histogram
bins on y, log count as colour); gradient flow and update/weight ratios follow CS231n lecture 6
(seed 000: watch the ratio of updates to weights, ~1e-3 is healthy).
"""

from __future__ import annotations

import io
import math
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = [
    "activation_histograms",
    "activation_moments",
    "gradient_flow",
    "png_bytes",
    "schedule_plot",
    "update_ratios",
]


def png_bytes(fig: Figure, dpi: int = 80) -> bytes:
    """The figure as PNG bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def _figure(width: float, height: float, **margins: float) -> Figure:
    """A figure with fixed margins (fractions, as ``subplots_adjust``): a constrained or
    "tight" layout would double the drawing time of these many-axes figures."""
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    fig.subplots_adjust(**margins)
    return fig


def _grid(n: int, cols: int = 4) -> tuple[int, int]:
    return max(1, math.ceil(n / cols)), min(cols, max(n, 1))


def schedule_plot(records: list[dict]) -> bytes | None:
    """Learning rate against step from the logged step lines (epoch lines if none)."""
    rows = [r for r in records if r.get("kind") == "step" and r.get("lr") is not None]
    rows = rows or [r for r in records if r.get("kind") == "epoch" and r.get("lr") is not None]
    if not rows:
        return None
    fig = _figure(6, 2.6, left=0.14, bottom=0.2, right=0.97, top=0.95)
    ax = fig.subplots()
    ax.plot([r["step"] for r in rows], [r["lr"] for r in rows], ".-")
    ax.set_xlabel("step")
    ax.set_ylabel("learning rate")
    ax.grid(alpha=0.3)
    return png_bytes(fig)


def activation_histograms(probes: dict[str, Any]) -> bytes | None:
    """Per layer, the histogram of activations over time: probe step on x, bin on y,
    log(1 + count) as colour."""
    layers = {n: lay for n, lay in probes["layers"].items() if lay["hist"] is not None}
    steps = np.asarray(probes["steps"])
    if not layers or not len(steps):
        return None
    rows, cols = _grid(len(layers))
    fig = _figure(3.2 * cols, 2.4 * rows, left=0.07, right=0.98, bottom=0.5 / (2.4 * rows),
                  top=1 - 0.3 / (2.4 * rows), wspace=0.3, hspace=0.45)  # fmt: skip
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    for ax, (name, layer) in zip(axes, layers.items(), strict=False):
        hist = np.nan_to_num(np.asarray(layer["hist"], dtype=float))
        edges = np.asarray(layer["edges"], dtype=float)
        lo, hi = (edges[0], edges[-1]) if np.isfinite(edges).all() else (0.0, 1.0)
        right = steps[-1] if steps[-1] > steps[0] else steps[0] + 1
        ax.imshow(np.log1p(hist.T), origin="lower", aspect="auto", cmap="viridis",
                  extent=(steps[0], right, lo, hi), interpolation="nearest")  # fmt: skip
        ax.set_title(f"{name} ({layer['kind']})", fontsize=9)
        ax.tick_params(labelsize=7)
    for ax in axes[len(layers) :]:
        ax.set_axis_off()
    fig.supxlabel("step")
    fig.supylabel("activation value")
    return png_bytes(fig)


def activation_moments(probes: dict[str, Any]) -> bytes | None:
    """Mean and std of each layer's activations, and dead/saturated fractions, over time."""
    steps = np.asarray(probes["steps"])
    if not len(steps):
        return None
    fig = _figure(11, 3, left=0.06, right=0.98, bottom=0.17, top=0.9, wspace=0.25)
    mean_ax, std_ax, frac_ax = fig.subplots(1, 3)
    for name, layer in probes["layers"].items():
        if layer["mean"] is not None:
            mean_ax.plot(steps, layer["mean"], label=name)
            std_ax.plot(steps, layer["std"], label=name)
        for key, style in (("dead_fraction", "-"), ("saturated_fraction", "--")):
            if layer.get(key) is not None:
                frac_ax.plot(steps, layer[key], style, label=f"{name} {key.split('_')[0]}")
    for ax, title in ((mean_ax, "mean"), (std_ax, "std"), (frac_ax, "dead / saturated")):
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    std_ax.set_yscale("symlog", linthresh=1e-3)
    frac_ax.set_ylim(-0.02, 1.02)
    mean_ax.legend(fontsize=6, ncol=2)
    if frac_ax.lines:
        frac_ax.legend(fontsize=6)
    return png_bytes(fig)


def _param_series(
    probes: dict[str, Any], key: str, names: list[str], reference: float | None = None
) -> bytes | None:
    """``key`` of each parameter in ``names`` over time (log scale) and its median per
    parameter as bars; ``reference`` as a dashed line on both."""
    steps = np.asarray(probes["steps"])
    if not len(steps) or not names:
        return None
    fig = _figure(11, 3.4, left=0.06, right=0.98, bottom=0.3, top=0.92, wspace=0.15)
    time_ax, bar_ax = fig.subplots(1, 2, width_ratios=(3, 2))
    medians = []
    for name in names:
        values = np.asarray(probes["params"][name][key], dtype=float)
        positive = np.where(values > 0, values, np.nan)
        time_ax.plot(steps, positive, ".-", label=name)
        finite = positive[np.isfinite(positive)]
        medians.append(float(np.median(finite)) if len(finite) else np.nan)
    if not any(np.isfinite(medians)):
        return None
    bar_ax.bar(range(len(names)), np.nan_to_num(medians))
    bar_ax.set_xticks(range(len(names)), names, rotation=60, fontsize=7, ha="right")
    for ax in (time_ax, bar_ax):
        if reference is not None:
            ax.axhline(reference, color="k", ls="--", lw=1, label=f"healthy ~{reference:g}")
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
    time_ax.set_xlabel("step")
    time_ax.legend(fontsize=6, ncol=2)
    bar_ax.set_title("median over probes", fontsize=10)
    return png_bytes(fig)


def gradient_flow(probes: dict[str, Any], names: list[str]) -> bytes | None:
    """Gradient norm of each weight tensor over time, and its median per layer (input to
    output): vanishing gradients show as a slope towards the input."""
    return _param_series(probes, "grad_norm", names)


def update_ratios(probes: dict[str, Any], names: list[str]) -> bytes | None:
    """‖Δw‖/‖w‖ of each weight tensor over time and its median, with the healthy 1e-3 marked."""
    return _param_series(probes, "update_ratio", names, reference=1e-3)
