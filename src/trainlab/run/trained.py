"""Trained runs as inputs to an analysis: find a run directory's checkpoint, read its weights,
check that two runs share an architecture, and rebuild the model with its data — every
problem reported as one line before any work is done."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from torch import Tensor

from trainlab.durable import read_json
from trainlab.landscape.hessian import make_hvp, top_eigenvalues_power
from trainlab.landscape.loss import loss_of_params, model_params, split_batches
from trainlab.landscape.sharpness import SharpnessReport, sharpness_report
from trainlab.run.config import Recipe, RecipeError, load_recipe
from trainlab.run.evaluation import FINAL_WEIGHTS
from trainlab.run.experiment import Experiment, build
from trainlab.train.checkpoint import usable_checkpoint

WEIGHTS = "model.safetensors"


class RunDirError(RecipeError):
    """A run directory that cannot be analysed; the message is one line."""


@dataclass(frozen=True)
class TrainedRun:
    """A run directory, its resolved recipe and the weights (state dict) of its checkpoint."""

    run_dir: Path
    recipe: Recipe
    checkpoint: Path
    state: dict[str, Tensor]


def open_run(run_dir: str | Path) -> TrainedRun:
    """The run's recipe and latest checkpoint weights, or RunDirError saying what was expected."""
    run_dir = Path(run_dir)
    expected = (
        "a run directory with recipe.yaml and checkpoints/step-*/model.safetensors "
        "(or, finished, model.safetensors)"
    )
    if not (run_dir / "recipe.yaml").is_file():
        raise RunDirError(f"{run_dir}: expected {expected}; found no recipe.yaml")
    recipe = load_recipe(run_dir / "recipe.yaml")
    damaged: list[str] = []
    ckpt = usable_checkpoint(run_dir / "checkpoints", damaged.append, move_aside=False)
    if ckpt is None:
        final = _final_weights(run_dir)
        if final is not None:  # a run trained in a stack keeps no checkpoints
            return TrainedRun(run_dir, recipe, run_dir / FINAL_WEIGHTS, final)
        why = f" ({len(damaged)} damaged)" if damaged else ""
        raise RunDirError(f"{run_dir}: expected {expected}; found no usable checkpoint{why}")
    for line in damaged:  # an older checkpoint is used: say so
        print(f"warning: {line}", file=sys.stderr)
    return TrainedRun(run_dir, recipe, ckpt.path, ckpt.weights)


def _final_weights(run_dir: Path) -> dict[str, Tensor] | None:
    """A finished run's final weights (model.safetensors beside result.json), if readable."""
    path = run_dir / FINAL_WEIGHTS
    if not ((run_dir / "result.json").is_file() and path.is_file()):
        return None
    try:
        return load_file(str(path))
    except Exception:  # noqa: BLE001 - a damaged file: no usable weights
        return None


def _shapes(state: dict[str, Tensor]) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in state.items()}


def check_same_architecture(a: TrainedRun, b: TrainedRun) -> None:
    """RunDirError naming the first difference unless the two runs' weights have the same
    names and shapes (and their recipes the same model section)."""
    prefix = f"{a.run_dir} and {b.run_dir}: expected the same architecture"
    sa, sb = _shapes(a.state), _shapes(b.state)
    if sa.keys() != sb.keys():
        only = sorted(sa.keys() ^ sb.keys())[0]
        raise RunDirError(f"{prefix}; tensor {only!r} is in only one of them")
    for name, shape in sa.items():
        if shape != sb[name]:
            raise RunDirError(f"{prefix}; {name} has shape {shape} vs {sb[name]}")
    ma, mb = a.recipe.model.model_dump(), b.recipe.model.model_dump()
    if ma != mb:
        key = next(k for k in ma if ma[k] != mb.get(k))
        raise RunDirError(f"{prefix}; model.{key} is {ma[key]!r} vs {mb.get(key)!r}")


def _fingerprint(run: TrainedRun) -> str | None:
    notes = read_json(run.run_dir / "data.json")
    return notes.get("data_fingerprint") if isinstance(notes, dict) else None


