"""bias-variance, quick: across independent training sets the variance rises with the degree
and the low-degree models carry far more bias^2 than the high-degree ones."""

from __future__ import annotations

from pathlib import Path

from trainlab.lab.registry import load_all
from trainlab.lab.runner import run_experiment


def test_bias_falls_and_variance_rises_with_capacity(tmp_path: Path) -> None:
    record = run_experiment(load_all()["bias-variance"], tmp_path, quick=True, seed=0)
    n = record["numbers"]
    assert n["spearman(degree, variance)"] > 0.5
    assert n["spearman(degree, bias^2)"] < 0
    low = n["degree 1: bias^2, variance"][0]
    high = n["degree 12: bias^2, variance"][0]
    assert low > 5 * high
