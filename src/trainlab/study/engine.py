"""The one engine of every many-run command: `search`, `compare` and `cv` are studies on
Optuna (Akiba et al. 2019) whose *slots* are their units of work.

A study has a budget of slots (`search_state`). A `Task` says what one slot trains: a search
samples hyperparameters and trains one run; a comparison trains one job of its grid of
variants x seeds (a stack of runs, or one run); cross-validation trains one fold. Workers are
processes that share the study through its storage (`search_storage`: a journal file in the
study directory by default, or PostgreSQL); each trains with `cores // workers` torch
threads unless its task fixes them. A worker killed mid-slot is noticed and its trial
re-queued; the retry resumes the slot's run directories from their last checkpoints.
Running the same command again on the same study continues it: only slots not yet ended run.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import traceback
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import optuna
from optuna.pruners import BasePruner
from optuna.samplers import BaseSampler
from optuna.trial import Trial, TrialState

from trainlab.durable import write_text
from trainlab.run.config import Recipe, RecipeError
from trainlab.run.runner import RunResult, RunStopped, resume_run, train_recipe
from trainlab.study.search_sampler import SlotSampler
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
from trainlab.train import Callback

optuna.logging.set_verbosity(optuna.logging.ERROR)  # a failed slot's error is recorded instead
STORAGE_ENV = "TRAINLAB_SEARCH_STORAGE"  # the URL goes to workers here, not on a command line
SPEC_ATTR = "trainlab:spec"


class TrialFailed(Exception):
    """A slot that could not train (a recipe error, a non-finite loss): FAIL, counted."""


class Surplus(Exception):
    """A trial past the budget: closed at once, never counted."""


class Task(Protocol):
    """What a study's slots train (`SearchTask`; `JobsTask` for comparisons, ensembles and cv)."""

    kind: str  # the worker's first argument: "search", "compare" or "cv"
    direction: str  # "maximize" or "minimize", of the value `run` returns

    def fingerprint(self) -> str:
        """A text that changes when the work changes: a study made from another is refused."""
        ...

    def worker_args(self) -> list[str]:
        """The arguments a worker process rebuilds this task from (`trainlab.study.worker`)."""
        ...

    def sampler(self, index: int) -> BaseSampler:
        """The sampler of worker `index`."""
        ...

    def pruner(self) -> BasePruner:
        """The pruner of every worker."""
        ...

    def run(self, plan: Plan, trial: Trial, slot: int) -> float:
        """Train slot `slot` (or resume it) and return its value; TrialFailed if it cannot."""
        ...

    def best_text(self, study: optuna.Study) -> str:
        """The end of the progress line: the best so far, or what is left to say."""
        ...


@dataclass(frozen=True)
class Plan:
    """Everything a worker needs: the task and where its study lives."""

    task: Any  # a Task
    study_dir: Path
    study_name: str
    storage_url: str | None
    budget: int
    workers: int = 1
    threads: int | None = None  # torch threads per run; None: the recipes' own


def check_counts(workers: int, trials: int | None = None) -> None:
    """--workers and --trials, checked before any work."""
    if workers < 1:
        raise RecipeError(f"--workers: {workers}; expected a number of processes >= 1")
    if trials is not None and trials < 1:
        raise RecipeError(f"--trials: {trials}; expected a number of trials >= 1")


def threads_per_worker(workers: int) -> int:
    """`cores // workers`, at least 1: N workers x threads fill the machine's cores."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, (cores or 1) // workers)


def create_study(plan: Plan) -> optuna.Study:
    """Create the study, or load it; a study made for other work is refused."""
    storage = open_storage(plan.storage_url, plan.study_dir)
    study = optuna.create_study(storage=storage, study_name=plan.study_name, load_if_exists=True,
                                direction=plan.task.direction)  # fmt: skip
    recorded, mine = study.user_attrs.get(SPEC_ATTR), plan.task.fingerprint()
    if recorded is None:
        study.set_user_attr(SPEC_ATTR, mine)
    elif recorded != mine:
        raise RecipeError(f"--study {plan.study_name}: this study was made from another "
                          f"{plan.task.kind} spec; give another --study name")  # fmt: skip
    return study


def load_study(plan: Plan, index: int = 0, pruner: BasePruner | None = None) -> optuna.Study:
    """The study with worker `index`'s sampler and pruner."""
    storage = open_storage(plan.storage_url, plan.study_dir)
    return optuna.load_study(study_name=plan.study_name, storage=storage,
                             sampler=plan.task.sampler(index),
                             pruner=pruner or plan.task.pruner())  # fmt: skip


