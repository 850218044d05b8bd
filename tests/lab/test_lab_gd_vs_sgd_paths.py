"""gd-vs-sgd-paths, quick: single-example SGD walks a longer path than GD and hovers further
from the optimum than minibatches, which hover further than GD."""

from __future__ import annotations

from pathlib import Path

from trainlab.lab.registry import load_all
from trainlab.lab.runner import run_experiment


def test_noise_grows_as_the_batch_shrinks(tmp_path: Path) -> None:
    record = run_experiment(load_all()["gd-vs-sgd-paths"], tmp_path, quick=True, seed=0)
    n = record["numbers"]
    key = "mean distance to optimum, last 20%, "
    assert n[key + "single example (SGD)"] > n[key + "minibatch 16"] > n[key + "full batch (GD)"]
    assert n["path length single example (SGD)"] > n["path length full batch (GD)"]
