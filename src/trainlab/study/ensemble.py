"""Train an ensemble from a recipe's `ensemble` section and measure it against its members
(seed 000, "Model Ensembles": train several models, average or vote at test time).

* independent: M runs with seeds seed..seed+M−1 on the same data (the data's seed does not
  follow the model's, so every member sees the same training/validation split).
* bagging (Breiman 1996): the same, each member trained on its own bootstrap resample.
* snapshot (Huang et al. 2017): one run with M cosine cycles, a snapshot at each cycle's end.

Layout: independent/bagging write the ensemble recipe at the top of the run directory and
one ordinary run per member in `members/<k>/` (each resumable); a snapshot ensemble is one
ordinary run. Both add `ensemble.json` (members' and ensemble's test accuracy)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from safetensors.torch import load_file
from torch import nn

from trainlab.data import TensorSplit
from trainlab.durable import read_json, write_json, write_text
from trainlab.run.config import Recipe, RecipeError, dump_recipe, load_recipe, validate_recipe
from trainlab.run.evaluation import FINAL_WEIGHTS
from trainlab.run.experiment import build
from trainlab.run.runner import new_run_dir, resume_run, train_recipe
from trainlab.run.stacked import recipe_refusal
from trainlab.study.compare import Job, JobsTask, preflight
from trainlab.study.engine import check_counts, run_to_end
from trainlab.train.ensembles import combine, member_probabilities

ENSEMBLE_FILE = "ensemble.json"


@dataclass
class EnsembleResult:
    """Each member's and the ensemble's test accuracy (and the NLL of the mean probabilities)."""

    run_dir: str
    method: str
    combine: str
    members: list[dict[str, Any]]  # {"name", "test_acc"}, plus "run_dir" or "step"
    test_acc: float
    test_nll: float
    mean_member_acc: float

    def summary(self) -> dict[str, Any]:
        return asdict(self)


def member_recipe(recipe: Recipe, k: int) -> Recipe:
    """Member k of an independent or bagging ensemble: seed + k, the ensemble's data seed,
    a bootstrap resample for bagging, no ensemble section."""
    assert recipe.ensemble is not None
    raw = recipe.model_dump(mode="json")
    raw.update(name=f"{recipe.name}-member{k}", seed=recipe.seed + k, ensemble=None)
    raw["data"].update(bootstrap=recipe.ensemble.method == "bagging")  # data.seed is shared
    return validate_recipe(raw)


def run_ensemble(
    recipe: Recipe,
    run_dir: Path | None = None,
    *,
    quiet: bool = False,
    console: Console | None = None,
    workers: int = 1,
) -> EnsembleResult:
    """Train (or, given the `run_dir` of an unfinished ensemble, resume) the recipe's ensemble;
    write ensemble.json and return it. Independent and bagging members are a study on the
    engine (`trainlab.study.engine`), on `workers` processes."""
    ens = recipe.ensemble
    if ens is None:
        raise RecipeError("recipe field ensemble: missing (this recipe trains one model)")
    if recipe.multitask is not None:
        raise RecipeError("recipe field ensemble: not available with multitask (one task only)")
    recorded = None if run_dir is None else recorded_ensemble(run_dir)
    if recorded is not None:  # resuming is idempotent: a finished ensemble is not redone
        return recorded
    console = console or Console(stderr=True, quiet=quiet)
    if ens.method == "snapshot":
        result = resume_run(run_dir, quiet=quiet, console=console) if run_dir else (
            train_recipe(recipe, quiet=quiet, console=console))  # fmt: skip
        if result.recorded:  # killed between result.json and ensemble.json
            raise RecipeError(
                f"--resume {run_dir}: the run finished but its snapshots, kept in memory, were "
                "lost before ensemble.json was written; expected a new run of the recipe"
            )
        assert result.experiment is not None and result.experiment.snapshots is not None
        snaps = result.experiment.snapshots
        names = [{"name": f"snapshot@{step}", "step": step} for step in snaps.steps]
        return _measure(recipe, result.run_dir, names, snaps.models, result.experiment.test)
    preflight({"0": [member_recipe(recipe, 0)]}, "member")  # fails before any member trains
    check_counts(workers)
    run_dir = run_dir or new_run_dir(recipe)
    write_text(run_dir / "recipe.yaml", dump_recipe(recipe))
    _train_members(recipe, run_dir, console, workers)
    models, test, names = [], None, []
    for k in range(ens.members):  # each member read back from its directory
        model, split, member_dir = _train_member(member_recipe(recipe, k), run_dir / "members" /
                                                 str(k), quiet, console)  # fmt: skip
        if test is not None and not torch.equal(test.y, split.y):
            raise RecipeError(f"ensemble: member {k} has a different test split")
        models.append(model)
        test = split
        names.append({"name": f"member{k}", "run_dir": str(member_dir)})
    assert test is not None
    return _measure(recipe, run_dir, names, models, test)


def member_jobs(recipe: Recipe, say: Callable[[str], None]) -> list[Job]:
    """All members as one stack (`trainlab.run.stacked`) when the recipe allows it, else one
    job per member (after one `say` line naming why)."""
    assert recipe.ensemble is not None
    count = recipe.ensemble.members
    members = [member_recipe(recipe, k) for k in range(count)]
    subdirs = tuple(f"members/{k}" for k in range(count))
    why = recipe_refusal(members) if count > 1 else "one member"
    if why is None:
        return [Job("ensemble members", tuple(members), subdirs)]
    say(f"ensemble members trained one by one: {why}")
    return [Job(f"member {k + 1}/{count}", (m,), (d,))
            for k, (m, d) in enumerate(zip(members, subdirs, strict=True))]  # fmt: skip


def ensemble_task(run_dir: Path, recipe: Recipe, say: Callable[[str], None]) -> JobsTask:
    """An ensemble's study, in its run directory: slot k trains job k of `member_jobs`."""
    return JobsTask("ensemble", (str(run_dir),), member_jobs(recipe, say), dump_recipe(recipe))


