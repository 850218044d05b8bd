"""2-D loss surfaces of trained runs, drawn side by side on shared contour levels (Li et al.
2018, "Visualizing the Loss Landscape of Neural Nets", Fig. 5: ResNets with and without skip
connections; seed 000's loss-surface pictures).

Each run's plane is L(θ + α d₁ + β d₂) on its own training examples, with d₁, d₂ Gaussian,
filter-normalized, biases and BatchNorm parameters held fixed ("ignore biasbn"), BatchNorm in
eval mode — computed by `trainlab.landscape.surface.plane_surface`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from trainlab.durable import save_figure
from trainlab.landscape.directions import plane_directions, state_names, state_of
from trainlab.landscape.loss import split_batches
from trainlab.landscape.surface import SplitData, Surface, grid_axis, plane_surface
from trainlab.run.trained import build_trained, open_run


def run_plane(
    run_dir: str | Path,
    grid: int = 11,
    span: float = 1.0,
    examples: int = 256,
    seed: int = 0,
) -> Surface:
    """The training-loss plane around a run's last checkpoint on a `grid` × `grid` grid over
    [−span, span]², on `examples` training examples drawn with `seed`; saved (and resumable)
    as RUN_DIR/plane.npz."""
    if span <= 0:
        raise ValueError(f"span must be > 0, got {span}")
    exp = build_trained(open_run(run_dir))
    split = exp.loader.split
    gen = torch.Generator().manual_seed(seed)
    index = torch.randperm(len(split), generator=gen)[: min(examples, len(split))]
    x = split.x[index]
    if exp.recipe.train.channels_last and x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    weights = state_of(exp.model, state_names(exp.model))
    directions = plane_directions(weights, gen)
    axis = grid_axis(-span, span, grid)
    data = {"train": SplitData(split_batches(x, split.y[index], 256))}
    return plane_surface(
        exp.model, exp.loss_fn, data, directions, axis, path=Path(run_dir) / "plane.npz"
    )


def plot_planes(surfaces: dict[str, Surface], path: Path, split: str = "train") -> Path:
    """One contour panel per surface, all on the same log-spaced loss levels, so flat and
    chaotic surfaces compare at a glance."""
    fig = Figure(figsize=(4.2 * len(surfaces), 4), layout="constrained")
    FigureCanvasAgg(fig)
    axes = np.atleast_1d(fig.subplots(1, len(surfaces)))
    values = np.concatenate([s.loss[split].ravel() for s in surfaces.values()])
    values = values[np.isfinite(values) & (values > 0)]
    levels = np.geomspace(values.min(), values.max(), 25) if len(values) else 25
    for ax, (label, surface) in zip(axes, surfaces.items(), strict=True):
        alpha, beta = surface.axes
        cs = ax.contour(alpha, beta, surface.loss[split], levels=levels, cmap="viridis")
        ax.clabel(cs, cs.levels[::4], fontsize=7, fmt="%.2g")
        ax.plot([0], [0], "k+", ms=10)
        ax.set(title=f"{label}: {split} loss", xlabel="α (d₁)", ylabel="β (d₂)", aspect="equal")
    save_figure(fig, path, dpi=120)
    return path
