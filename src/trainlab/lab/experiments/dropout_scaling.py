"""Dropout's test-time scaling keeps the expected activation (seed 000, "Dropout Summary";
Srivastava et al. 2014): vanilla dropout drops at training and multiplies by the keep
probability at test; inverted dropout divides by it at training and leaves test alone. Either
way the test-time output equals the mean training-time output; dropping without any scaling
(the control) does not."""

from __future__ import annotations

import math
from pathlib import Path

import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from trainlab.durable import save_figure
from trainlab.lab.registry import Finding, experiment, verdict
from trainlab.nn.dropout import InvertedDropout, VanillaDropout

P = 0.5
Z_HOLDS, Z_CONTROL = 3.0, 10.0


def _z_score(layer: torch.nn.Module, x: torch.Tensor, masks: int, gen: torch.Generator,
             test: torch.Tensor | None = None) -> tuple[float, float, float]:  # fmt: skip
    """Mean training-time output over ``masks`` draws, the test-time output (the layer in eval
    mode, or ``test``), and the z-score of their difference (averaged over units)."""
    layer.generator = gen
    layer.train()
    draws = torch.stack([layer(x) for _ in range(masks)])  # masks x units
    layer.eval()
    target = layer(x) if test is None else test
    diff = (draws - target).mean(dim=1)  # one mean difference per mask draw
    z = float(diff.mean() / (diff.std() / math.sqrt(masks)))
    return float(draws.mean()), float(target.mean()), z


@experiment("dropout-scaling", deck="seed 000 (CS231n, Dropout Summary)",
            claim="vanilla and inverted dropout give the same expected test-time activation",
            minutes=0.1)  # fmt: skip
def run(out: Path, quick: bool, seed: int) -> Finding:
    masks = 300 if quick else 3000
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(1000, generator=gen, dtype=torch.float64) + 0.5  # a fixed layer input
    inverted = _z_score(InvertedDropout(P), x, masks, gen)
    vanilla = _z_score(VanillaDropout(P), x, masks, gen)
    control = _z_score(VanillaDropout(P), x, masks, gen, test=x)  # drop, but no test scaling
    rows = {"inverted": inverted, "vanilla": vanilla, "no scaling (control)": control}
    fig = Figure(figsize=(5, 3.2))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    names = list(rows)
    ax.bar([i - 0.2 for i in range(3)], [r[0] for r in rows.values()], 0.4, label="train mean")
    ax.bar([i + 0.2 for i in range(3)], [r[1] for r in rows.values()], 0.4, label="test")
    ax.set_xticks(range(3), names)
    ax.set(ylabel="mean activation", title=f"Dropout p={P}: train mean vs test output")
    ax.legend()
    holds = abs(inverted[2]) < Z_HOLDS and abs(vanilla[2]) < Z_HOLDS and abs(control[2]) > Z_CONTROL
    return Finding(
        numbers={f"{n} {k}": v for n, r in rows.items()
                 for k, v in zip(("train_mean", "test", "z"), r, strict=True)} | {"masks": masks},
        verdict=verdict(holds),
        rule=f"holds if |z| < {Z_HOLDS:g} for vanilla and inverted dropout (test output = mean "
             f"training output within 3 standard errors) and |z| > {Z_CONTROL:g} for the "
             "unscaled control",
        figures=[save_figure(fig, out / "dropout_scaling.png")],
        table=[["kind", "train mean", "test", "z"], *([n, *r] for n, r in rows.items())],
        note=f"z-scores: inverted {inverted[2]:.2f}, vanilla {vanilla[2]:.2f}, "
             f"unscaled control {control[2]:.1f}.",
    )  # fmt: skip
