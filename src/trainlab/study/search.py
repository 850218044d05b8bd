"""`trainlab search SPEC.yaml`: hyperparameter search on Optuna (Akiba et al. 2019).

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
import subprocess
import sys
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import optuna
from optuna.pruners import BasePruner
from optuna.trial import Trial, TrialState

from trainlab.durable import crash_point, write_text
from trainlab.run.config import RecipeError
from trainlab.run.runner import RunResult, RunStopped, resume_run, train_recipe
from trainlab.study.search_sampler import SlotSampler, grid_points
from trainlab.study.search_spec import Dim, Search, load_search
from trainlab.study.search_state import (
    SURPLUS_ATTR,
    Tally,
    budget_claimed,
    progress_line,
    slot_of,
    tally,
)
from trainlab.study.search_storage import (
    WORKER_ATTR,
    open_storage,
    redact,
    retry_callback,
    worker_identity,
)
from trainlab.train import STOP, Hooks
from trainlab.train.metrics_log import read_jsonl
from trainlab.train.records import EpochRecord

optuna.logging.set_verbosity(optuna.logging.WARNING)
STORAGE_ENV = "TRAINLAB_SEARCH_STORAGE"  # the URL goes to workers here, not on a command line
SPEC_ATTR = "trainlab:spec"


@dataclass(frozen=True)
class Plan:
    """Everything a worker needs: the checked search and where its study lives."""

    search: Search
    study_dir: Path
    study_name: str
    storage_url: str | None
    budget: int
    workers: int = 1
    threads: int | None = None


class TrialFailed(Exception):
    """A trial that could not train (a recipe error, a non-finite loss): FAIL, counted."""


class Surplus(Exception):
    """A trial past the budget: closed at once, never counted."""


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
    if workers < 1:
        raise RecipeError(f"--workers: {workers}; expected a number of processes >= 1")
    if trials is not None and trials < 1:
        raise RecipeError(f"--trials: {trials}; expected a number of trials >= 1")
    name = study or search.spec.name
    where = study_dir or Path(search.base.runs_dir) / f"search-{name}"
    budget = trials or search.spec.trials
    if search.spec.sampler == "grid":
        budget = min(budget, len(_grid(search)))
    plan = Plan(search, where, name, storage, budget, workers, _threads(search, workers))
    _create_study(plan)
    return plan


def _threads(search: Search, workers: int) -> int | None:
    """`cores // workers` torch threads per worker, unless the spec sets train.threads."""
    if "train.threads" in search.spec.overrides or "train.threads" in search.spec.space:
        return None
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, (cores or 1) // workers)


def _grid(search: Search) -> list[dict[str, Any]]:
    base = search.base.model_dump(mode="json")
    return grid_points(search.dims, base, search.spec.seed)


def _create_study(plan: Plan) -> optuna.Study:
    """Create the study, or load it; a study made from another spec is refused."""
    storage = open_storage(plan.storage_url, plan.study_dir)
    spec = plan.search.spec.model_dump_json(by_alias=True)
    study = optuna.create_study(storage=storage, study_name=plan.study_name, load_if_exists=True,
                                direction=plan.search.spec.direction)  # fmt: skip
    recorded = study.user_attrs.get(SPEC_ATTR)
    if recorded is None:
        study.set_user_attr(SPEC_ATTR, spec)
    elif recorded != spec:
        raise RecipeError(f"--study {plan.study_name}: this study was made from another search "
                          "spec; give another --study name")  # fmt: skip
    return study


def load_study(plan: Plan, index: int = 0, pruner: BasePruner | None = None) -> optuna.Study:
    """The study with this worker's sampler and pruner."""
    storage = open_storage(plan.storage_url, plan.study_dir)
    sampler, pruner = _sampler(plan, index), pruner or _pruner(plan)
    return optuna.load_study(
        study_name=plan.study_name, storage=storage, sampler=sampler, pruner=pruner
    )


