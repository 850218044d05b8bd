"""`trainlab search SPEC.yaml`: hyperparameter search, a study on the engine (`engine`).

Each trial is a normal run directory, `STUDY_DIR/trials/trial-NNNN` (NNNN: its slot, see
`search_state`), trained by the runner with the sampled overrides and the test split
withheld; its validation metric is reported to Optuna after every epoch, and a pruner may stop
it (the run then ends as a shorter run; the trial is PRUNED). Workers are processes that share
the study through its storage (`search_storage`); each trains with `cores // workers` torch
threads unless the spec sets `train.threads`. A worker killed mid-trial is noticed and its
trial re-queued with the same parameters; the retry resumes the run directory from its last
checkpoint. Running the same command again continues the study: only the slots not yet ended
are run. When every slot has ended the study writes trials.csv, best.yaml and scores the best
trial's saved model on the test split, once (`search_report`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.pruners import BasePruner
from optuna.samplers import BaseSampler
from optuna.trial import Trial, TrialState

from trainlab.durable import crash_point
from trainlab.run.config import RecipeError
from trainlab.run.runner import RunResult
from trainlab.study.engine import (
    Plan,
    TrialFailed,
    check_counts,
    create_study,
    describe_plan,
    load_study,
    run_study,
    threads_per_worker,
    train_or_resume,
)
from trainlab.study.search_sampler import SlotSampler, grid_points
from trainlab.study.search_spec import Dim, Search, load_search
from trainlab.study.search_state import Tally
from trainlab.train import STOP, Hooks
from trainlab.train.metrics_log import read_jsonl
from trainlab.train.records import EpochRecord

__all__ = ["SearchTask", "describe_search", "load_study", "plan_search", "run_search"]


@dataclass(frozen=True)
class SearchTask:
    """A search's slots: each samples a point of the space and trains one run, test withheld."""

    search: Search
    kind = "search"

    @property
    def direction(self) -> str:
        return self.search.spec.direction

    def fingerprint(self) -> str:
        return self.search.spec.model_dump_json(by_alias=True)

    def worker_args(self) -> list[str]:
        return ["search", str(self.search.path)]

    def sampler(self, index: int) -> BaseSampler:
        spec = self.search.spec
        if spec.sampler == "tpe":  # adaptive: it depends on the order trials end in
            return optuna.samplers.TPESampler(seed=spec.seed * 1000 + index + os.getpid())
        return SlotSampler(spec.seed, _grid(self.search) if spec.sampler == "grid" else None)

    def pruner(self) -> BasePruner:
        """Median stopping (Golovin et al. 2017, Google Vizier) or Hyperband (Li et al. 2018)."""
        kind, epochs = self.search.spec.pruner, self.search.base.train.epochs
        if kind == "median":
            return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1)
        if kind == "hyperband":
            return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max(epochs, 1))
        return optuna.pruners.NopPruner()

    def run(self, plan: Plan, trial: Trial, slot: int) -> float:
        """Sample, train (or resume) the slot's run, return its objective."""
        params = suggest(self.search, trial)
        run_dir = plan.study_dir / "trials" / f"trial-{slot:04d}"
        trial.set_user_attr("run_dir", str(run_dir))
        reporter = Reporter(trial, self.search.spec.objective, run_dir)
        extra = [f"name={self.search.spec.name}-trial{slot:04d}"]
        if plan.threads is not None:
            extra.append(f"train.threads={plan.threads}")
        try:
            recipe = self.search.recipe(params, extra)
        except RecipeError as err:
            raise TrialFailed(str(err)) from None
        result = train_or_resume(recipe, run_dir, [reporter], test=False)
        value = _objective(result, self.search.spec.objective)
        if reporter.pruned_at is not None:
            raise optuna.TrialPruned(f"pruned after epoch {reporter.pruned_at}")
        return value

    def best_text(self, study: optuna.Study) -> str:
        """ "best val_acc 0.8123 (trial 7)", or "no trial completed yet"."""
        done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if not done:
            return "no trial completed yet"
        best = study.best_trial
        return f"best {self.search.spec.objective} {best.value:.4f} (trial {best.number})"


