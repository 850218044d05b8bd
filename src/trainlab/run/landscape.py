"""Loss surfaces of trained runs, as `trainlab landscape` computes them: a plane or a line
around a run's last checkpoint (Li et al. 2018), or the interpolation between two runs
(Goodfellow et al. 2015), written with their pictures into RUN_DIR/landscape/.

Every input is checked before any data is loaded or any point evaluated (grid, range, examples,
option names, the run directories and their checkpoints, matching architectures, enough
checkpoints for PCA directions); each problem is one line naming what was expected.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file
from torch import Tensor

from trainlab.data import TensorSplit
from trainlab.durable import write_json
from trainlab.landscape.directions import (
    filter_normalized_direction,
    pca_directions,
    plane_directions,
    random_direction,
    state_names,
    state_of,
)
from trainlab.landscape.evaluate import BN_MODES, EVALUATORS
from trainlab.landscape.loss import split_batches
from trainlab.landscape.plots import plot_line, plot_plane
from trainlab.landscape.surface import (
    SplitData,
    Surface,
    interpolation_surface,
    line_surface,
    plane_surface,
)
from trainlab.report import refresh_report
from trainlab.run.config import RecipeError
from trainlab.run.experiment import Experiment
from trainlab.run.trained import (
    WEIGHTS,
    RunDirError,
    TrainedRun,
    build_trained,
    check_same_architecture,
    check_same_data,
    open_run,
)

MODES = ("plane", "line", "interpolate")
DIRECTIONS = ("filter", "random", "pca")
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class LandscapeOptions:
    """What `trainlab landscape` computes. `span` None means the mode's default range:
    [-1, 1] around a model, [-0.5, 1.5] for an interpolation, the trajectory's extent for PCA."""

    mode: str = "plane"
    other: str | None = None  # the second run, for mode="interpolate"
    grid: int = 21
    span: tuple[float, ...] | None = None  # (R,) for [-R, R], or (LO, HI)
    examples: int = 1000
    splits: tuple[str, ...] | None = None  # default: test for a plane, train and test for 1-D
    bn: str = "eval"
    directions: str = "filter"
    biasbn: str = "ignore"
    bn_stats: bool = False
    seed: int = 0
    evaluator: str = "auto"
    fresh: bool = False  # recompute from scratch instead of resuming a saved .npz
    data_of: str | None = None  # interpolate: "A" or "B" scores both on that run's data


def _choice(field: str, value: str, valid: Sequence[str]) -> None:
    if value not in valid:
        raise RecipeError(f"landscape {field}: expected one of {', '.join(valid)}, got {value!r}")


def axis_range(opts: LandscapeOptions) -> tuple[float, float] | None:
    """(lo, hi) of the grid, or None for the mode's default; one error line for a bad range."""
    if opts.span is None:
        return None
    if len(opts.span) == 1 and opts.span[0] > 0:
        return -opts.span[0], opts.span[0]
    if len(opts.span) == 2 and opts.span[0] < opts.span[1]:
        return opts.span[0], opts.span[1]
    got = " ".join(f"{v:g}" for v in opts.span)
    raise RecipeError(f"landscape --range: expected R > 0 or LO HI with LO < HI, got {got}")


def check_options(opts: LandscapeOptions) -> None:
    """Every option that can be checked without reading a run."""
    _choice("mode", opts.mode, MODES)
    _choice("--bn", opts.bn, BN_MODES)
    _choice("--directions", opts.directions, DIRECTIONS)
    _choice("--biasbn", opts.biasbn, ("ignore", "filter"))
    _choice("--evaluator", opts.evaluator, EVALUATORS)
    for split in opts.splits or ():
        _choice("--split", split, SPLITS)
    if opts.grid < 2:
        raise RecipeError(f"landscape --grid: expected at least 2 points per axis, got {opts.grid}")
    if opts.examples < 1:
        raise RecipeError(f"landscape --examples: expected at least 1, got {opts.examples}")
    if opts.data_of not in (None, "A", "B") or (opts.data_of and opts.mode != "interpolate"):
        raise RecipeError(f"--data-of: expected A or B with interpolate, got {opts.data_of!r}")
    if (opts.mode == "interpolate") != (opts.other is not None):
        raise RecipeError("landscape: expected --interpolate OTHER_RUN exactly in interpolate mode")
    if opts.bn_stats and (opts.bn != "eval" or opts.biasbn != "filter"):
        raise RecipeError("landscape --bn-stats: moves BatchNorm statistics only with --bn eval "
                          "and --biasbn filter")  # fmt: skip
    axis_range(opts)


