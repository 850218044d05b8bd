"""lr-too-high-too-low, quick (200 steps, rates 100x/10x/1x/0.1x the range test's valley):
the very high rate ends highest (or diverges), and the good rate's loss on the whole training
subset is below both the high and the low rate's."""

from __future__ import annotations

from pathlib import Path

from trainlab.lab.registry import load_all
from trainlab.lab.runner import run_experiment


def test_very_high_is_worst_and_low_crawls(tmp_path: Path) -> None:
    record = run_experiment(load_all()["lr-too-high-too-low"], tmp_path, quick=True, seed=0)
    n = record["numbers"]
    others = [n[f"final loss {k}"] for k in ("high", "good", "low")]
    assert n["very high diverged"] or n["final loss very high"] > max(others)
    assert n["final loss low"] > n["final loss good"]
    assert n["final loss high"] > n["final loss good"]