def ensemble_from_args(args: list[str]) -> JobsTask:
    """The task of a worker process: `ensemble RUN_DIR` (its recipe.yaml is the ensemble's)."""
    run_dir = Path(args[0])
    return ensemble_task(run_dir, load_recipe(run_dir / "recipe.yaml"), lambda line: None)


def _train_members(recipe: Recipe, run_dir: Path, console: Console, workers: int) -> None:
    """Train (or resume) the members as a study on the engine (`trainlab.study.engine`)."""
    say = lambda line: console.print(line, markup=False, soft_wrap=True)  # noqa: E731
    task = ensemble_task(run_dir, recipe, say)
    run_to_end(task, run_dir, f"ensemble-{recipe.name}", len(task.jobs), workers=workers,
               say=say, resume_hint=f"trainlab train --resume {run_dir} continues it")  # fmt: skip


def _train_member(
    recipe: Recipe, member_dir: Path, quiet: bool, console: Console
) -> tuple[nn.Module, TensorSplit, Path]:
    """The member's final model and test split: trained now, resumed, or (finished before)
    rebuilt and loaded from its model.safetensors."""
    if (member_dir / "result.json").is_file():
        exp = build(load_recipe(member_dir / "recipe.yaml"))
        exp.model.load_state_dict(load_file(str(member_dir / FINAL_WEIGHTS)))
        return exp.model, exp.test, member_dir
    if (member_dir / "recipe.yaml").is_file():
        result = resume_run(member_dir, quiet=quiet, console=console)
    else:
        result = train_recipe(recipe, quiet=quiet, console=console, run_dir=member_dir)
    assert result.experiment is not None
    return result.experiment.model, result.experiment.test, member_dir


def _measure(
    recipe: Recipe,
    run_dir: Path,
    members: list[dict[str, Any]],
    models: list[nn.Module],
    test: TensorSplit,
) -> EnsembleResult:
    """Members' and ensemble's test accuracy from the members' softmax outputs; ensemble.json."""
    assert recipe.ensemble is not None
    probs = member_probabilities(models, test.x, recipe.data.eval_batch_size)  # (M, N, C)
    for info, p in zip(members, probs, strict=True):
        info["test_acc"] = _accuracy(p.argmax(dim=1), test.y)
    pred = combine(probs, recipe.ensemble.combine)  # type: ignore[arg-type]
    mean = probs.mean(dim=0)
    nll = -mean.gather(1, test.y[:, None]).clamp_min(1e-12).log().mean()
    result = EnsembleResult(
        str(run_dir), recipe.ensemble.method, recipe.ensemble.combine, members,
        _accuracy(pred, test.y), float(nll),
        sum(m["test_acc"] for m in members) / len(members),
    )  # fmt: skip
    write_json(run_dir / ENSEMBLE_FILE, result.summary(), indent=2)
    return result


def _accuracy(pred: torch.Tensor, y: torch.Tensor) -> float:
    return int((pred == y).sum()) / max(len(y), 1)  # as `evaluate` counts it


def recorded_ensemble(run_dir: Path) -> EnsembleResult | None:
    """The result a finished ensemble wrote to ensemble.json (None if missing or damaged)."""
    data = read_json(run_dir / ENSEMBLE_FILE)
    try:
        return EnsembleResult(**data) if isinstance(data, dict) else None
    except TypeError:
        return None


def ensemble_recipe_at(run_dir: Path) -> Recipe | None:
    """The recipe of the run directory if it trains an ensemble, else None."""
    path = run_dir / "recipe.yaml"
    if not path.is_file():
        return None
    recipe = load_recipe(path)
    return recipe if recipe.ensemble is not None else None


def describe_ensemble(result: EnsembleResult) -> str:
    """Lines for the terminal: each member's test accuracy, then the ensemble's."""
    lines = [f"{m['name']:<16} test accuracy {100 * m['test_acc']:.2f}%" for m in result.members]
    best = max(m["test_acc"] for m in result.members)
    lines.append(
        f"ensemble of {len(result.members)} ({result.method}, {result.combine}): test accuracy "
        f"{100 * result.test_acc:.2f}%  (members: mean {100 * result.mean_member_acc:.2f}%, "
        f"best {100 * best:.2f}%)  {result.run_dir}"
    )
    return "\n".join(lines)