def checkpoints_of(run: TrainedRun) -> list[Path]:
    """The run's saved checkpoints, oldest first (its trajectory)."""
    return sorted(
        p for p in (run.run_dir / "checkpoints").glob("step-*") if (p / WEIGHTS).is_file()
    )


def _check_runs(opts: LandscapeOptions, run: TrainedRun) -> TrainedRun | None:
    other = None
    if opts.mode == "interpolate":
        other = open_run(opts.other)
        check_same_architecture(run, other)
        if opts.data_of is None:
            check_same_data(run, other)
    if opts.directions == "pca" and opts.mode != "interpolate":
        found = len(checkpoints_of(run))
        if found < 3:
            raise RunDirError(
                f"{run.run_dir}: --directions pca expected at least 3 checkpoints in checkpoints/"
                f" (a trajectory; train with train.keep_checkpoints >= 3), found {found}"
            )
    return other


def _subset(split: TensorSplit, n: int, seed: int, channels_last: bool) -> tuple[Tensor, Tensor]:
    """A seeded random subset of n examples (all of them if the split is smaller)."""
    index = torch.randperm(len(split), generator=torch.Generator().manual_seed(seed))[:n]
    x = split.x[index]
    if channels_last and x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    return x, split.y[index]


def split_data(exp: Experiment, opts: LandscapeOptions) -> dict[str, SplitData]:
    """The examples each split is measured on; training batches for recomputed BatchNorm."""
    default = ("test",) if opts.mode == "plane" else ("train", "test")
    cl, data = exp.recipe.train.channels_last, exp.recipe.data
    sources = {"train": exp.loader.split, "val": exp.val, "test": exp.test}
    stats = None
    if opts.bn == "recompute":
        x, y = _subset(sources["train"], opts.examples, opts.seed + 1, cl)
        stats = split_batches(x, y, data.batch_size)
    out = {}
    for name in opts.splits or default:
        if len(sources[name]) == 0:
            raise RecipeError(f"landscape --split {name}: this run's {name} split is empty")
        x, y = _subset(sources[name], opts.examples, opts.seed, cl)
        out[name] = SplitData(split_batches(x, y, data.eval_batch_size), stats)
    return out


def _trajectory(run: TrainedRun, exp: Experiment, names: Sequence[str]) -> list[list[Tensor]]:
    states = []
    for path in checkpoints_of(run):
        weights = load_file(str(path / WEIGHTS))
        states.append([weights[n].to(t.dtype) for n, t in zip(names, state_of(exp.model, names),
                                                                strict=True)])  # fmt: skip
    return states


def _directions(
    run: TrainedRun, exp: Experiment, names: Sequence[str], opts: LandscapeOptions
) -> tuple[list[list[Tensor]], dict[str, np.ndarray]]:
    """The direction(s) of a plane or line, and what to save beside them (PCA's explained
    variance and the trajectory's coordinates)."""
    weights = state_of(exp.model, names)
    gen = torch.Generator().manual_seed(opts.seed)
    count = 2 if opts.mode == "plane" else 1
    if opts.directions == "pca":
        pca = pca_directions(_trajectory(run, exp, names), k=count)
        extra = {"explained_variance_ratio": pca.explained_variance_ratio.numpy(),
                 "trajectory": pca.coordinates.numpy()}  # fmt: skip
        return pca.directions, extra
    if opts.mode == "plane":
        norm = "filter" if opts.directions == "filter" else "none"
        return list(plane_directions(weights, gen, normalization=norm, biasbn=opts.biasbn)), {}
    if opts.directions == "filter":
        return [filter_normalized_direction(weights, gen, biasbn=opts.biasbn)], {}
    return [random_direction(weights, gen)], {}


