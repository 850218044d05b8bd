"""The lectures' activation-statistics experiment: how initialization shapes deep activations.

CS231n lecture 6 (the seed-000 deck, "Lets look at some activation statistics"): feed 1000
unit-Gaussian samples of dimension 500 through 10 layers of 500 units, ``H = f(X @ W)`` with no
bias (the slide's ``np.dot(X, W)``), and print each layer's mean and std:

- tanh with ``W ~ N(0, 0.01²)``: the std shrinks ~×0.22 per layer to ~1e-7 — "all activations
  become zero";
- tanh with ``W ~ N(0, 1)``: std ≈ 0.98 in every layer — "almost all neurons completely
  saturated, either −1 and 1";
- tanh with Xavier ``W = randn / √fan_in``: std 0.63 in layer 1 decaying gently to ≈ 0.23;
- ReLU with Xavier: the variance halves in each layer (std 0.58 → 0.026) — "it breaks";
- ReLU with He ``W = randn / √(fan_in / 2)``: std ≈ 0.83 in every layer.

Initializers come from :mod:`trainlab.init` by name, plus the slide's spellings ``xavier``
(``randn / √fan_in``, i.e. ``lecun_normal``) and ``he`` (``randn / √(fan_in/2)``, i.e.
``kaiming_normal``); for the square layers here ``xavier_normal`` (Glorot's 2/(fan_in+fan_out))
draws from the same distribution as ``xavier``.
"""

from __future__ import annotations

import inspect
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trainlab.diagnose.probes import nice_ceil
from trainlab.durable import save_figure
from trainlab.init import INITIALIZERS, Initializer, get_initializer
from trainlab.names import closest_name_error
from trainlab.nn.activations import ACTIVATIONS, make_activation

__all__ = ["LAB_INITS", "activation_stats", "lab_initializer", "save_histograms"]

LAB_INITS: dict[str, str] = {"xavier": "lecun_normal", "he": "kaiming_normal"}
"""The slide's names: ``xavier`` is CS231n's ``randn(fan_in, fan_out) / sqrt(fan_in)`` (LeCun's
variance 1/fan_in) and ``he`` is ``randn / sqrt(fan_in / 2)``."""

_BOUNDED = {"tanh": (-1.0, 1.0), "sigmoid": (0.0, 1.0)}


def lab_initializer(init: str, std: float | None = None) -> Initializer:
    """The initializer ``init`` (a :mod:`trainlab.init` name or ``xavier``/``he``), with ``std``
    bound when given. ``std`` is only for initializers that take one (``normal`` and
    ``truncated_normal``; ``normal`` defaults to the slide's 0.01). One-line ValueError for an
    unknown name, a std ≤ 0 or a std given to an initializer without one."""
    names = sorted({*INITIALIZERS, *LAB_INITS})
    if init not in names:
        raise closest_name_error("initializer", init, names)
    name = LAB_INITS.get(init, init)
    if std is None:
        return get_initializer(name)
    if not (isinstance(std, int | float) and math.isfinite(std) and std > 0):
        raise ValueError(f"--std must be positive, got {std}")
    if "std" not in inspect.signature(INITIALIZERS[name]).parameters:
        takes = sorted(
            n for n, f in INITIALIZERS.items() if "std" in inspect.signature(f).parameters
        )
        raise ValueError(f"--std applies only to {', '.join(takes)}; {init!r} sets its own scale")
    return get_initializer(name, std=float(std))


def activation_stats(
    activation: str,
    init: str,
    std: float | None = None,
    depth: int = 10,
    width: int = 500,
    samples: int = 1000,
    seed: int = 0,
    bins: int = 30,
) -> list[dict[str, Any]]:
    """Per layer of the CS231n experiment: ``{"layer", "mean", "std", "counts", "edges"}``.

    Layer 0 is the unit-Gaussian input ``D`` (``samples × width``), layers 1..``depth`` the
    hidden layers ``H_i = f(H_{i−1} @ W_iᵀ)`` with ``W_i`` of shape (width, width) drawn from
    ``init`` by a ``torch.Generator`` seeded with ``seed`` (the input is drawn first). Mean and
    std are over all entries (population std, as ``np.std``). ``counts``/``edges`` is a
    ``bins``-bin histogram with the same range for every hidden layer: (−1, 1) for tanh as on the
    slide (``plt.hist(H.ravel(), 30, range=(-1, 1))``), (0, 1) for sigmoid, otherwise a round
    range covering the hidden layers (the input's is made symmetric); values outside land in the
    edge bins. Float32 throughout.
    """
    if activation not in ACTIVATIONS:
        raise closest_name_error("activation", activation, ACTIVATIONS)
    initializer = lab_initializer(init, std)
    for what, value in (("depth", depth), ("width", width), ("samples", samples), ("bins", bins)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"--{what} must be a positive integer, got {value!r}")
    f = make_activation(activation)
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(samples, width, generator=g)
    layers = [h]
    with torch.no_grad():
        for _ in range(depth):
            w = initializer((width, width), generator=g)  # (out, in), as nn.Linear stores it
            h = f(h @ w.T)
            layers.append(h)
    if activation in _BOUNDED:
        lo, hi = _BOUNDED[activation]
    else:
        hidden = torch.stack([x.abs().max() for x in layers[1:]]).max()
        top = nice_ceil(float(hidden))
        nonneg = all(float(x.min()) >= 0 for x in layers[1:])
        lo, hi = (0.0, top) if nonneg else (-top, top)
    stats = []
    for i, x in enumerate(layers):
        # The Gaussian input gets its own symmetric range: clipped to a tanh's [-1, 1] its
        # tails would pile up in the end bins and the bell would look U-shaped.
        top_in = nice_ceil(float(x.abs().max()))
        a, b = (-top_in, top_in) if i == 0 else (lo, hi)
        edges = np.linspace(a, b, bins + 1)
        counts = torch.histc(x.clamp(a, b), bins, a, b)
        stats.append(
            {
                "layer": i,
                "mean": float(x.mean()),
                "std": float(x.std(correction=0)),
                "counts": counts.numpy().astype(np.int64),
                "edges": edges,
            }
        )
    return stats


def save_histograms(stats: list[dict[str, Any]], path: str | Path, title: str = "") -> Path:
    """One PNG with a small histogram per layer in a row, as the slide's
    ``plt.subplot(1, len(Hs), i + 1); plt.hist(...)``; layer 0 is the input. Uses matplotlib's
    object API with the Agg canvas (no pyplot, no global state). Returns the path."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path = Path(path)
    n = len(stats)
    cols = min(n, 6)
    rows = -(-n // cols)
    fig = Figure(figsize=(2.3 * cols, 1.9 * rows + 0.5))
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax in axes[n:]:
        ax.set_visible(False)
    for ax, s in zip(axes, stats, strict=False):
        ax.stairs(s["counts"], s["edges"], fill=True, color="tab:blue")
        label = "input" if s["layer"] == 0 else f"layer {s['layer']}"
        ax.set_title(f"{label}\nstd {s['std']:.2g}", fontsize=8)
        ax.tick_params(labelsize=6)
        ax.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.96 if title else 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    save_figure(fig, path, dpi=100)
    return path
