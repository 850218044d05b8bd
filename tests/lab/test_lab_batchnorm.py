"""batchnorm-lr and batchnorm-init, quick: BatchNorm's stable rate from the halving search is
at least twice the plain MLP's, and its accuracy varies less across init scales."""

from __future__ import annotations

from pathlib import Path

from trainlab.lab.registry import load_all
from trainlab.lab.runner import run_experiment


def test_batchnorm_allows_a_higher_learning_rate(tmp_path: Path) -> None:
    n = run_experiment(load_all()["batchnorm-lr"], tmp_path, quick=True, seed=0)["numbers"]
    assert n["largest stable lr with BN"] >= 2 * n["largest stable lr without BN"]


def test_batchnorm_reduces_the_init_dependence(tmp_path: Path) -> None:
    n = run_experiment(load_all()["batchnorm-init"], tmp_path, quick=True, seed=0)["numbers"]
    assert n["with BatchNorm: spread"] < n["without BatchNorm: spread"]
