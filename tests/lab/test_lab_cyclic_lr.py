"""cyclic-lr, quick: the bundled mlp recipe with one-cycle ends more accurate than with a
constant rate in the same 3 epochs."""

from __future__ import annotations

from pathlib import Path

from trainlab.lab.registry import load_all
from trainlab.lab.runner import run_experiment


def test_one_cycle_beats_a_constant_rate(tmp_path: Path) -> None:
    n = run_experiment(load_all()["cyclic-lr"], tmp_path, quick=True, seed=0)["numbers"]
    assert n["test acc one_cycle"] > n["test acc constant"]
