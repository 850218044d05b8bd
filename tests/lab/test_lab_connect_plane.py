"""connect-plane, quick: the segment between two trained MLPs crosses a barrier that the
trained Bezier curve avoids."""

from __future__ import annotations

from pathlib import Path

from trainlab.lab.registry import load_all
from trainlab.lab.runner import run_experiment


def test_the_curve_avoids_the_segments_barrier(tmp_path: Path) -> None:
    record = run_experiment(load_all()["connect-plane"], tmp_path, quick=True, seed=0)
    n = record["numbers"]
    assert n["max train loss on the segment"] > 2 * n["endpoint train loss"]
    assert n["max train loss on the curve"] < n["max train loss on the segment"] / 2
    assert all((tmp_path / f).is_file() for f in record["figures"])