def _sampler(plan: Plan, index: int) -> optuna.samplers.BaseSampler:
    spec = plan.search.spec
    if spec.sampler == "tpe":  # adaptive: it depends on the order trials end in
        return optuna.samplers.TPESampler(seed=spec.seed * 1000 + index + os.getpid())
    return SlotSampler(spec.seed, _grid(plan.search) if spec.sampler == "grid" else None)


def _pruner(plan: Plan) -> BasePruner:
    """Median stopping (Golovin et al. 2017, Google Vizier) or Hyperband (Li et al. 2018)."""
    kind, epochs = plan.search.spec.pruner, plan.search.base.train.epochs
    if kind == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1)
    if kind == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max(epochs, 1))
    return optuna.pruners.NopPruner()


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


def run_trial(plan: Plan, study: optuna.Study, trial: Trial) -> float:
    """The objective: claim a slot, sample, train (or resume) the run, return the metric."""
    trials = study.get_trials(deepcopy=False)
    slot = slot_of(trials, trial.number)
    if slot >= plan.budget:
        study._storage.set_trial_system_attr(trial._trial_id, SURPLUS_ATTR, True)
        raise Surplus(f"trial {trial.number}: the budget of {plan.budget} is taken")
    study._storage.set_trial_system_attr(trial._trial_id, WORKER_ATTR, worker_identity())
    if isinstance(study.sampler, SlotSampler):
        study.sampler.slots[trial.number] = slot
    params = suggest(plan.search, trial)
    run_dir = plan.study_dir / "trials" / f"trial-{slot:04d}"
    trial.set_user_attr("slot", slot)
    trial.set_user_attr("run_dir", str(run_dir))
    reporter = Reporter(trial, plan.search.spec.objective, run_dir)
    try:
        result = _train(plan, params, slot, run_dir, reporter)
        value = _objective(result, plan.search.spec.objective)
    except TrialFailed as err:
        trial.set_user_attr("error", str(err)[:300])
        raise
    if reporter.pruned_at is not None:
        raise optuna.TrialPruned(f"pruned after epoch {reporter.pruned_at}")
    return value


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


def _train(
    plan: Plan, params: dict[str, Any], slot: int, run_dir: Path, reporter: Reporter
) -> RunResult:
    """Train the trial's run (resume it if a killed worker started it), test withheld."""
    try:
        if (run_dir / "recipe.yaml").is_file():
            return resume_run(run_dir, quiet=True, callbacks=[reporter], test=False)
        extra = [f"name={plan.search.spec.name}-trial{slot:04d}"]
        if plan.threads is not None:
            extra.append(f"train.threads={plan.threads}")
        recipe = plan.search.recipe(params, extra)
        return train_recipe(recipe, quiet=True, run_dir=run_dir, callbacks=[reporter], test=False)
    except RunStopped as err:
        if err.exit_code == 130:
            raise KeyboardInterrupt from None
        raise TrialFailed(str(err)) from None
    except RecipeError as err:
        raise TrialFailed(str(err)) from None
    except Exception as err:  # noqa: BLE001 - one bad configuration must not stop the search
        write_text(run_dir / "error.txt", traceback.format_exc())
        raise TrialFailed(error_text(err)) from None


def _objective(result: RunResult, metric: str) -> float:
    """The metric of the last epoch trained."""
    values = [r.get(metric) for r in result.history if r.get(metric) is not None]
    if not values:
        raise TrialFailed(f"the run measured no {metric}")
    return float(values[-1])


def work(plan: Plan, index: int = 0, pruner: BasePruner | None = None) -> None:
    """One worker: run trials until every slot is claimed and no retry waits."""
    study = load_study(plan, index, pruner)
    while not budget_claimed(_fresh_view(study), plan.budget):
        try:
            study.optimize(lambda t: run_trial(plan, study, t), n_trials=1,
                           catch=(TrialFailed, Surplus))  # fmt: skip
        except KeyboardInterrupt:
            _requeue_interrupted(study)
            raise


def _fresh_view(study: optuna.Study) -> list[Any]:
    """The trials after failing stale ones (their retries queued)."""
    from optuna.storages import fail_stale_trials

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        fail_stale_trials(study)
    return study.get_trials(deepcopy=False)


