"""whitening, quick: both whitenings give the predicted (near-identity) covariance and ZCA's
output is closer to the images than PCA-whitening's."""

from __future__ import annotations

from pathlib import Path

from trainlab.lab.registry import load_all
from trainlab.lab.runner import run_experiment


def test_whitened_covariance_and_zca_closeness(tmp_path: Path) -> None:
    record = run_experiment(load_all()["whitening"], tmp_path, quick=True, seed=0)
    n = record["numbers"]
    for mode in ("pca_whiten", "zca_whiten"):
        assert n[f"{mode}: max |cov - diag(lam/(lam+eps))|"] < 1e-3
        assert n[f"{mode}: mean diagonal where lam > 10 eps"] > 0.9
    key = ": mean squared distance to the centred images"
    assert n["zca_whiten" + key] < n["pca_whiten" + key]