def run_trial(plan: Plan, study: optuna.Study, trial: Trial) -> float:
    """The objective: claim a slot (or close a surplus trial), then let the task train it."""
    slot = slot_of(study.get_trials(deepcopy=False), trial.number)
    if slot >= plan.budget:
        study._storage.set_trial_system_attr(trial._trial_id, SURPLUS_ATTR, True)
        raise Surplus(f"trial {trial.number}: the budget of {plan.budget} is taken")
    study._storage.set_trial_system_attr(trial._trial_id, WORKER_ATTR, worker_identity())
    if isinstance(study.sampler, SlotSampler):
        study.sampler.slots[trial.number] = slot
    trial.set_user_attr("slot", slot)
    try:
        return plan.task.run(plan, trial, slot)
    except TrialFailed as err:
        trial.set_user_attr("error", str(err)[:300])
        raise


@contextmanager
def run_errors_fail_the_trial() -> Iterator[None]:
    """A run's RecipeError or RunStopped (a non-finite loss, a bad resume) as TrialFailed; a
    Ctrl-C (RunStopped with exit code 130) as KeyboardInterrupt."""
    try:
        yield
    except RunStopped as err:
        if err.exit_code == 130:
            raise KeyboardInterrupt from None
        raise TrialFailed(str(err)) from None
    except RecipeError as err:
        raise TrialFailed(str(err)) from None


def train_or_resume(
    recipe: Recipe, run_dir: Path, callbacks: Sequence[Callback] = (), test: bool = True
) -> RunResult:
    """Train `recipe` in `run_dir`, resume it there (a killed worker started it), or read back
    its recorded result; a run that cannot train is TrialFailed, Ctrl-C KeyboardInterrupt."""
    try:
        with run_errors_fail_the_trial():
            if (run_dir / "recipe.yaml").is_file():
                return resume_run(run_dir, quiet=True, callbacks=callbacks, test=test)
            return train_recipe(recipe, quiet=True, run_dir=run_dir, callbacks=callbacks,
                                test=test)  # fmt: skip
    except TrialFailed:
        raise
    except Exception as err:  # noqa: BLE001 - one bad configuration must not stop the study
        run_dir.mkdir(parents=True, exist_ok=True)
        write_text(run_dir / "error.txt", traceback.format_exc())
        raise TrialFailed(error_text(err)) from None


def first_failure(plan: Plan) -> str | None:
    """The recorded error of the first slot that ended FAIL, or None."""
    for t in load_study(plan).get_trials(deepcopy=False, states=(TrialState.FAIL,)):
        if "error" in t.user_attrs:
            job = t.user_attrs.get("job")
            return f"{job}: {t.user_attrs['error']}" if job else t.user_attrs["error"]
    return None


def with_threads(recipe: Recipe, threads: int | None) -> Recipe:
    """`recipe` trained with `threads` torch threads (None: as it says)."""
    if threads is None:
        return recipe
    train = recipe.train.model_copy(update={"threads": threads})
    return recipe.model_copy(update={"train": train})