def plan_search(
    spec_path: Path,
    study: str | None = None,
    storage: str | None = None,
    workers: int = 1,
    trials: int | None = None,
    study_dir: Path | None = None,
) -> Plan:
    """Check the spec and the options, open the storage and create (or find) the study; every
    problem is one RecipeError line, before any trial starts."""
    search = load_search(spec_path)
    check_counts(workers, trials)
    name = study or search.spec.name
    where = study_dir or Path(search.base.runs_dir) / f"search-{name}"
    budget = trials or search.spec.trials
    if search.spec.sampler == "grid":
        budget = min(budget, len(_grid(search)))
    plan = Plan(SearchTask(search), where, name, storage, budget, workers,
                _threads(search, workers))  # fmt: skip
    create_study(plan)
    return plan


def run_search(plan: Plan, say: Any = print, pruner: BasePruner | None = None) -> Tally:
    """Run the search's workers (see `engine.run_study`); the final tally."""
    return run_study(plan, say, pruner)


def describe_search(plan: Plan) -> str:
    """One line: the study, its trials and sampler, workers and threads, storage."""
    spec = plan.task.search.spec
    return describe_plan(plan, f"{plan.budget} trials, {spec.sampler} sampler")


def _threads(search: Search, workers: int) -> int | None:
    """`cores // workers` torch threads per worker, unless the spec sets train.threads."""
    if "train.threads" in search.spec.overrides or "train.threads" in search.spec.space:
        return None
    return threads_per_worker(workers)


def _grid(search: Search) -> list[dict[str, Any]]:
    base = search.base.model_dump(mode="json")
    return grid_points(search.dims, base, search.spec.seed)


class Reporter(Hooks):
    """Report the objective after each epoch; STOP the run when the pruner says so."""

    def __init__(self, trial: Trial, metric: str, run_dir: Path) -> None:
        self.trial, self.metric, self.run_dir = trial, metric, run_dir
        self.pruned_at: int | None = None

    def on_fit_start(self, total_steps: int, start_step: int) -> None:
        if start_step > 0:  # a resumed retry: report the epochs its checkpoint kept
            for row in read_jsonl(self.run_dir / "metrics.jsonl"):
                if row.get("kind") == "epoch" and row.get(self.metric) is not None:
                    self.trial.report(row[self.metric], row["epoch"])

    def on_epoch_end(self, record: EpochRecord) -> Any:
        crash_point(f"search-trial{self.trial.number}:epoch")  # test hook: kill mid-trial
        value = getattr(record, self.metric)
        if value is None:
            return None
        self.trial.report(value, record.epoch)
        if self.trial.should_prune():
            self.pruned_at = record.epoch
            return STOP
        return None


def suggest(search: Search, trial: Trial) -> dict[str, Any]:
    """Each dimension whose condition holds, suggested in the spec's order."""
    base, values = search.base.model_dump(mode="json"), {}
    for dim in search.dims:
        if dim.active(values, base):
            values[dim.field] = _suggest_one(trial, dim)
    return values


def _suggest_one(trial: Trial, dim: Dim) -> Any:
    if dim.kind == "float":
        return trial.suggest_float(dim.field, dim.low, dim.high, log=dim.log)
    if dim.kind == "int":
        return trial.suggest_int(dim.field, int(dim.low), int(dim.high), log=dim.log)
    return trial.suggest_categorical(dim.field, dim.distribution().choices)


def _objective(result: RunResult, metric: str) -> float:
    """The metric of the last epoch trained."""
    values = [r.get(metric) for r in result.history if r.get(metric) is not None]
    if not values:
        raise TrialFailed(f"the run measured no {metric}")
    return float(values[-1])


def search_from_args(args: list[str]) -> SearchTask:
    """The task of a worker process: `search SPEC` (see `SearchTask.worker_args`)."""
    return SearchTask(load_search(Path(args[0])))
