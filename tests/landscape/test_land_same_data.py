"""Runs that differ only in their model seed train and test on the same data, so analyses that
combine two runs score each on the data it was trained on; runs on different data are refused.

(Before, the data seed followed the model seed: MNIST-1D was a different dataset for every
seed, and `interpolate A B` printed B's train loss as 1.555 against its own recorded 0.0547.)
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trainlab.cli import main


def _train(root: Path, *sets: str) -> Path:
    args = ["train", "mnist1d-mlp", "--set", "train.epochs=3", "--runs-dir", str(root), "--quiet"]
    for s in sets:
        args += ["--set", s]
    before = set(root.iterdir()) if root.is_dir() else set()
    assert main(args) == 0
    (run,) = set(root.iterdir()) - before
    return run


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("same-data")
    return {"seed0": _train(root, "seed=0"), "seed1": _train(root, "seed=1"),
            "other-data": _train(root, "seed=0", "data.seed=5")}  # fmt: skip


def _fingerprint(run: Path) -> str:
    return json.loads((run / "data.json").read_text())["data_fingerprint"]


def test_model_seeds_share_the_data(runs):
    assert _fingerprint(runs["seed0"]) == _fingerprint(runs["seed1"])
    assert _fingerprint(runs["seed0"]) != _fingerprint(runs["other-data"])
    results = [json.loads((runs[k] / "result.json").read_text()) for k in ("seed0", "seed1")]
    assert results[0]["test_acc"] != results[1]["test_acc"]  # the seed still changes the model


def test_interpolate_scores_each_end_as_its_own_run_recorded(runs, capsys):
    a, b = runs["seed0"], runs["seed1"]
    code = main(["interpolate", str(a), str(b), "--grid", "5", "--split", "train",
                 "--examples", "100000"])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    (summary,) = (a / "landscape").glob(f"interpolate-{b.name}*.json")
    row = json.loads(summary.read_text())["splits"]["train"]
    for end, run in (("loss_at_0", a), ("loss_at_1", b)):
        recorded = json.loads((run / "result.json").read_text())["train_loss"]
        assert row[end] == pytest.approx(recorded, abs=1e-6)


def test_runs_on_different_data_are_refused_in_one_line(runs, capsys):
    a, other = runs["seed0"], runs["other-data"]
    for argv in (["interpolate", str(a), str(other)], ["connect", str(a), str(other)]):
        assert main(argv) == 1
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and "trained on different data" in err
    code = main(["interpolate", str(a), str(other), "--grid", "3", "--data-of", "B",
                 "--split", "train", "--examples", "100000"])  # fmt: skip
    assert code == 0