def _default_range(opts: LandscapeOptions, extra: dict[str, np.ndarray]) -> tuple[float, float]:
    if opts.mode == "interpolate":
        return -0.5, 1.5
    if "trajectory" in extra:  # PCA directions are unit vectors: cover the path, with margin
        reach = 1.2 * float(np.abs(extra["trajectory"]).max())
        return -reach, reach
    return -1.0, 1.0


def grid_with(lo: float, hi: float, points: int, anchors: Sequence[float]) -> np.ndarray:
    """`points` even steps from lo to hi, with the `anchors` inside [lo, hi] (the model at 0;
    the two models at 0 and 1) exactly on the grid: snapped when within 1e-9 of a grid value,
    otherwise added."""
    axis = np.linspace(lo, hi, points)
    for a in anchors:
        if lo <= a <= hi:
            near = np.abs(axis - a) <= 1e-9 * max(1.0, hi - lo)
            axis = np.where(near, a, axis) if near.any() else np.sort(np.append(axis, a))
    return axis


def output_stem(opts: LandscapeOptions) -> str:
    """The file name stem in RUN_DIR/landscape/, distinct for distinct settings."""
    if opts.mode == "interpolate":
        return f"interpolate-{Path(opts.other).name}-{opts.bn}"
    stem = f"{opts.mode}-{opts.directions}-{opts.bn}-seed{opts.seed}"
    if opts.biasbn != "ignore":
        stem += f"-biasbn-{opts.biasbn}"
    return stem + ("-bnstats" if opts.bn_stats else "")


