"""Recipes that differ only in seed, learning rate and weight decay, trained as one stack
(`trainlab.stack`) into ordinary run directories: recipe.yaml, data.json, metrics.jsonl,
model.safetensors, curves.png, result.json, verdicts.json and report.html, each run's own, so
every analysis command reads them like runs trained one by one.

What a stack cannot do is refused with one line naming it (`stack_refusal`); the caller then
trains the runs one by one. Differences from a run trained alone: no per-layer probes, no
mid-run checkpoints (a killed stack is retrained from the start: its runs have no
result.json), and ``train_seconds`` is the run's share of the stack's wall time.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from trainlab import optim
from trainlab.durable import write_json, write_text
from trainlab.run.config import Recipe, dump_recipe
from trainlab.run.diagnosis import write_verdicts
from trainlab.run.experiment import Experiment, build
from trainlab.run.runner import RunResult, finish_run, run_torch_state
from trainlab.stack import StackedModel, fit_stacked, stacked_optimizer
from trainlab.stack.fit import check_loaders
from trainlab.train import Position
from trainlab.train.metrics_log import append_jsonl

STACKABLE = ("sgd", "adam", "adamw", "rmsprop", "adagrad")
"""Aliases whose math is elementwise per parameter (lars/lamb take per-tensor norms, which a
stacked tensor would mix across models)."""
FREE = ("name", "seed", "optimizer.lr", "optimizer.weight_decay", "data.bootstrap")
"""Recipe fields the stacked runs may differ in."""


def _flat(raw: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out = {}
    for key, value in raw.items():
        if isinstance(value, dict):
            out |= _flat(value, f"{prefix}{key}.")
        else:
            out[f"{prefix}{key}"] = value
    return out


def recipe_refusal(recipes: list[Recipe]) -> str | None:
    """Why these recipes cannot share a stack, read from the recipes alone (one line), or
    None. Checked before anything is built."""
    flat = [_flat(r.model_dump(mode="json")) for r in recipes]
    keys = set().union(*flat)  # a section set in one recipe and null in another differs too
    missing = object()
    differ = sorted(k for k in keys if k not in FREE and any(
        f.get(k, missing) != flat[0].get(k, missing) for f in flat[1:]))  # fmt: skip
    if differ:
        return f"the runs differ in {differ[0]} (a stack shares all but {', '.join(FREE)})"
    r = recipes[0]
    o = r.optimizer
    reasons = [
        (o.name not in STACKABLE, f"optimizer {o.name} (stackable: {', '.join(STACKABLE)})"),
        (o.sam is not None, "SAM (its perturbation uses each model's own gradient norm)"),
        (o.clip is not None, "optimizer.clip (a global norm per model)"),
        (o.chain is not None or o.lookahead is not None, "an optimizer chain or lookahead"),
        (r.train.early_stopping is not None, "train.early_stopping (set it to null to stack)"),
        (r.multitask is not None, "multitask"),
        (bool(r.train.tensorboard), "train.tensorboard"),
        (r.train.precision != "fp32", "train.precision (a stack trains in fp32)"),
        (r.train.compile, "train.compile (a stack has its own step)"),
    ]  # fmt: skip
    found = [why for bad, why in reasons if bad]
    return f"not stackable: {found[0]}" if found else None


def experiment_refusal(exps: list[Experiment]) -> str | None:
    """Why the built experiments cannot share a stack (one line), or None."""
    e = exps[0]
    reasons = [
        (e.augment is not None, "data augmentation"),
        (e.adversary is not None, "adversarial training"),
        (e.penalty is not None, "a penalty term"),
        (any(x is not None for x in (e.ema, e.swa, e.snapshots)), "weight averaging"),
        (bool(e.callbacks), "plateau schedules or other callbacks"),
        (not isinstance(e.optimizer, optim.Optimizer), "a torch.optim optimizer"),
    ]
    found = [why for bad, why in reasons if bad]
    if found:
        return f"not stackable: {found[0]}"
    same = all(torch.equal(x.val.x, e.val.x) and torch.equal(x.val.y, e.val.y) for x in exps)
    if not same:
        return "not stackable: the runs' validation splits differ"
    try:
        check_loaders([x.loader for x in exps])
    except ValueError as err:
        return str(err)
    if _schedule_factor(exps) is None:
        return "not stackable: the schedule is not proportional to each run's lr"
    return None


def _schedule_factor(exps: list[Experiment]) -> Callable[[int], float] | None:
    """The shared schedule as a multiple of each run's lr (checked at a few steps), or None."""
    lrs = [x.recipe.optimizer.lr for x in exps]
    total = exps[0].loader.total_steps(exps[0].recipe.train.epochs)
    probes = sorted({0, 1, total // 3, total // 2, max(total - 1, 0)})
    for t in probes:
        ratios = [x.schedule(t) / lr for x, lr in zip(exps, lrs, strict=True)]
        if any(abs(q - ratios[0]) > 1e-12 * max(abs(ratios[0]), 1e-300) for q in ratios):
            return None
    first, lr0 = exps[0].schedule, lrs[0]
    return lambda t: first(t) / lr0


def train_stacked(
    recipes: list[Recipe],
    run_dirs: list[Path],
    *,
    say: Callable[[str], None] = print,
) -> list[RunResult] | None:
    """Train ``recipes`` as one stack into ``run_dirs``; None (after one ``say`` line naming
    why) when they cannot be stacked, so the caller trains them one by one."""
    why = recipe_refusal(recipes) if len(recipes) > 1 else "one run only"
    if why is None:
        with run_torch_state(recipes[0]):
            exps = [build(r) for r in recipes]
            why = experiment_refusal(exps)
            if why is None:
                say(f"stacked: {len(recipes)} runs trained at once as one model "
                    "(trainlab.stack; no per-layer probes)")  # fmt: skip
                return _train(exps, run_dirs)
    say(f"trained one by one: {why}")
    return None


def _train(exps: list[Experiment], run_dirs: list[Path]) -> list[RunResult]:
    first = exps[0].recipe
    o = first.optimizer
    options = {k: tuple(v) if isinstance(v, list) else v for k, v in o.kwargs().items()
               if k not in ("lr", "weight_decay")}  # fmt: skip
    stack = StackedModel([x.model for x in exps])
    opt = stacked_optimizer(
        stack, optim.ALIASES[o.name], o.name, [x.recipe.optimizer.lr for x in exps],
        [float(x.recipe.optimizer.kwargs().get("weight_decay", 0.0)) for x in exps], **options,
    )  # fmt: skip
    factor = _schedule_factor(exps)
    shared = bool((opt.multiples == 1).all())
    schedule = exps[0].schedule if shared else factor
    for x, run_dir in zip(exps, run_dirs, strict=True):
        run_dir.mkdir(parents=True, exist_ok=True)
        write_text(run_dir / "recipe.yaml", dump_recipe(x.recipe))
        write_json(run_dir / "data.json", x.notes | {"stacked": {"runs": len(exps)}})
    run = fit_stacked(stack, [x.loader for x in exps], opt, exps[0].loss_fn,
                      epochs=first.train.epochs, schedule=schedule, val=exps[0].val,
                      eval_batch_size=first.data.eval_batch_size)  # fmt: skip
    return [_finish(x, run_dir, run, k, stack) for k, (x, run_dir)
            in enumerate(zip(exps, run_dirs, strict=True))]  # fmt: skip


def _finish(exp: Experiment, run_dir: Path, run: Any, k: int, stack: StackedModel) -> RunResult:
    """Run k's files, as `trainlab.run.runner` writes them for a run trained alone."""
    exp.model.load_state_dict(run.model(stack, k).state_dict())
    history = run.histories[k]
    for row in history:
        append_jsonl(run_dir / "metrics.jsonl", row)
    steps = history[-1]["step"] if history else 0
    position = Position(epoch=len(history), step=steps, seconds=run.seconds / stack.k,
                        history=history)  # fmt: skip
    result = finish_run(exp, run_dir, position)
    result.verdicts = write_verdicts(run_dir, None, exp.recipe.diagnose.report)
    return result
