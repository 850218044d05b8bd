"""saddles, quick: the full Hessian's index (fraction of negative eigenvalues) is lower at the
end of training than early on, and the loss fell in between."""

from __future__ import annotations

from pathlib import Path

from trainlab.lab.registry import load_all
from trainlab.lab.runner import run_experiment


def test_fewer_negative_directions_as_the_loss_falls(tmp_path: Path) -> None:
    record = run_experiment(load_all()["saddles"], tmp_path, quick=True, seed=0)
    n = record["numbers"]
    steps = sorted(int(k.split()[1].rstrip(":")) for k in n if k.endswith(": loss"))
    early, last = steps[1], steps[-1]
    assert n[f"step {last}: loss"] < n[f"step {early}: loss"]
    assert n[f"step {last}: negative fraction"] < n[f"step {early}: negative fraction"]
