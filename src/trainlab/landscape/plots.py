"""Pictures of a `Surface`: for a plane, contour lines, a heat map and a 3-D surface (Li et al.
2018, Figs. 1 and 5); for a line or an interpolation, loss and accuracy against α for every
split (Goodfellow et al. 2015, Fig. 2). Each function writes one PNG and returns its path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from trainlab.durable import save_figure
from trainlab.landscape.surface import Surface


def _figure(size: tuple[float, float]) -> Figure:
    fig = Figure(figsize=size, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _levels(z: np.ndarray, n: int = 30) -> np.ndarray | int:
    """Log-spaced levels for positive losses (the basin and the walls both get lines)."""
    finite = z[np.isfinite(z)]
    if len(finite) == 0 or finite.min() <= 0 or finite.max() <= finite.min():
        return n
    return np.geomspace(finite.min(), finite.max(), n)


def plot_contour(
    surface: Surface,
    path: Path,
    split: str,
    title: str = "",
    trajectory: np.ndarray | None = None,
) -> Path:
    """Contour lines of the split's loss over (α, β), the centre marked, and optionally the
    training trajectory's (T, 2) coordinates (PCA directions, Li et al. 2018 Fig. 9)."""
    alpha, beta = surface.axes
    z = surface.loss[split]
    fig = _figure((5, 4.5))
    ax = fig.subplots()
    cs = ax.contour(alpha, beta, z, levels=_levels(z), cmap="viridis", linewidths=1)
    ax.clabel(cs, cs.levels[::5], fontsize=7, fmt="%.3g")
    ax.plot([0], [0], "k+", ms=10)
    if trajectory is not None:
        ax.plot(trajectory[:, 0], trajectory[:, 1], "r.-", lw=1, label="checkpoints")
        ax.legend(loc="upper right", fontsize=8)
    ax.set(title=title or f"{split} loss", xlabel="α (d₁)", ylabel="β (d₂)", aspect="equal")
    save_figure(fig, path, dpi=120)
    return path


def plot_heatmap(surface: Surface, path: Path, split: str, title: str = "") -> Path:
    """The split's loss as a colour image (log colour scale when all values are positive)."""
    from matplotlib.colors import LogNorm

    alpha, beta = surface.axes
    z = surface.loss[split]
    finite = z[np.isfinite(z)]
    norm = LogNorm() if len(finite) and finite.min() > 0 else None
    fig = _figure((5.4, 4.5))
    ax = fig.subplots()
    image = ax.pcolormesh(alpha, beta, z, shading="nearest", cmap="viridis", norm=norm)
    fig.colorbar(image, ax=ax, label=f"{split} loss")
    ax.set(title=title or f"{split} loss", xlabel="α (d₁)", ylabel="β (d₂)", aspect="equal")
    save_figure(fig, path, dpi=120)
    return path


def plot_surface_3d(surface: Surface, path: Path, split: str, title: str = "") -> Path:
    """The split's loss as a 3-D surface over the (α, β) plane."""
    alpha, beta = surface.axes
    aa, bb = np.meshgrid(alpha, beta)
    fig = _figure((6, 5))
    ax = fig.add_subplot(projection="3d")
    ax.plot_surface(aa, bb, surface.loss[split], cmap="viridis", linewidth=0, antialiased=True)
    ax.set(title=title or f"{split} loss", xlabel="α", ylabel="β", zlabel="loss")
    save_figure(fig, path, dpi=120)
    return path


def plot_plane(
    surface: Surface, out_dir: Path, stem: str = "plane", trajectory: np.ndarray | None = None
) -> list[Path]:
    """Contour, heat map and 3-D pictures of every split of a plane, into `out_dir`."""
    paths = []
    for split in surface.loss:
        name = out_dir / f"{stem}-{split}"
        paths += [plot_contour(surface, Path(f"{name}-contour.png"), split, trajectory=trajectory),
                  plot_heatmap(surface, Path(f"{name}-heatmap.png"), split),
                  plot_surface_3d(surface, Path(f"{name}-3d.png"), split)]  # fmt: skip
    return paths


def plot_line(
    surface: Surface, path: Path, title: str = "", marks: dict[float, str] | None = None
) -> Path:
    """Loss (left) and accuracy (right) against α for each split, with each α of `marks` drawn
    and named (the centre of a line; models A and B of an interpolation at α = 0 and 1)."""
    marks = {0.0: "centre"} if marks is None else marks
    (alpha,) = surface.axes
    fig = _figure((10, 4))
    loss_ax, acc_ax = fig.subplots(1, 2)
    for split in surface.loss:
        loss_ax.plot(alpha, surface.loss[split], "o-", ms=3, label=split)
        if np.isfinite(surface.acc[split]).any():
            acc_ax.plot(alpha, 100 * surface.acc[split], "o-", ms=3, label=split)
    for ax, label in ((loss_ax, "loss"), (acc_ax, "accuracy (%)")):
        for m, name in marks.items():
            ax.axvline(m, c="k", lw=0.8, ls=":")
            ax.annotate(name, xy=(m, 1.0), xycoords=("data", "axes fraction"), ha="center",
                        va="bottom", fontsize=9, fontweight="bold")  # fmt: skip
        ax.set(xlabel="α", ylabel=label)
        ax.legend()
    fig.suptitle(title or surface.kind)
    save_figure(fig, path, dpi=120)
    return path
