"""Counting a search's trials so that none is lost or counted twice, however many workers
share the study and whichever of them is killed.

The study's budget is a number of *slots*. A fresh trial (one Optuna created for a new
point, not a retry) takes the next slot: its slot is the number of fresh trials numbered
before it, a pure function of the study's trial numbers, which the storage hands out one by
one. A retry (a trial re-queued after its worker died: it carries `failed_trial`) keeps the
slot of the trial it retries. A fresh trial whose slot is past the budget (two workers asked
at the same instant for the last slot) is *surplus*: it is closed at once without sampling
or training and never counted. A slot's state is that of its newest trial: COMPLETE, PRUNED
or FAIL (a training error, or a worker that died more than `MAX_RETRY` times) end it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from optuna.trial import FrozenTrial, TrialState

SURPLUS_ATTR = "trainlab:surplus"
RETRY_OF = "failed_trial"  # set by Optuna's RetryHeartbeatStaleTrialCallback
ENDED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


def is_fresh(trial: FrozenTrial) -> bool:
    """A trial Optuna created for a new point (not a retry)."""
    return RETRY_OF not in trial.system_attrs


def slot_of(trials: Sequence[FrozenTrial], number: int) -> int:
    """The slot of trial `number` among `trials` (the study's trials, numbered)."""
    by_number = {t.number: t for t in trials}
    root = by_number[number].system_attrs.get(RETRY_OF, number)
    return sum(1 for t in trials if t.number < root and is_fresh(t))


def budget_claimed(trials: Sequence[FrozenTrial], budget: int) -> bool:
    """Every slot has a trial, and no retry waits for a worker."""
    fresh = sum(1 for t in trials if is_fresh(t))
    return fresh >= budget and not any(t.state == TrialState.WAITING for t in trials)


@dataclass(frozen=True)
class Tally:
    """The slots by state; `retried`: trials failed as stale and queued again."""

    budget: int
    complete: int
    pruned: int
    failed: int
    running: int
    waiting: int
    retried: int

    @property
    def done(self) -> int:
        return self.complete + self.pruned + self.failed

    @property
    def finished(self) -> bool:
        return self.done >= self.budget


def slots(trials: Sequence[FrozenTrial], budget: int) -> dict[int, list[FrozenTrial]]:
    """The trials of each slot below the budget, oldest first (surplus trials left out)."""
    out: dict[int, list[FrozenTrial]] = {}
    for t in sorted(trials, key=lambda t: t.number):
        if t.system_attrs.get(SURPLUS_ATTR):
            continue
        slot = slot_of(trials, t.number)
        if slot < budget:
            out.setdefault(slot, []).append(t)
    return out


def tally(trials: Sequence[FrozenTrial], budget: int) -> Tally:
    """Count the slots by the state of their newest trial."""
    states = [chain[-1].state for chain in slots(trials, budget).values()]
    retried = sum(1 for t in trials if not is_fresh(t))
    count: dict[Any, int] = {s: states.count(s) for s in TrialState}
    return Tally(budget, count[TrialState.COMPLETE], count[TrialState.PRUNED],
                 count[TrialState.FAIL], count[TrialState.RUNNING], count[TrialState.WAITING],
                 retried)  # fmt: skip


def progress_line(t: Tally, best: str) -> str:
    """ "12/40 done (3 pruned, 1 failed), 2 running, 1 retried; best val_acc 0.8123 (trial 7)"."""
    line = f"{t.done}/{t.budget} done ({t.pruned} pruned, {t.failed} failed), {t.running} running"
    if t.retried:
        line += f", {t.retried} retried"
    return f"{line}; {best}"
