"""l1-sparsity, quick: at matched training loss, L1 leaves far more near-zero weights."""

from __future__ import annotations

from pathlib import Path

from trainlab.lab.registry import load_all
from trainlab.lab.runner import run_experiment


def test_l1_is_sparser_than_l2_at_matched_loss(tmp_path: Path) -> None:
    record = run_experiment(load_all()["l1-sparsity"], tmp_path, quick=True, seed=0)
    n = record["numbers"]
    assert n["loss_mismatch"] < 0.1
    assert n["near_zero_l1"] >= 2 * n["near_zero_l2"] and n["near_zero_l1"] > 0.1
