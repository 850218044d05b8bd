"""The existing reproductions in the lab, quick: the activation-statistics slide's three
regimes, ensembles and snapshot ensembles above their average member, and overfit-mlp's
validation loss far above its training loss and rising."""

from __future__ import annotations

from pathlib import Path

import pytest

from trainlab.lab.registry import load_all
from trainlab.lab.runner import run_experiment


def test_activation_stats_regimes(tmp_path: Path) -> None:
    n = run_experiment(load_all()["activation-stats"], tmp_path, quick=True, seed=0)["numbers"]
    assert n["N(0, 0.01^2): last-layer std"] < 1e-3
    assert n["N(0, 1): last-layer fraction in the end bins (+-1)"] > 0.5
    assert 0.05 < n["Xavier: last-layer std"] < 0.5


@pytest.mark.parametrize("name", ["ensembles", "snapshot-ensembles"])
def test_ensembles_beat_their_average_member(name: str, tmp_path: Path) -> None:
    n = run_experiment(load_all()[name], tmp_path, quick=True, seed=0)["numbers"]
    assert n["ensemble test acc"] > n["mean member test acc"]


def test_overfitting_practical(tmp_path: Path) -> None:
    n = run_experiment(load_all()["overfitting"], tmp_path, quick=True, seed=0)["numbers"]
    assert n["val / train loss at the end"] > 5
    assert n["final val loss"] > 1.1 * n["lowest val loss"]
