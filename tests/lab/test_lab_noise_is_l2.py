"""noise-is-l2, quick: weights trained with input noise sigma land on the ridge closed form
with lambda = sigma^2, far closer than to plain least squares."""

from __future__ import annotations

from pathlib import Path

from trainlab.lab.registry import load_all
from trainlab.lab.runner import run_experiment


def test_noise_trained_weights_are_the_ridge_solution(tmp_path: Path) -> None:
    record = run_experiment(load_all()["noise-is-l2"], tmp_path, quick=True, seed=0)
    n = record["numbers"]
    assert n["relative_distance_to_ridge"] < 0.02
    assert n["relative_distance_to_ridge"] * 5 < n["relative_distance_to_ols"]
