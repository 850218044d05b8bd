"""relu-vs-tanh, quick: the ReLU CNN reaches 25% training error in fewer steps than tanh."""

from __future__ import annotations

from pathlib import Path

from trainlab.lab.registry import load_all
from trainlab.lab.runner import run_experiment


def test_relu_gets_there_first(tmp_path: Path) -> None:
    record = run_experiment(load_all()["relu-vs-tanh"], tmp_path, quick=True, seed=0)
    n = record["numbers"]
    assert n["steps relu"] is not None
    assert n["steps tanh"] is None or n["steps tanh"] > n["steps relu"]
