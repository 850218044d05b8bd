"""dropout-scaling, quick: train-time mean equals the test output for vanilla and inverted
dropout (|z| < 3) and not for the unscaled control (|z| > 10)."""

from __future__ import annotations

from pathlib import Path

from trainlab.lab.registry import load_all
from trainlab.lab.runner import run_experiment


def test_both_scalings_keep_the_expected_activation_and_the_control_does_not(
    tmp_path: Path,
) -> None:
    record = run_experiment(load_all()["dropout-scaling"], tmp_path, quick=True, seed=0)
    n = record["numbers"]
    assert abs(n["inverted z"]) < 3 and abs(n["vanilla z"]) < 3
    assert abs(n["no scaling (control) z"]) > 10
    assert record["verdict"] == "holds"
