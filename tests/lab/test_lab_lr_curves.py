"""lr-too-high-too-low, quick (200 steps): the very high rate ends highest (or diverges) and
the low rate is still above the good one. (Whether 'high' beats 'good' this early is not
asserted: at 200 steps it does; the full run's verdict is about the end of training.)"""

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
