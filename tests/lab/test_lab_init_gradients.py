"""init-gradients, quick: the slides' forward claims (vanishing, saturation, Xavier for tanh,
He for ReLU), on the exact forward pass of activation_stats."""

from __future__ import annotations

from pathlib import Path

from trainlab.lab.registry import load_all
from trainlab.lab.runner import run_experiment


def test_the_five_initializations_behave_as_the_slides_say(tmp_path: Path) -> None:
    record = run_experiment(load_all()["init-gradients"], tmp_path, quick=True, seed=0)
    n = record["numbers"]
    assert n["forward equals activation_stats"]
    assert n["tanh, N(0, 0.01^2): act last/first"] < 1e-3
    assert n["tanh N(0,1) saturated fraction"] > 0.5
    assert 0.1 < n["tanh, Xavier: act last/first"] <= 1.0
    assert n["relu, Xavier: act last/first"] < 0.1 < n["relu, He: act last/first"]


def test_backward_small_init_vanishes_and_large_init_explodes_rather_than_dies(
    tmp_path: Path,
) -> None:
    """The slides' backward claims, judged: small init's gradients vanish and Xavier/He keep
    them steady; large init's do *not* go to zero here (they grow toward the input), so the
    verdict is 'does not hold' and says which claim failed."""
    record = run_experiment(load_all()["init-gradients"], tmp_path, quick=True, seed=0)
    n = record["numbers"]
    assert n["holds: small init: gradients vanish"]
    assert n["holds: Xavier tanh: gradients steady"]
    assert n["holds: He ReLU: gradients steady"]
    assert not n["holds: large init: gradients all zero"]
    assert n["tanh, N(0, 1): grad first/last"] > 100
    assert record["verdict"] == "does not hold"
    assert "large init: gradients all zero" in record["note"]
