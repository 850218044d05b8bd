"""trajectories, quick (150 steps): on the ill-conditioned quadratic, momentum and Adam at
their best grid rates end far below plain SGD at its best; every function gets an animation."""

from __future__ import annotations

from pathlib import Path

from trainlab.lab.registry import load_all
from trainlab.lab.runner import run_experiment


def test_momentum_and_adam_beat_sgd_in_the_valley(tmp_path: Path) -> None:
    record = run_experiment(load_all()["trajectories"], tmp_path, quick=True, seed=0)
    final = record["numbers"]["ill-conditioned quadratic: final f - f*"]
    assert final["momentum"] < final["sgd"] / 100 and final["adam"] < final["sgd"] / 100
    gifs = [f for f in record["figures"] if f.endswith(".gif")]
    assert len(gifs) == 5
    assert all((tmp_path / f).read_bytes()[:6] in (b"GIF89a", b"GIF87a") for f in gifs)