def _requeue_interrupted(study: optuna.Study) -> None:
    """Ctrl-C: queue this worker's interrupted trial again, so a rerun resumes it."""
    mine = worker_identity()
    for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,)):
        if t.system_attrs.get(WORKER_ATTR) == mine and not t.system_attrs.get("requeued"):
            study._storage.set_trial_system_attr(t._trial_id, "requeued", True)
            retry_callback(max_retry=10**9)(study, t)  # Ctrl-C: not a dying worker


def run_search(
    plan: Plan,
    say: Callable[[str], None] = print,
    pruner: BasePruner | None = None,
) -> Tally:
    """Run the workers (in this process when there is one), in rounds while a dead worker's
    trial waits to be retried; return the final tally."""
    study = load_study(plan)
    before = None
    for _ in range(1 + 3):  # a round per retry wave; a study making no progress stops
        if budget_claimed(_fresh_view(study), plan.budget):
            break
        if plan.workers == 1:
            work(plan, 0, pruner)
        else:
            _run_workers(plan, say, study)
        now = tally(_fresh_view(study), plan.budget)
        if now == before:
            break
        before = now
    final = tally(_fresh_view(study), plan.budget)
    say(progress_line(final, best_text(study, plan)))
    return final


def best_text(study: optuna.Study, plan: Plan) -> str:
    """ "best val_acc 0.8123 (trial 7)", or "no trial completed yet"."""
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not done:
        return "no trial completed yet"
    best = study.best_trial
    return f"best {plan.search.spec.objective} {best.value:.4f} (trial {best.number})"


def _run_workers(plan: Plan, say: Callable[[str], None], study: optuna.Study) -> None:
    """Start `plan.workers` worker processes and print the progress line as it changes."""
    env = {**os.environ}
    if plan.storage_url is not None:
        env[STORAGE_ENV] = plan.storage_url
    procs = [subprocess.Popen(worker_command(plan, i), env=env)  # noqa: S603 - fixed argv
             for i in range(plan.workers)]  # fmt: skip
    shown = ""
    while any(p.poll() is None for p in procs):
        line = progress_line(tally(study.get_trials(deepcopy=False), plan.budget),
                             best_text(study, plan))  # fmt: skip
        if line != shown:
            say(line)
            shown = line
        time.sleep(1.0)  # display only: the study's state lives in the storage
    for i, p in enumerate(procs):
        if p.returncode != 0:
            how = f"signal {-p.returncode}" if p.returncode < 0 else f"exit {p.returncode}"
            say(f"worker {i} stopped ({how}); its trial is retried")


def worker_command(plan: Plan, index: int) -> list[str]:
    """The command line of worker `index` (the storage URL goes in the environment)."""
    args = [sys.executable, "-m", "trainlab.study.search_worker", str(plan.search.path),
            "--study", plan.study_name, "--study-dir", str(plan.study_dir),
            "--budget", str(plan.budget), "--index", str(index)]  # fmt: skip
    if plan.threads is not None:
        args += ["--threads", str(plan.threads)]
    return args


def worker_plan(args: Any) -> Plan:
    """The plan of a worker process, from `worker_command`'s arguments."""
    search = load_search(Path(args.spec))
    storage = os.environ.get(STORAGE_ENV)
    return replace(Plan(search, Path(args.study_dir), args.study, storage, args.budget),
                   threads=args.threads)  # fmt: skip


def describe_plan(plan: Plan) -> str:
    """One line: the study, its storage, the workers and threads."""
    where = redact(plan.storage_url) if plan.storage_url else f"{plan.study_dir}/study.journal"
    threads = "the recipe's" if plan.threads is None else str(plan.threads)
    spec = plan.search.spec
    return (f"search {plan.study_name}: {plan.budget} trials, {spec.sampler} sampler, "
            f"{plan.workers} worker(s) x {threads} thread(s); storage {where}")  # fmt: skip


def error_text(err: BaseException) -> str:
    """The last line of a traceback, for a failed trial's record."""
    return traceback.format_exception_only(type(err), err)[-1].strip()
