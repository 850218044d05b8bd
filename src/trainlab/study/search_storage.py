"""Where a search keeps its trials, and how a worker killed mid-trial is noticed.

Default: an Optuna journal file (`JournalFileBackend`) in the study directory, which the
workers of one machine share. `--storage postgresql://...` (any SQLAlchemy URL): an
`RDBStorage` that workers on many machines share.

A killed worker leaves its trial RUNNING. Optuna's heartbeat finds it: each running trial
records a heartbeat every `HEARTBEAT` seconds, and one silent for `GRACE` seconds is failed
and re-queued with the same parameters (`RetryHeartbeatStaleTrialCallback`, before any worker
asks for a new trial). On top of that, a trial whose worker ran on this machine and whose
process is gone is stale at once (its process id and start time are recorded on the trial),
so a local kill is retried without waiting out the grace period; and a trial whose worker runs
on this machine and is alive is never stale, however late its last beat (a worker paused by
SIGSTOP, or starved of CPU, for longer than the grace period is not dead, and retrying its
trial would run it twice in one run directory). The heartbeat thus decides only for workers on
other machines, and tests on one machine never race the clock. Optuna's journal storage has no
heartbeat of its own; `HeartbeatJournal` adds one (the last beat as a system attribute).
"""

from __future__ import annotations

import contextlib
import copy
import os
import socket
import time
import warnings
from pathlib import Path
from typing import Any

from optuna.exceptions import ExperimentalWarning
from optuna.storages import JournalStorage, RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.storages._heartbeat import BaseHeartbeat
from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock
from optuna.trial import FrozenTrial, TrialState

from trainlab.run.config import RecipeError


class FreshRetry(RetryHeartbeatStaleTrialCallback):
    """Optuna's retry of a stale trial, without the dead worker's identity and last beat.

    Optuna copies the failed trial's system attributes into its retry; the retry would then
    look, from the moment a worker pops it until that worker records itself, like a trial of
    the dead worker, and another process would fail it as stale at once (and queue a second
    retry of the same slot)."""

    def __call__(self, study: Any, trial: FrozenTrial) -> None:
        clean = copy.copy(trial)
        clean.system_attrs = {k: copy.deepcopy(v) for k, v in trial.system_attrs.items()
                              if k not in (WORKER_ATTR, BEAT_ATTR)}  # fmt: skip
        super().__call__(study, clean)


def retry_callback(max_retry: int | None = None) -> FreshRetry:
    """The retry of a stale trial, at most `max_retry` times (default MAX_RETRY; the
    experimental-feature warning off)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        return FreshRetry(max_retry=MAX_RETRY if max_retry is None else max_retry)


HEARTBEAT = 5  # seconds between a running trial's heartbeats
GRACE = 60  # seconds of silence before another worker takes a trial as dead
MAX_RETRY = 3  # retries of one trial whose workers keep dying
WORKER_ATTR = "trainlab:worker"
BEAT_ATTR = "trainlab:heartbeat"
JOURNAL = "study.journal"


def worker_identity() -> dict[str, Any]:
    """This process: host, pid and start time (a reused pid has another start time)."""
    return {"host": socket.gethostname(), "pid": os.getpid(), "started": _start_time(os.getpid())}


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux /proc), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _local_alive(worker: dict[str, Any]) -> bool | None:
    """Whether a worker recorded on this host still runs; None for another host's."""
    if worker.get("host") != socket.gethostname():
        return None
    pid = int(worker.get("pid", 0))
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    started = worker.get("started")
    return started is None or _start_time(pid) in (None, started)


def _local_trials(trials: list[Any], alive: bool) -> set[int]:
    """Ids of running trials whose worker on this machine runs (`alive`) or has exited."""
    return {t._trial_id for t in trials
            if t.state == TrialState.RUNNING and WORKER_ATTR in t.system_attrs
            and _local_alive(t.system_attrs[WORKER_ATTR]) is alive}  # fmt: skip


def _stale(running: list[Any], by_heartbeat: set[int]) -> list[int]:
    """Dead local workers' trials, plus the heartbeat's verdicts on everyone else's."""
    return sorted(_local_trials(running, False) | (by_heartbeat - _local_trials(running, True)))


class HeartbeatJournal(JournalStorage, BaseHeartbeat):
    """A journal storage with Optuna's heartbeat protocol (see the module docstring)."""

    def __init__(self, path: Path, interval: int = HEARTBEAT, grace: int = GRACE) -> None:
        lock = JournalFileOpenLock(str(path) + ".lock")
        super().__init__(JournalFileBackend(str(path), lock_obj=lock))
        self._interval, self._grace = interval, grace
        self._retry = retry_callback()

    def record_heartbeat(self, trial_id: int) -> None:
        with contextlib.suppress(Exception):  # finished meanwhile (failed as stale elsewhere)
            self.set_trial_system_attr(trial_id, BEAT_ATTR, time.time())

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        running = self.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,))
        now, silent = time.time(), set()
        for t in running:
            last = t.system_attrs.get(BEAT_ATTR)
            if last is None and t.datetime_start is not None:
                last = t.datetime_start.timestamp()
            if last is not None and now - last > self._grace:
                silent.add(t._trial_id)
        return _stale(running, silent)

    def get_heartbeat_interval(self) -> int:
        return self._interval

    def get_heartbeat_stale_trial_callback(self) -> FreshRetry:
        return self._retry


class LocalAwareRDB(RDBStorage):
    """`RDBStorage` with its heartbeat, local workers judged by their process (see the module
    docstring)."""

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        running = self.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,))
        return _stale(running, set(super()._get_stale_trial_ids(study_id)))


def open_storage(url: str | None, study_dir: Path) -> Any:
    """The study's storage: the journal file in `study_dir`, or the database at `url`; an
    unreachable database is one RecipeError line (the password not shown)."""
    if url is None:
        study_dir.mkdir(parents=True, exist_ok=True)
        return HeartbeatJournal(study_dir / JOURNAL)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExperimentalWarning)
            return LocalAwareRDB(
                driver_url(url), heartbeat_interval=HEARTBEAT, grace_period=GRACE,
                heartbeat_stale_trial_callback=retry_callback(),
                engine_kwargs={"pool_pre_ping": True, **_connect_timeout(url)},
            )  # fmt: skip
    except Exception as err:  # noqa: BLE001 - sqlalchemy's and the drivers' many kinds
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise RecipeError(f"--storage {redact(url)}: cannot open the database ({first})") from None


def driver_url(url: str) -> str:
    """`postgresql://` with the psycopg2 driver (SQLAlchemy 2.1 would look for psycopg 3)."""
    for scheme in ("postgresql://", "postgres://"):
        if url.startswith(scheme):
            return "postgresql+psycopg2://" + url[len(scheme) :]
    return url


def _connect_timeout(url: str) -> dict[str, Any]:
    return {"connect_args": {"connect_timeout": 10}} if url.startswith("postgres") else {}


def redact(url: str) -> str:
    """The URL with its password replaced by ***."""
    scheme, sep, rest = url.partition("://")
    creds, at, host = rest.rpartition("@")
    if not sep or not at or ":" not in creds:
        return url
    return f"{scheme}://{creds.split(':', 1)[0]}:***@{host}"
