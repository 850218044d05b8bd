"""1-D and 2-D loss surfaces: interpolation between two models, a random line, a random plane
(Li et al. 2018; Goodfellow et al. 2015 for the interpolation θ(α) = (1 − α)θ_A + αθ_B, α also
outside [0, 1]). Each split's loss and accuracy at every grid point, evaluated in chunks by the
faster of `vmap` and the point loop (see `trainlab.landscape.evaluate`), saved to an `.npz` as
chunks finish: calling again with the same file and settings resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch import Tensor, nn

from trainlab.durable import replacing
from trainlab.landscape.directions import state_names, state_of
from trainlab.landscape.evaluate import (
    EVALUATORS,
    Batch,
    BNMode,
    Metrics,
    PointEvaluator,
    choose,
)

LossFn = Callable[[Tensor, Tensor], Tensor]


@dataclass(frozen=True)
class Surface:
    """A computed surface.

    kind: "plane", "line" or "interpolation". axes: the coordinates (α,) or (α, β).
    loss, acc: per split, arrays shaped like the grid — (len(α),) or (len(β), len(α)), i.e.
      [j, i] is the point (α_i, β_j), as matplotlib's contour expects.
    evaluator: per split, "vmap" or "loop" and the timings behind the choice.
    """

    kind: str
    axes: tuple[np.ndarray, ...]
    loss: dict[str, np.ndarray]
    acc: dict[str, np.ndarray]
    evaluator: dict[str, str]
    seconds: float
    path: Path | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(len(a) for a in reversed(self.axes))


@dataclass(frozen=True)
class SplitData:
    """The examples of one split (as batches) the surface is measured on."""

    batches: list[Batch]
    stats_batches: list[Batch] | None = None  # training batches for bn="recompute"


def grid_axis(lo: float, hi: float, points: int) -> np.ndarray:
    """`points` evenly spaced coordinates from lo to hi; one clear error for bad input."""
    if points < 2:
        raise ValueError(f"a grid needs at least 2 points per axis, got {points}")
    if not hi > lo:
        raise ValueError(f"a grid range needs lo < hi, got {lo} and {hi}")
    return np.linspace(lo, hi, points)


def _fingerprint(vectors: Sequence[Sequence[Tensor]], settings: dict[str, Any]) -> str:
    """A digest of the vectors' bytes and the settings: a saved file resumes only if equal."""
    h = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode())
    for v in vectors:
        for t in v:
            h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _save(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write the npz under a temporary name, then rename: a kill never leaves half a file."""
    with replacing(path) as tmp:
        np.savez(tmp, **arrays)


def _resume(path: Path | None, digest: str) -> dict[str, np.ndarray] | None:
    if path is None or not path.is_file():
        return None
    with np.load(path) as saved:
        if str(saved["fingerprint"]) != digest:
            raise ValueError(
                f"{path} holds a surface computed with other settings or directions; "
                "delete it or write elsewhere"
            )
        return {k: saved[k] for k in saved.files}


def _picks_one_vector(coeffs: np.ndarray) -> np.ndarray:
    """Rows with one coefficient 1 and the others 0."""
    return ((coeffs == 0) | (coeffs == 1)).all(axis=1) & ((coeffs == 1).sum(axis=1) == 1)


def evaluate_points(
    evaluators: dict[str, PointEvaluator],
    coeffs: np.ndarray,
    *,
    path: Path | None = None,
    fingerprint: str = "",
    evaluator: str = "auto",
    extra: dict[str, np.ndarray] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[dict[str, Metrics], dict[str, str]]:
    """Loss and accuracy of every split at each coefficient row, saving to `path` (an .npz)
    after every chunk and resuming from it. Returns the metrics and, per split, which
    evaluator was used and why.

    Rows that pick one vector exactly (a model itself: the centre of a plane, the two ends of
    an interpolation) are evaluated point by point first, so their values are bit-identical to
    the model's own loss (vmap's batched kernels round differently, by ~1e-7 in float32)."""
    if evaluator not in EVALUATORS:
        raise ValueError(f"evaluator must be one of {EVALUATORS}, got {evaluator!r}")
    n = len(coeffs)
    arrays = _resume(path, fingerprint) or {"fingerprint": np.array(fingerprint),
                                            "coeffs": coeffs, **(extra or {})}  # fmt: skip
    used = {}
    for split, ev in evaluators.items():
        loss = arrays.setdefault(f"{split}_loss", np.full(n, np.nan))
        acc = arrays.setdefault(f"{split}_acc", np.full(n, np.nan))
        done = arrays.setdefault(f"{split}_done", np.zeros(n, bool))
        anchors = np.flatnonzero(_picks_one_vector(coeffs) & ~done)
        if len(anchors):
            m = ev.loop(coeffs[anchors])
            loss[anchors], acc[anchors], done[anchors] = m.loss, m.acc, True
        todo = np.flatnonzero(~done)
        name = evaluator if evaluator != "auto" else str(arrays.get(f"{split}_evaluator", "auto"))
        if name == "auto" and len(todo):
            picked = choose(ev, coeffs[todo])
            idx = todo[picked.indices]
            loss[idx], acc[idx], done[idx] = picked.metrics.loss, picked.metrics.acc, True
            name, used[split] = picked.evaluator, picked.describe()
            arrays[f"{split}_evaluator"] = np.array(name)
            todo = np.flatnonzero(~done)
        used.setdefault(split, name)
        step = ev.chunk if name == "vmap" else max(1, ev.chunk // 2)
        for lo in range(0, len(todo), step):
            idx = todo[lo : lo + step]
            m = ev.by_name(name)(coeffs[idx])
            loss[idx], acc[idx], done[idx] = m.loss, m.acc, True
            if path is not None:
                _save(path, arrays)
            if progress is not None:
                progress(int(done.sum()), n)
        if path is not None:
            _save(path, arrays)
    metrics = {s: Metrics(arrays[f"{s}_loss"], arrays[f"{s}_acc"]) for s in evaluators}
    return metrics, used


def _surface(
    kind: str,
    model: nn.Module,
    loss_fn: LossFn,
    splits: dict[str, SplitData],
    names: Sequence[str],
    vectors: list[list[Tensor]],
    coeffs: np.ndarray,
    axes: tuple[np.ndarray, ...],
    *,
    bn: BNMode,
    path: Path | None,
    evaluator: str,
    chunk: int | None,
    progress: Callable[[int, int], None] | None,
) -> Surface:
    start = time.perf_counter()
    evaluators = {
        s: PointEvaluator(model, loss_fn, d.batches, names, vectors, bn=bn,
                          stats_batches=d.stats_batches, chunk=chunk)
        for s, d in splits.items()
    }  # fmt: skip
    examples = {s: sum(len(y) for _, y in d.batches) for s, d in splits.items()}
    settings = {"kind": kind, "bn": bn, "names": list(names), "examples": examples}
    axes_arrays = {f"axis{i}": a for i, a in enumerate(axes)}
    digest = _fingerprint(vectors, settings) + "-" + hashlib.sha256(coeffs.tobytes()).hexdigest()
    metrics, used = evaluate_points(
        evaluators, coeffs, path=path, fingerprint=digest, evaluator=evaluator,
        extra={"kind": np.array(kind), **axes_arrays}, progress=progress,
    )  # fmt: skip
    shape = tuple(len(a) for a in reversed(axes))
    return Surface(
        kind, axes,
        {s: m.loss.reshape(shape) for s, m in metrics.items()},
        {s: m.acc.reshape(shape) for s, m in metrics.items()},
        used, time.perf_counter() - start, path,
    )  # fmt: skip


def plane_surface(
    model: nn.Module,
    loss_fn: LossFn,
    splits: dict[str, SplitData],
    directions: tuple[Sequence[Tensor], Sequence[Tensor]],
    alphas: np.ndarray,
    betas: np.ndarray | None = None,
    *,
    names: Sequence[str] | None = None,
    bn: BNMode = "eval",
    path: Path | None = None,
    evaluator: str = "auto",
    chunk: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Surface:
    """L(θ + α d₁ + β d₂) on the grid alphas × betas (Li et al. 2018, Eq. 1), per split.

    `names` are those the directions are aligned with (default: the parameters; pass
    `state_names(model, bn_stats=True)` for directions that also move BatchNorm statistics).
    """
    names = tuple(names or state_names(model))
    betas = alphas if betas is None else betas
    theta = state_of(model, names)
    aa, bb = np.meshgrid(alphas, betas)  # [j, i] = (α_i, β_j)
    coeffs = np.stack([np.ones(aa.size), aa.ravel(), bb.ravel()], axis=1)
    vectors = [theta, list(directions[0]), list(directions[1])]
    return _surface(
        "plane", model, loss_fn, splits, names, vectors, coeffs, (alphas, betas),
        bn=bn, path=path, evaluator=evaluator, chunk=chunk, progress=progress,
    )  # fmt: skip


def line_surface(
    model: nn.Module,
    loss_fn: LossFn,
    splits: dict[str, SplitData],
    direction: Sequence[Tensor],
    alphas: np.ndarray,
    *,
    names: Sequence[str] | None = None,
    bn: BNMode = "eval",
    path: Path | None = None,
    evaluator: str = "auto",
    chunk: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Surface:
    """L(θ + α d) for each α, per split (a 1-D slice along one direction)."""
    names = tuple(names or state_names(model))
    coeffs = np.stack([np.ones(len(alphas)), np.asarray(alphas)], axis=1)
    vectors = [state_of(model, names), list(direction)]
    return _surface(
        "line", model, loss_fn, splits, names, vectors, coeffs, (alphas,),
        bn=bn, path=path, evaluator=evaluator, chunk=chunk, progress=progress,
    )  # fmt: skip


def interpolation_surface(
    model_a: nn.Module,
    model_b: nn.Module,
    loss_fn: LossFn,
    splits: dict[str, SplitData],
    alphas: np.ndarray,
    *,
    bn: BNMode = "eval",
    path: Path | None = None,
    evaluator: str = "auto",
    chunk: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Surface:
    """L((1 − α)θ_A + αθ_B) for each α, per split; α = 0 and 1 give A's and B's values exactly.

    With bn="eval" the BatchNorm running statistics are interpolated too (so each end uses its
    own); with bn="recompute" they are re-estimated at each α (Garipov et al. 2018).
    """
    names = state_names(model_a, bn_stats=bn == "eval")
    if names != state_names(model_b, bn_stats=bn == "eval"):
        raise ValueError("models A and B have different architectures (parameter names differ)")
    a, b = state_of(model_a, names), state_of(model_b, names)
    for name, x, y in zip(names, a, b, strict=True):
        if x.shape != y.shape:
            raise ValueError(
                f"models A and B differ at {name}: {tuple(x.shape)} vs {tuple(y.shape)}"
            )
    alphas = np.asarray(alphas, dtype=np.float64)
    coeffs = np.stack([1.0 - alphas, alphas], axis=1)
    return _surface(
        "interpolation", model_a, loss_fn, splits, names, [a, b], coeffs, (alphas,),
        bn=bn, path=path, evaluator=evaluator, chunk=chunk, progress=progress,
    )  # fmt: skip


def load_surface(path: Path) -> Surface:
    """A surface saved by the functions above (complete or partial: missing points are NaN)."""
    with np.load(path) as f:
        arrays = {k: f[k] for k in f.files}
    axes = tuple(arrays[f"axis{i}"] for i in range(2) if f"axis{i}" in arrays)
    shape = tuple(len(a) for a in reversed(axes))
    splits = [k.removesuffix("_loss") for k in arrays if k.endswith("_loss")]
    return Surface(
        str(arrays["kind"]), axes,
        {s: arrays[f"{s}_loss"].reshape(shape) for s in splits},
        {s: arrays[f"{s}_acc"].reshape(shape) for s in splits},
        {s: str(arrays.get(f"{s}_evaluator", "?")) for s in splits}, 0.0, path,
    )  # fmt: skip
