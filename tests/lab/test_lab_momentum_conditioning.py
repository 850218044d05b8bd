"""momentum-conditioning, quick: GD's steps grow about linearly in kappa, momentum's about
like sqrt(kappa), and momentum needs fewer steps at every kappa."""

from __future__ import annotations

from pathlib import Path

from trainlab.lab.registry import load_all
from trainlab.lab.runner import run_experiment


def test_momentum_slope_is_about_half_of_gradient_descents(tmp_path: Path) -> None:
    record = run_experiment(load_all()["momentum-conditioning"], tmp_path, quick=True, seed=0)
    n = record["numbers"]
    assert 0.8 <= n["slope_gradient_descent"] <= 1.2
    assert 0.35 <= n["slope_momentum"] <= 0.65
    gd, hb = n["steps_gradient_descent"], n["steps_momentum"]
    assert all(0 < h < g for g, h in zip(gd, hb, strict=True))
    assert all((tmp_path / f).is_file() for f in record["figures"])