def work(
    plan: Plan,
    index: int = 0,
    pruner: BasePruner | None = None,
    say: Callable[[str], None] | None = None,
) -> None:
    """One worker: run trials until every slot is claimed and no retry waits; `say` gets the
    progress line after each trial (the worker in the command's own process)."""
    study = load_study(plan, index, pruner)
    shown = [] if say is None else [lambda s, _: say(_progress(plan, s))]
    while not budget_claimed(fresh_view(study), plan.budget):
        try:
            study.optimize(lambda t: run_trial(plan, study, t), n_trials=1,
                           catch=(TrialFailed, Surplus), callbacks=shown)  # fmt: skip
        except KeyboardInterrupt:
            _requeue_interrupted(study)
            raise


def fresh_view(study: optuna.Study) -> list[Any]:
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


def run_study(
    plan: Plan, say: Callable[[str], None] = print, pruner: BasePruner | None = None
) -> Tally:
    """Run the workers (in this process when there is one), in rounds while a dead worker's
    trial waits to be retried; return the final tally."""
    study = load_study(plan)
    before = None
    for _ in range(1 + 3):  # a round per retry wave; a study making no progress stops
        if budget_claimed(fresh_view(study), plan.budget):
            break
        if plan.workers == 1:
            work(plan, 0, pruner, say)
        else:
            _run_workers(plan, say, study)
        now = tally(fresh_view(study), plan.budget)
        if now == before:
            break
        before = now
    final = tally(fresh_view(study), plan.budget)
    say(progress_line(final, plan.task.best_text(study)))
    return final


def run_to_end(
    task: Any,
    study_dir: Path,
    name: str,
    budget: int,
    *,
    workers: int = 1,
    storage: str | None = None,
    say: Callable[[str], None] = print,
    resume_hint: str,
) -> Plan:
    """Create (or continue) the study of `task`'s `budget` slots and run it on `workers`
    processes (`cores // workers` threads each, none given with one); one RecipeError line
    naming the first failed slot when not every slot completed. The plan, for reading back."""
    threads = None if workers == 1 else threads_per_worker(workers)
    plan = Plan(task, study_dir, name, storage, budget, workers, threads)
    create_study(plan)
    tally = run_study(plan, say)
    if tally.complete < tally.budget:
        why = first_failure(plan) or f"{tally.budget - tally.complete} of {budget} did not finish"
        raise RecipeError(f"{task.kind} {name}: {why} ({resume_hint})")
    return plan


def _progress(plan: Plan, study: optuna.Study) -> str:
    """ "12/40 done (3 pruned, 1 failed), 2 running; best val_acc 0.8123 (trial 7)"."""
    return progress_line(tally(study.get_trials(deepcopy=False), plan.budget),
                         plan.task.best_text(study))  # fmt: skip


def _run_workers(plan: Plan, say: Callable[[str], None], study: optuna.Study) -> None:
    """Start `plan.workers` worker processes and print the progress line as it changes."""
    env = {**os.environ}
    if plan.storage_url is not None:
        env[STORAGE_ENV] = plan.storage_url
    procs = [subprocess.Popen(worker_command(plan, i), env=env)  # noqa: S603 - fixed argv
             for i in range(plan.workers)]  # fmt: skip
    shown = ""
    while any(p.poll() is None for p in procs):
        line = _progress(plan, study)
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
    args = [sys.executable, "-m", "trainlab.study.worker", *plan.task.worker_args(),
            "--study", plan.study_name, "--study-dir", str(plan.study_dir),
            "--budget", str(plan.budget), "--index", str(index)]  # fmt: skip
    if plan.threads is not None:
        args += ["--threads", str(plan.threads)]
    return args


def describe_plan(plan: Plan, what: str) -> str:
    """One line: the study, its work, the workers and threads, the storage."""
    where = redact(plan.storage_url) if plan.storage_url else f"{plan.study_dir}/study.journal"
    threads = "the recipe's" if plan.threads is None else str(plan.threads)
    return (f"{plan.task.kind} {plan.study_name}: {what}, {plan.workers} worker(s) x {threads} "
            f"thread(s); storage {where}")  # fmt: skip


def error_text(err: BaseException) -> str:
    """The last line of a traceback, for a failed trial's record."""
    return traceback.format_exception_only(type(err), err)[-1].strip()
