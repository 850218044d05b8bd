"""l2-vs-weight-decay, quick: SGD's coupled L2 and decoupled decay coincide to rounding;
Adam + L2 and AdamW do not."""

from __future__ import annotations

from pathlib import Path

from trainlab.lab.registry import load_all
from trainlab.lab.runner import run_experiment


def test_sgd_coincides_and_adam_does_not(tmp_path: Path) -> None:
    record = run_experiment(load_all()["l2-vs-weight-decay"], tmp_path, quick=True, seed=0)
    n = record["numbers"]
    assert n["sgd_relative_distance"] < 1e-10
    assert n["adam_relative_distance"] > 1e-3
    assert n["momentum_relative_distance"] > 1e-3
    assert all((tmp_path / f).is_file() for f in record["figures"])
