"""Coarse-to-fine search, `trainlab search SPEC --stages K` (CS231n, "Hyperparameter
optimization": search coarse first, then narrow the ranges around what worked and search
again).

Stage 1 is the spec as written, in the study directory. Stage k > 1 is a search of its own,
in STUDY_DIR/stage-k from the spec file STUDY_DIR/stage-k.yaml, whose space is the last
stage's narrowed around its `top` best completed trials: each range becomes the span of their
values (on a log scale for log ranges) widened by half that span on each side (by a tenth of
the old range when they all agree) and clipped to the old range; a categorical keeps the
choices they used. The narrowing reads only the stored trials, so running the same command
again writes the same stage files and continues where the study stopped. Every stage is
judged on validation only; the test split is scored once, for the last stage's best trial.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from optuna.trial import FrozenTrial, TrialState

from trainlab.durable import write_text
from trainlab.run.bundled import base_recipe_file
from trainlab.run.config import RecipeError
from trainlab.study.engine import Plan
from trainlab.study.search import describe_search, load_study, plan_search, run_search
from trainlab.study.search_report import BestResult, finish_search
from trainlab.study.search_spec import Dim, Search, decode_value
from trainlab.study.search_state import Tally

TOP = 5  # the best trials of a stage that the next stage's ranges are drawn around


def best_trials(trials: list[FrozenTrial], direction: str, top: int = TOP) -> list[FrozenTrial]:
    """The `top` best COMPLETE trials (highest values when maximizing)."""
    done = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    return sorted(done, key=lambda t: t.value, reverse=direction == "maximize")[:top]


def narrow_dim(dim: Dim, values: list[Any]) -> dict[str, Any]:
    """The space entry of `dim` around `values` (the best trials' values of it)."""
    when = dict(dim.when)
    extra: dict[str, Any] = {"when": when} if when else {}
    if dim.kind == "categorical":
        used = {repr(decode_value(v)) for v in values}
        kept = [c for c in dim.choices if repr(c) in used] or list(dim.choices)
        return {"categorical": kept, **extra}
    scale = (math.log, math.exp) if dim.log else (float, float)
    lo, hi = scale[0](dim.low), scale[0](dim.high)
    if values:
        got = [scale[0](float(v)) for v in values]
        span = max(got) - min(got)
        pad = span / 2 if span > 0 else (hi - lo) / 10
        lo, hi = max(lo, min(got) - pad), min(hi, max(got) + pad)
    low, high = scale[1](lo), scale[1](hi)
    if dim.kind == "int":
        low, high = math.floor(low + 1e-9), math.ceil(high - 1e-9)
        high = max(high, low + 1)
        return {"int": [int(low), int(high)], "log": dim.log, "points": dim.points, **extra}
    kind = "loguniform" if dim.log else "uniform"
    return {kind: [float(low), float(high)], "points": dim.points, **extra}


def next_stage_spec(search: Search, trials: list[FrozenTrial], stage: int) -> dict[str, Any]:
    """Stage `stage`'s search file (a mapping), narrowed around the last stage's best."""
    best = best_trials(trials, search.spec.direction)
    raw = search.spec.model_dump(mode="json", by_alias=True)
    raw["space"] = {
        d.field: narrow_dim(d, [t.params[d.field] for t in best if d.field in t.params])
        for d in search.dims
    }
    raw["name"] = f"{_root_name(search.spec.name)}-stage{stage}"
    raw["base"] = str(base_recipe_file(search.spec.base, search.path).resolve())
    raw["seed"] = search.spec.seed + stage - 1  # fresh draws in the narrowed ranges
    return raw


def write_stage_spec(study_dir: Path, stage: int, raw: dict[str, Any]) -> Path:
    """STUDY_DIR/stage-K.yaml."""
    path = study_dir / f"stage-{stage}.yaml"
    write_text(path, yaml.safe_dump(raw, sort_keys=False))
    return path


def _root_name(name: str) -> str:
    head, _, tail = name.rpartition("-stage")
    return head if head and tail.isdigit() else name


def run_stages(
    spec_path: Path,
    stages: int,
    options: dict[str, Any],
    say: Callable[[str], None],
) -> tuple[Plan, Tally, BestResult | None]:
    """Run stage 1 (the spec) and each narrower stage after it; the last stage's plan, tally
    and best (the only one scored on the test split). `options`: plan_search's keywords."""
    if stages < 1:
        raise RecipeError(f"--stages: {stages}; expected a number of stages >= 1")
    plan = plan_search(spec_path, **options)
    top_dir, name = plan.study_dir, plan.study_name
    say(describe_search(plan))
    for stage in range(1, stages + 1):
        tally = run_search(plan, say)
        objective, last = plan.task.search.spec.objective, stage == stages
        best = finish_search(load_study(plan), plan.study_dir, objective, tally, score=last)
        if last or not tally.finished:
            return plan, tally, best
        raw = next_stage_spec(plan.task.search, load_study(plan).get_trials(), stage + 1)
        path = write_stage_spec(top_dir, stage + 1, raw)
        plan = plan_search(path, **{**options, "study": f"{name}-stage{stage + 1}",
                                    "study_dir": top_dir / f"stage-{stage + 1}"})  # fmt: skip
        say(f"stage {stage + 1} of {stages}, narrowed around stage {stage}'s best "
            f"{TOP}: {describe_search(plan)}")  # fmt: skip
    raise AssertionError("unreachable")