def run_landscape(
    run_dir: str | Path,
    opts: LandscapeOptions,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Compute the surface (resuming a partial one), save npz, pictures and a JSON summary into
    RUN_DIR/landscape/, and return the summary."""
    check_options(opts)
    run = open_run(run_dir)
    other = _check_runs(opts, run)
    exp = build_trained(run, other.recipe if other and opts.data_of == "B" else None)
    data = split_data(exp, opts)
    out_dir = run.run_dir / "landscape"
    out_dir.mkdir(exist_ok=True)
    stem = output_stem(opts)
    path = out_dir / f"{stem}.npz"
    if opts.fresh:
        path.unlink(missing_ok=True)
    common = {"bn": opts.bn, "path": path, "evaluator": opts.evaluator, "progress": progress}
    try:
        surface, extra = _compute(run, other, exp, data, opts, common)
    except ValueError as err:  # e.g. a saved file from other settings: one line, not a trace
        hint = "; pass --fresh to recompute it" if path.name in str(err) else ""
        raise RecipeError(f"landscape: {err}{hint}") from None
    summary = _write_outputs(surface, out_dir, stem, opts, extra)
    refresh_report(run.run_dir)
    return summary


def _compute(
    run: TrainedRun,
    other: TrainedRun | None,
    exp: Experiment,
    data: dict[str, SplitData],
    opts: LandscapeOptions,
    common: dict[str, Any],
) -> tuple[Surface, dict[str, np.ndarray]]:
    extra: dict[str, np.ndarray] = {}
    if other is not None:
        model_b = build_trained(other, run.recipe).model
        lo, hi = axis_range(opts) or _default_range(opts, extra)
        axis = grid_with(lo, hi, opts.grid, (0.0, 1.0))
        surface = interpolation_surface(exp.model, model_b, exp.loss_fn, data, axis, **common)
    else:
        names = state_names(exp.model, bn_stats=opts.bn_stats)
        dirs, extra = _directions(run, exp, names, opts)
        lo, hi = axis_range(opts) or _default_range(opts, extra)
        axis = grid_with(lo, hi, opts.grid, (0.0,))
        if opts.mode == "plane":
            surface = plane_surface(exp.model, exp.loss_fn, data, (dirs[0], dirs[1]), axis,
                                    names=names, **common)  # fmt: skip
        else:
            surface = line_surface(exp.model, exp.loss_fn, data, dirs[0], axis, names=names,
                                   **common)  # fmt: skip
    return surface, extra


def _write_outputs(
    surface: Surface, out_dir: Path, stem: str, opts: LandscapeOptions, extra: dict
) -> dict[str, Any]:
    if surface.kind == "plane":
        pictures = plot_plane(surface, out_dir, stem, extra.get("trajectory"))
    else:
        marks = {0.0: "A", 1.0: "B"} if surface.kind == "interpolation" else {0.0: "centre"}
        pictures = [plot_line(surface, out_dir / f"{stem}.png", stem, marks)]
    summary = {"kind": surface.kind, "npz": str(surface.path),
               "pictures": [str(p) for p in pictures], "evaluator": surface.evaluator,
               "seconds": round(surface.seconds, 2),
               "grid": opts.grid, "range": [float(surface.axes[0][0]), float(surface.axes[0][-1])],
               "bn_stats": opts.bn_stats,
               "splits": {}}  # fmt: skip
    for split, loss in surface.loss.items():
        acc = surface.acc[split]
        finite = np.isfinite(loss)
        row = {"min_loss": float(np.min(loss[finite])) if finite.any() else None,
               "max_loss": float(np.max(loss[finite])) if finite.any() else None,
               "centre_loss": _at_centre(surface, loss),
               "non_finite_points": int((~finite).sum())}  # fmt: skip
        if surface.kind == "interpolation":
            alpha = surface.axes[0]
            inside = (alpha >= 0) & (alpha <= 1)
            row.update(loss_at_0=_at(alpha, loss, 0.0), loss_at_1=_at(alpha, loss, 1.0),
                       max_loss_between=float(np.nanmax(loss[inside])),
                       min_acc_between=float(np.nanmin(acc[inside])))  # fmt: skip
        summary["splits"][split] = row
    if "explained_variance_ratio" in extra:
        summary["pca_explained_variance_ratio"] = extra["explained_variance_ratio"].tolist()
    write_json(out_dir / f"{stem}.json", summary, indent=2)
    return summary


def _at(alpha: np.ndarray, values: np.ndarray, where: float) -> float | None:
    hit = np.flatnonzero(np.isclose(alpha, where, atol=1e-12))
    return float(values[hit[0]]) if len(hit) else None


def _at_centre(surface: Surface, loss: np.ndarray) -> float | None:
    if surface.kind == "interpolation":
        return None
    alpha = surface.axes[0]
    i = int(np.argmin(np.abs(alpha)))
    if not np.isclose(alpha[i], 0.0, atol=1e-12):
        return None
    return float(loss[i] if loss.ndim == 1 else loss[i, i])


def _num(value: float | None) -> str:
    return "none finite" if value is None else f"{value:.4g}"


def describe(summary: dict[str, Any]) -> str:
    """A few lines for the terminal: per split the loss range (and, for an interpolation, the
    ends and the barrier between them), which evaluator ran, where the files are."""
    lines = [f"{summary['kind']}: grid {summary['grid']} over {summary['range']}, "
             f"{summary['seconds']} s"]  # fmt: skip
    for split, row in summary["splits"].items():
        text = f"  {split}: loss {_num(row['min_loss'])}..{_num(row['max_loss'])}"
        if row.get("centre_loss") is not None:
            text += f", at the model {row['centre_loss']:.4g}"
        if "loss_at_0" in row:
            text += (f"; A {row['loss_at_0']:.4g}, B {row['loss_at_1']:.4g}, highest between "
                     f"{row['max_loss_between']:.4g}, lowest accuracy between "
                     f"{100 * row['min_acc_between']:.2f}%")  # fmt: skip
        lines.append(text + f"  [{summary['evaluator'][split]}]")
        if row.get("non_finite_points"):
            why = (" (--bn-stats moved a BatchNorm running variance below 0 there)"
                   if summary.get("bn_stats") else "")  # fmt: skip
            lines.append(f"    {row['non_finite_points']} points gave a NaN/Inf loss{why}; "
                         "they are blank in the pictures")  # fmt: skip
    if "pca_explained_variance_ratio" in summary:
        ratios = ", ".join(f"{100 * r:.1f}%" for r in summary["pca_explained_variance_ratio"])
        lines.append(f"  PCA directions explain {ratios} of the trajectory's variance")
    lines.append(f"  written: {summary['npz']} and {len(summary['pictures'])} picture(s)")
    return "\n".join(lines)