def check_same_data(a: TrainedRun, b: TrainedRun) -> None:
    """RunDirError unless the two runs trained and were tested on the same data (their
    data.json fingerprints agree; runs from before fingerprints pass)."""
    fa, fb = _fingerprint(a), _fingerprint(b)
    if fa is None or fb is None or fa == fb:
        return
    raise RunDirError(
        f"{a.run_dir} and {b.run_dir}: trained on different data (fingerprint {fa} vs {fb}, "
        f"data.seed {a.recipe.data.seed} vs {b.recipe.data.seed}); expected the same data, "
        "or --data-of A|B to score both on one run's data"
    )


def build_trained(run: TrainedRun, recipe: Recipe | None = None) -> Experiment:
    """The run's experiment (data splits, model, loss) with the checkpoint's weights loaded.

    `recipe` (default: the run's) lets a caller rebuild with changes such as thread count."""
    exp = build(recipe or run.recipe)
    load_weights(exp.model, run.state, run.run_dir)
    return exp


def load_weights(model: torch.nn.Module, state: dict[str, Tensor], run_dir: Path) -> None:
    """`model.load_state_dict(state)`, or RunDirError if the weights are not this model's
    (a recipe.yaml edited after training, weights from another run)."""
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        detail = str(err).strip().splitlines()[-1].strip()
        raise RunDirError(f"{run_dir}: the weights do not fit the model recipe.yaml builds "
                          f"({detail}); expected the run's own recipe") from None  # fmt: skip


def parameters_of(exp: Experiment, state: dict[str, Tensor]) -> list[Tensor]:
    """The parameter list (aligned with `named_parameters()`) held in a state dict, in the
    model's dtype and memory format (channels_last convolutions stay channels_last)."""
    return [torch.empty_like(p).copy_(state[name]) for name, p in exp.model.named_parameters()]


@dataclass(frozen=True)
class RunSharpness:
    """Top Hessian eigenvalue of a run's training loss on `examples` fixed training examples."""

    top_eigenvalue: float
    iterations: int
    examples: int
    loss: float


def run_sharpness(
    run_dir: str | Path, examples: int = 1000, max_iter: int = 50, seed: int = 0
) -> RunSharpness:
    """The largest-|λ| Hessian eigenvalue (power iteration, `landscape.hessian`) of the mean
    training loss at a run's last checkpoint, on a subset of its training split drawn with
    `seed` (the same subset for runs of the same data split), BatchNorm in eval mode."""
    exp = build_trained(open_run(run_dir))
    split = exp.loader.split
    n = min(examples, len(split))
    gen = torch.Generator().manual_seed(seed)
    index = torch.randperm(len(split), generator=gen)[:n].sort().values
    x = split.x[index]
    if exp.recipe.train.channels_last and x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    batches = split_batches(x, split.y[index], 500)
    loss = loss_of_params(exp.model, exp.loss_fn, batches)
    params = model_params(exp.model)
    top = top_eigenvalues_power(make_hvp(loss, params), params, 1, max_iter=max_iter, seed=seed)
    return RunSharpness(float(top.values[0]), top.iterations[0], n, float(loss(params)))


def run_sharpness_report(
    run_dir: str | Path,
    examples: int = 1000,
    *,
    seed: int = 0,
    max_iter: int = 50,
    trace_samples: int = 20,
) -> SharpnessReport:
    """`sharpness_report` (top eigenvalue, Hessian trace, SAM sharpness on two disjoint random
    subsets of the training split, and their spread) at a run's last checkpoint; `examples` is
    capped at half the training split."""
    for flag, value, least in (("--examples", examples, 1), ("--max-iter", max_iter, 1),
                               ("--trace-samples", trace_samples, 2)):  # fmt: skip
        if value < least:
            raise RecipeError(f"sharpness {flag}: expected an integer >= {least}, got {value}")
    exp = build_trained(open_run(run_dir))
    split = exp.loader.split
    n = max(1, min(examples, len(split) // 2))
    return sharpness_report(
        exp.model, exp.loss_fn, split.x, split.y, n, seed=seed, max_iter=max_iter,
        trace_samples=trace_samples,
    )  # fmt: skip


def report_json(report: SharpnessReport) -> dict[str, Any]:
    """A sharpness report as JSON-ready data (subset indices left out)."""
    subsets = [{k: v for k, v in vars(s).items() if k != "indices"} for s in report.subsets]
    return {"n_examples": report.n_examples, "subsets": subsets, "spread": report.spread}
