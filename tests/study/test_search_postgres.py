"""`trainlab search --storage postgresql://...` on a real PostgreSQL server (`conftest.py`):
two workers with one SIGKILLed mid-trial lose and double-count nothing, a study whose only
worker was killed is continued by the same command, and which running trials are stale.

Staleness never races the clock here: a trial whose worker ran on this machine is stale when
that process is gone and never while it runs (`search_storage`), so the killed worker's trial
is retried at once and a test process paused for longer than the heartbeat grace period is
not mistaken for a dead one. The heartbeat's own verdict (workers on other machines) is
tested by back-dating the heartbeat row instead of sleeping.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import optuna
import pytest
import sqlalchemy
from optuna.storages import fail_stale_trials
from optuna.trial import TrialState, create_trial
from search_checks import assert_nothing_lost_or_doubled, write_spec

from trainlab.study.search import load_study, plan_search
from trainlab.study.search_state import slots
from trainlab.study.search_storage import (
    BEAT_ATTR,
    GRACE,
    WORKER_ATTR,
    HeartbeatJournal,
    _start_time,
    open_storage,
    worker_identity,
)

CRASH = "search-trial1:epoch#1"  # the worker running trial 1, at the end of its first epoch


def _search(spec: Path, url: str, study: str, study_dir: Path, *extra: str,
            crash: str = "") -> subprocess.CompletedProcess[str]:  # fmt: skip
    """`trainlab search` in a subprocess (so the crash hook can SIGKILL it)."""
    env = {**os.environ, "TRAINLAB_CRASH_AT": crash}
    env.pop("TRAINLAB_CRASH_LOG", None)
    args = [sys.executable, "-m", "trainlab.cli", "search", str(spec), "--storage", url,
            "--study", study, "--study-dir", str(study_dir), *extra]  # fmt: skip
    return subprocess.run(args, cwd=study_dir.parent, env=env, capture_output=True, text=True,
                          timeout=900, check=False)  # fmt: skip


def _trials(spec: Path, url: str, study: str, study_dir: Path) -> list[optuna.trial.FrozenTrial]:
    return load_study(plan_search(spec, study, url, study_dir=study_dir)).get_trials()


def test_killed_worker_on_postgres_loses_and_doubles_nothing(tmp_path, postgres_url):
    spec, where = write_spec(tmp_path, trials=4), tmp_path / "pg-two"
    done = _search(spec, postgres_url, "pg-kill", where, "--workers", "2", crash=CRASH)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "stopped (signal 9)" in done.stderr
    assert "trainlab-test-pw" not in done.stdout + done.stderr  # the password never shown
    assert "postgres:***@127.0.0.1" in done.stderr
    trials = _trials(spec, postgres_url, "pg-kill", where)
    assert_nothing_lost_or_doubled(trials, 4, killed=1)
    assert (where / "best.yaml").is_file() and (where / "trials.csv").is_file()


def test_rerun_continues_a_killed_postgres_study_and_then_adds_nothing(tmp_path, postgres_url):
    """The only worker (the command itself) is killed in trial 1: trial 0 stays COMPLETE and
    trial 1 RUNNING in the database. The same command fails trial 1 (its process is gone),
    retries it, runs trial 2 and scores the best; a third run finds nothing to do."""
    spec, where = write_spec(tmp_path, trials=3), tmp_path / "pg-one"
    killed = _search(spec, postgres_url, "pg-continue", where, crash=CRASH)
    assert killed.returncode == -9, killed.stderr[-3000:]
    before = {t.number: t.state for t in _trials(spec, postgres_url, "pg-continue", where)}
    assert before == {0: TrialState.COMPLETE, 1: TrialState.RUNNING}

    again = _search(spec, postgres_url, "pg-continue", where)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "best of 3 configurations" in again.stdout
    trials = _trials(spec, postgres_url, "pg-continue", where)
    assert_nothing_lost_or_doubled(trials, 3, killed=1)
    assert [t.number for t in slots(trials, 3)[0]] == [0]  # trial 0 kept, not run again

    last = _search(spec, postgres_url, "pg-continue", where)
    assert last.returncode == 0, last.stderr[-3000:]
    assert "best of 3 configurations" in last.stdout
    after = _trials(spec, postgres_url, "pg-continue", where)
    assert [(t.number, t.state) for t in after] == [(t.number, t.state) for t in trials]


def _running(study: optuna.Study, worker: dict | None) -> int:
    """A RUNNING trial recorded as run by `worker` (None: no record), with a fresh heartbeat;
    its storage id."""
    storage = study._storage
    trial_id = storage.create_new_trial(study._study_id, create_trial(state=TrialState.RUNNING))
    if worker is not None:
        storage.set_trial_system_attr(trial_id, WORKER_ATTR, worker)
    storage.record_heartbeat(trial_id)
    return trial_id


def _exited_worker() -> dict:
    """The identity of a process that has exited (read while it was a zombie: not reused)."""
    proc = subprocess.Popen(["true"])  # noqa: S607 - coreutils
    ident = {**worker_identity(), "pid": proc.pid, "started": _start_time(proc.pid)}
    proc.wait()
    return ident


def _backdate_heartbeats(study: optuna.Study, storage: Any, seconds: int) -> None:
    """Every running trial's last heartbeat moved `seconds` into the past (`storage`: the
    study's, unwrapped)."""
    if isinstance(storage, HeartbeatJournal):
        for t in study.get_trials(states=(TrialState.RUNNING,)):
            beat = t.system_attrs[BEAT_ATTR] - seconds
            storage.set_trial_system_attr(t._trial_id, BEAT_ATTR, beat)
        return
    with storage.engine.begin() as conn:
        conn.execute(sqlalchemy.text("UPDATE trial_heartbeats SET heartbeat = heartbeat - "
                                     f"interval '{int(seconds)} seconds'"))  # fmt: skip


