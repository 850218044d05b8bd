"""`trainlab connect`: train a curve between two trained runs and compare it with the straight
segment (Garipov et al. 2018, Sec. 3 and Fig. 1; seed 000, "Mode connectivity").

Two ways in: `connect_runs(RUN_A, RUN_B, options)` for runs that exist, or a connect file
(`examples/connect.yaml`) that first trains the two endpoints from different seeds:

    name: connect
    seeds: [0, 1]           # one endpoint run per seed, same recipe
    recipe: {...}           # the endpoint recipe (any model in the zoo)
    curve: bezier           # the curve options below, also the CLI flags
    epochs: 4

Writes into the output directory: curve.safetensors and curve.json (the trained bends, saved as
soon as training ends and reused by a rerun with the same options), curve.npz (t and train
loss/error, test loss/error along the curve and along the segment), connect.png, connect.json.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from safetensors.torch import load_file, save_file

from trainlab.data import TensorSplit
from trainlab.durable import replacing, save_figure, write_json
from trainlab.landscape.curves import (
    Curve,
    CurveProfile,
    evaluate_curve,
    make_curve,
    segment,
    train_curve,
)
from trainlab.report import refresh_report
from trainlab.run.config import (
    Recipe,
    RecipeError,
    describe_error,
    read_yaml_mapping,
    validate_recipe,
)
from trainlab.run.experiment import Experiment
from trainlab.run.runner import new_run_dir, train_recipe
from trainlab.run.trained import (
    TrainedRun,
    build_trained,
    check_same_architecture,
    check_same_data,
    open_run,
    parameters_of,
)

Say = Callable[[str], None]


class CurveOptions(BaseModel):
    """How the curve is trained and evaluated (Garipov et al. 2018 defaults where they apply:
    one bend, 61 points; the epochs and lr suit small Fashion-MNIST models)."""

    model_config = ConfigDict(extra="forbid")

    curve: Literal["bezier", "polychain"] = "bezier"
    bends: Annotated[int, Field(ge=1)] = 1
    epochs: Annotated[int, Field(ge=1)] = 4
    lr: Annotated[float, Field(gt=0)] = 0.05
    momentum: Annotated[float, Field(ge=0, lt=1)] = 0.9
    weight_decay: Annotated[float, Field(ge=0)] = 5e-4
    points: Annotated[int, Field(ge=2)] = 61
    bn_examples: Annotated[int, Field(ge=1)] | None = None  # None: the whole training split
    train_examples: Annotated[int, Field(ge=1)] | None = None  # for the train loss along t
    seed: int = 0


class ConnectSpec(CurveOptions):
    """A connect file: the endpoint recipe, its two seeds, and the curve options."""

    name: str = "connect"
    recipe: dict[str, Any]
    seeds: list[int] = Field(default_factory=lambda: [0, 1], min_length=2, max_length=2)
    runs_dir: str = "runs"


def load_connect_spec(path: Path, overrides: dict[str, Any] | None = None) -> ConnectSpec:
    """Read and validate a connect file (and both endpoint recipes) before any training."""
    raw = read_yaml_mapping(path, "a connect file")
    try:
        spec = ConnectSpec.model_validate({**raw, **(overrides or {})})
    except ValidationError as err:
        raise RecipeError(f"{path}: {describe_error(err.errors()[0])}") from None
    for seed in spec.seeds:
        endpoint_recipe(spec, seed)
    if spec.seeds[0] == spec.seeds[1]:
        raise RecipeError(f"{path}: seeds must differ (two independently trained endpoints)")
    return spec


def endpoint_recipe(spec: ConnectSpec, seed: int) -> Recipe:
    """The endpoint recipe for one seed (validated; one line on error)."""
    try:
        return validate_recipe({**spec.recipe, "seed": seed, "name": f"{spec.name}-seed{seed}"})
    except RecipeError as err:
        raise RecipeError(f"connect recipe: {err}") from None


def connect_file(
    path: Path, overrides: dict[str, Any] | None = None, say: Say = print
) -> dict[str, Any]:
    """Run a connect file: train both endpoints into a new study directory, then the curve."""
    spec = load_connect_spec(path, overrides)
    study = new_run_dir(Recipe(name=spec.name, runs_dir=spec.runs_dir))
    say(f"study directory: {study}")
    run_a, run_b = train_endpoints(spec, study, say)
    options = CurveOptions(**spec.model_dump(include=set(CurveOptions.model_fields)))
    return connect_runs(run_a, run_b, options, study, say)


def train_endpoints(spec: ConnectSpec, study: Path, say: Say) -> tuple[Path, Path]:
    """Train the two endpoint runs into study/seed<k>; return their directories."""
    dirs = []
    for seed in spec.seeds:
        recipe = endpoint_recipe(spec, seed)
        result = train_recipe(recipe, quiet=True, run_dir=study / f"seed{seed}")
        acc = "n/a" if result.test_acc is None else f"{100 * result.test_acc:.2f}%"
        say(f"endpoint seed {seed}: test accuracy {acc} ({result.train_seconds:.0f} s)")
        dirs.append(result.run_dir)
    return dirs[0], dirs[1]


def _subset(split: TensorSplit, size: int | None, seed: int) -> TensorSplit:
    """A seeded random subset of `size` examples (the whole split if None or larger)."""
    if size is None or size >= len(split):
        return split
    order = torch.randperm(len(split), generator=torch.Generator().manual_seed(seed))[:size]
    return TensorSplit(split.x[order], split.y[order])


def _progress(label: str, say: Say, every: int) -> Callable[[int, float, tuple], None]:
    def report(i: int, t: float, row: tuple) -> None:
        if i % every == 0:
            say(f"  {label} t={t:.3f}  train loss {row[0]:.4f}  test error {100 * row[3]:.2f}%")

    return report


def connect_runs(
    run_a: str | Path,
    run_b: str | Path,
    options: CurveOptions,
    out_dir: Path | None = None,
    say: Say = print,
) -> dict[str, Any]:
    """Train a curve between two runs' weights, evaluate it and the segment at
    `options.points` t, and write curve.npz, curve.safetensors, connect.png, connect.json;
    a copy of the summary goes to each run's connections/ folder (its report's analysis
    section shows it).

    Both run directories are checked (a checkpoint each, the same architecture) before any
    data is read. Returns the summary written to connect.json."""
    a, b = open_run(run_a), open_run(run_b)
    check_same_architecture(a, b)
    check_same_data(a, b)
    out_dir = out_dir or new_run_dir(Recipe(name="connect", runs_dir=str(a.run_dir.parent)))
    out_dir.mkdir(parents=True, exist_ok=True)
    exp = build_trained(a)
    summary = {"out_dir": str(out_dir), **_connect(exp, a, b, options, out_dir, say)}
    write_json(out_dir / "connect.json", summary, indent=2)
    for run in (a, b):
        (run.run_dir / "connections").mkdir(exist_ok=True)
        write_json(run.run_dir / "connections" / f"{out_dir.name}.json", summary, indent=2)
        refresh_report(run.run_dir)
    return summary


def _connect(
    exp: Experiment, a: TrainedRun, b: TrainedRun, opts: CurveOptions, out: Path, say: Say
) -> dict[str, Any]:
    cl = exp.recipe.train.channels_last
    train = _subset(exp.loader.split, opts.train_examples, opts.seed)
    bn = _subset(exp.loader.split, opts.bn_examples, opts.seed + 1)
    w_a, w_b = parameters_of(exp, a.state), parameters_of(exp, b.state)
    curve, history, fit_seconds = _trained_curve(exp, w_a, w_b, opts, out, say)
    every = max(opts.points // 6, 1)
    profiles: dict[str, CurveProfile] = {}
    seconds = {"curve_training": fit_seconds}
    for label, path in (("curve", curve), ("segment", segment(w_a, w_b))):
        start = time.perf_counter()
        profiles[label] = evaluate_curve(
            exp.model, path, train=train, test=exp.test, loss_fn=exp.loss_fn,
            points=opts.points, bn_inputs=bn, batch_size=exp.recipe.data.eval_batch_size,
            channels_last=cl, on_point=_progress(label, say, every),
        )  # fmt: skip
        seconds[f"{label}_evaluation"] = time.perf_counter() - start
    curve_p, seg_p = profiles["curve"], profiles["segment"]
    with replacing(out / "curve.npz") as tmp:
        np.savez(tmp, **curve_p.arrays("curve_"), **seg_p.arrays("segment_"))
    plot_connect(curve_p, seg_p, out / "connect.png", opts.curve)
    summary = _summary(a, b, opts, curve_p, seg_p, len(train), len(bn))
    summary["seconds"] = seconds
    summary["curve_training_loss"] = history
    return summary


BENDS = "curve.safetensors"
TRAINING_FIELDS = ("curve", "bends", "epochs", "lr", "momentum", "weight_decay", "seed")


def _trained_curve(
    exp: Experiment,
    w_a: list[torch.Tensor],
    w_b: list[torch.Tensor],
    opts: CurveOptions,
    out: Path,
    say: Say,
) -> tuple[Curve, list[float], float]:
    """Train the curve and save its bends at once (curve.safetensors + curve.json), or load
    them when `out` already holds a curve trained with the same options (a connect killed
    during evaluation restarts there)."""
    curve = make_curve(w_a, w_b, opts.curve, opts.bends)
    names = [name for name, _ in exp.model.named_parameters()]
    wanted = opts.model_dump(include=set(TRAINING_FIELDS))
    saved = out / "curve.json"
    record = json.loads(saved.read_text()) if saved.is_file() else {}
    if record.get("options") == wanted:
        state = load_file(str(out / BENDS))
        with torch.no_grad():
            for i, point in enumerate(curve.points[1:-1], start=1):
                for name, p in zip(names, point, strict=True):
                    p.copy_(state[f"bend{i}.{name}"])
        say(f"loaded the trained bends from {out / BENDS}")
        return curve, record["loss"], record["seconds"]
    say(f"training a {opts.curve} curve ({opts.bends} bend) for {opts.epochs} epochs")
    start = time.perf_counter()
    history = train_curve(
        exp.model, curve, exp.loader, exp.loss_fn, epochs=opts.epochs, lr=opts.lr,
        momentum=opts.momentum, weight_decay=opts.weight_decay, seed=opts.seed,
        channels_last=exp.recipe.train.channels_last,
        on_epoch=lambda e: say(f"  epoch {e.epoch + 1}: loss {e.loss:.4f}"),
    )  # fmt: skip
    seconds = time.perf_counter() - start
    bends = {
        f"bend{i}.{name}": p.detach().contiguous()
        for i, point in enumerate(curve.points[1:-1], start=1)
        for name, p in zip(names, point, strict=True)
    }
    with replacing(out / BENDS) as tmp:
        save_file(bends, str(tmp))
    losses = [e.loss for e in history]
    write_json(saved, {"options": wanted, "loss": losses, "seconds": seconds})
    return curve, losses, seconds


def _summary(
    a: TrainedRun,
    b: TrainedRun,
    opts: CurveOptions,
    curve_p: CurveProfile,
    seg_p: CurveProfile,
    n_train: int,
    n_bn: int,
) -> dict[str, Any]:
    worst_end = max(curve_p.test_error[0], curve_p.test_error[-1])
    mid = len(seg_p.t) // 2
    return {
        "run_a": str(a.run_dir),
        "run_b": str(b.run_dir),
        "options": opts.model_dump(),
        "train_examples": n_train,
        "bn_examples": n_bn,
        "curve": curve_p.worst(),
        "segment": seg_p.worst(),
        "worse_endpoint_test_error": float(worst_end),
        "curve_excess_test_error": float(curve_p.test_error.max() - worst_end),
        "segment_midpoint_t": float(seg_p.t[mid]),
        "segment_midpoint_test_error": float(seg_p.test_error[mid]),
        "segment_midpoint_train_loss": float(seg_p.train_loss[mid]),
    }


def describe(summary: dict[str, Any]) -> str:
    """The lines `trainlab connect` prints: endpoints, the curve's worst point and its excess
    over the worse endpoint (target ≤ 2 percentage points), the segment's midpoint."""
    c, s, kind = summary["curve"], summary["segment"], summary["options"]["curve"]
    pct = lambda x: f"{100 * x:.2f}%"  # noqa: E731
    excess = 100 * summary["curve_excess_test_error"]
    verdict = "within" if excess <= 2.0 else "NOT within"
    return "\n".join([
        f"endpoints: test error {pct(c['start_test_error'])} (A), {pct(c['end_test_error'])} (B)",
        f"{kind} curve: max test error {pct(c['max_test_error'])} at t={c['t_max_test_error']:.3f}"
        f" ({excess:+.2f} pp vs the worse endpoint: {verdict} 2 pp); "
        f"max train loss {c['max_train_loss']:.4f}",
        f"segment: midpoint test error {pct(summary['segment_midpoint_test_error'])}, "
        f"max {pct(s['max_test_error'])} at t={s['t_max_test_error']:.3f}; "
        f"midpoint train loss {summary['segment_midpoint_train_loss']:.4f}",
    ])  # fmt: skip


def plot_connect(curve_p: CurveProfile, seg_p: CurveProfile, path: Path, kind: str) -> Path:
    """Two panels against t: test error and train loss, along the curve and the segment."""
    fig = Figure(figsize=(10, 4), layout="constrained")
    FigureCanvasAgg(fig)
    err_ax, loss_ax = fig.subplots(1, 2)
    for profile, label, style in ((curve_p, kind, "o-"), (seg_p, "segment", "s--")):
        err_ax.plot(profile.t, 100 * profile.test_error, style, ms=3, label=label)
        loss_ax.plot(profile.t, profile.train_loss, style, ms=3, label=label)
    err_ax.set(xlabel="t", ylabel="test error (%)", title="test error along t")
    loss_ax.set(xlabel="t", ylabel="train loss", title="train loss along t", yscale="log")
    for ax in (err_ax, loss_ax):
        ax.legend()
        ax.grid(alpha=0.3)
    save_figure(fig, path, dpi=120)
    return path
