"""What the `trainlab search` tests share: the tiny search file, and the check that a study
whose worker was killed mid-trial lost nothing and counted nothing twice, whatever its
storage (journal file or PostgreSQL)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import yaml
from optuna.trial import FrozenTrial, TrialState

from trainlab.study.search_state import RETRY_OF, slots, tally

TINY = {
    "name": "tiny",
    "base": "mnist1d-mlp",
    "set": {
        "train.epochs": 2,
        "train.threads": 1,
        "data.subset": 400,
        "data.val_fraction": 0.2,
        "model.widths": [16],
        "diagnose.probes": False,
        "diagnose.report": False,
    },  # fmt: skip
    "space": {
        "optimizer.lr": {"loguniform": [1.0e-3, 1.0]},
        "optimizer.momentum": {"uniform": [0.5, 0.99], "when": {"optimizer.name": "sgd"}},
        "model.widths": {"categorical": [[16], [24]]},
    },
    "trials": 3,
}

ENDS = (TrialState.COMPLETE, TrialState.PRUNED)


def write_spec(tmp_path: Path, **changes: object) -> Path:
    """The tiny search file with `changes` to its top-level keys, written in `tmp_path`."""
    spec = {**TINY, **changes}
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def assert_nothing_lost_or_doubled(trials: Sequence[FrozenTrial], budget: int, killed: int) -> None:
    """Every slot below `budget` ended exactly once (COMPLETE or PRUNED), each earlier trial of
    a slot is a FAIL retried by the next with the same parameters, nothing is left running or
    queued, and trial `killed` (whose worker was SIGKILLed) failed and was retried once."""
    assert not [t.number for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    chains = slots(trials, budget)
    shown = {slot: [t.number for t in chain] for slot, chain in chains.items()}
    assert sorted(chains) == list(range(budget)), shown
    for slot, chain in chains.items():
        assert chain[-1].state in ENDS, (slot, [(t.number, t.state.name) for t in chain])
        for failed, retry in zip(chain, chain[1:], strict=False):
            assert failed.state == TrialState.FAIL, (slot, failed.number, failed.state)
            assert retry.system_attrs.get(RETRY_OF) == chain[0].number
            assert retry.params == failed.params
    by_number = {t.number: t for t in trials}
    assert by_number[killed].state == TrialState.FAIL
    retries = [t for t in trials if t.system_attrs.get(RETRY_OF) == killed]
    assert len(retries) == 1 and retries[0].state in ENDS, [t.number for t in retries]
    counted = tally(trials, budget)
    assert (counted.complete + counted.pruned, counted.failed) == (budget, 0), counted