@pytest.mark.parametrize("kind", ["journal", "postgresql"])
def test_stale_by_process_here_and_by_heartbeat_elsewhere(tmp_path, request, kind):
    """A dead local worker's trial is stale at once; a live local worker's never, however old
    its last beat; another machine's (or an unrecorded) worker's when its beat is older than
    the grace period."""
    url = request.getfixturevalue("postgres_url") if kind == "postgresql" else None
    storage = open_storage(url, tmp_path)
    study = optuna.create_study(storage=storage, study_name=f"stale-{kind}")
    here = _running(study, worker_identity())
    dead = _running(study, _exited_worker())
    other = _running(study, {**worker_identity(), "host": socket.gethostname() + "-elsewhere"})
    anonymous = _running(study, None)
    assert storage._get_stale_trial_ids(study._study_id) == [dead]
    _backdate_heartbeats(study, storage, GRACE + 3600)
    stale = storage._get_stale_trial_ids(study._study_id)
    assert stale == sorted([dead, other, anonymous]) and here not in stale


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used")
@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
@pytest.mark.parametrize("kind", ["journal", "postgresql"])
def test_a_retry_is_not_mistaken_for_its_dead_worker(tmp_path, request, kind):
    """The retry of a dead worker's trial, once popped by a live worker and before that worker
    records itself, must not look stale (Optuna copies the failed trial's system attributes
    into its retry: our worker record and last beat are left out)."""
    url = request.getfixturevalue("postgres_url") if kind == "postgresql" else None
    storage = open_storage(url, tmp_path)
    study = optuna.create_study(storage=storage, study_name=f"retry-{kind}")
    dead = _running(study, _exited_worker())
    fail_stale_trials(study)
    (retry,) = study.get_trials(states=(TrialState.WAITING,))
    assert retry.system_attrs["failed_trial"] == 0
    assert WORKER_ATTR not in retry.system_attrs and BEAT_ATTR not in retry.system_attrs
    popped = study.ask()  # a worker takes the retry (RUNNING, no worker recorded yet)
    assert popped.number == retry.number and storage._get_stale_trial_ids(study._study_id) == []
    assert study.get_trials(deepcopy=False)[0]._trial_id == dead
