"""`trainlab landscape` / `trainlab interpolate` in-process on hand-made run directories: the
files they write, exact interpolation ends, PCA from checkpoints, and one-line bad-input errors
before any work."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from trainlab.cli import main
from trainlab.run.config import Recipe, dump_recipe
from trainlab.run.experiment import build
from trainlab.train import Position, save_checkpoint


def make_run(root: Path, name: str, widths: list[int], seed: int, checkpoints: int = 1) -> Path:
    """A run directory of an MLP with BatchNorm on the generated spirals (fast to build):
    recipe.yaml and `checkpoints` checkpoints along a made-up trajectory (no training: the
    analysis only reads weights)."""
    recipe = Recipe(name=name, seed=seed, runs_dir=str(root), data={"name": "spirals"},
                    model={"name": "mlp", "widths": widths, "norm": "batch"},
                    train={"threads": 1})  # fmt: skip
    run = root / name
    run.mkdir()
    (run / "recipe.yaml").write_text(dump_recipe(recipe))
    exp = build(recipe)
    gen = torch.Generator().manual_seed(seed)
    for step in range(checkpoints):
        with torch.no_grad():
            for p in exp.model.parameters():
                p.add_(0.05 * torch.randn(p.shape, generator=gen))
        save_checkpoint(run / "checkpoints", exp.model, exp.optimizer, Position(step=step), keep=9)
    return run


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("runs")
    return {
        "a": make_run(root, "a", [16], seed=0, checkpoints=4),
        "b": make_run(root, "b", [16], seed=1),
        "narrow": make_run(root, "narrow", [8], seed=2),
    }


def summary(run: Path, stem: str) -> dict:
    return json.loads((run / "landscape" / f"{stem}.json").read_text())


def test_plane_writes_npz_pictures_and_resumes(runs: dict[str, Path], capsys) -> None:
    args = ["landscape", str(runs["a"]), "--grid", "3", "--examples", "50"]
    assert main(args) == 0
    out = runs["a"] / "landscape"
    stem = "plane-filter-eval-seed0"
    for suffix in (".npz", ".json", "-test-contour.png", "-test-heatmap.png", "-test-3d.png"):
        assert (out / f"{stem}{suffix}").is_file(), suffix
    first = summary(runs["a"], stem)
    assert main(args) == 0  # a second call resumes the complete file: same numbers
    assert summary(runs["a"], stem)["splits"] == first["splits"]
    assert "at the model" in capsys.readouterr().out


def test_interpolate_reproduces_both_runs_at_0_and_1(runs: dict[str, Path]) -> None:
    assert main(["interpolate", str(runs["a"]), str(runs["b"]), "--grid", "5",
                 "--examples", "40", "--split", "test"]) == 0  # fmt: skip
    row = summary(runs["a"], "interpolate-b-eval")["splits"]["test"]
    assert row["loss_at_0"] is not None and row["loss_at_1"] is not None
    assert row["max_loss_between"] >= max(row["loss_at_0"], row["loss_at_1"]) - 1e-12
    assert main(["landscape", str(runs["a"]), "--line", "--grid", "3", "--examples", "40",
                 "--split", "test"]) == 0  # fmt: skip
    at_a = summary(runs["a"], "line-filter-eval-seed0")["splits"]["test"]["centre_loss"]
    assert row["loss_at_0"] == at_a  # same 40 test examples, the same model: exactly


def test_recomputed_batchnorm_through_the_command(runs: dict[str, Path]) -> None:
    assert main(["landscape", str(runs["a"]), "--bn", "recompute", "--grid", "3",
                 "--examples", "30"]) == 0  # fmt: skip
    recomputed = summary(runs["a"], "plane-filter-recompute-seed0")["splits"]["test"]
    assert recomputed["centre_loss"] is not None


def test_pca_directions_from_the_checkpoints(runs: dict[str, Path]) -> None:
    assert main(["landscape", str(runs["a"]), "--directions", "pca", "--grid", "3",
                 "--examples", "30"]) == 0  # fmt: skip
    ratios = summary(runs["a"], "plane-pca-eval-seed0")["pca_explained_variance_ratio"]
    assert len(ratios) == 2 and ratios[0] >= ratios[1] > 0 and sum(ratios) <= 1 + 1e-9


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--grid", "1"], "expected at least 2 points"),
        (["--range", "0"], "expected R > 0 or LO HI"),
        (["--range", "1", "-1"], "expected R > 0 or LO HI"),
        (["--interpolate", "NARROW"], "expected the same architecture"),
        (["--directions", "pca", "--line"], None),  # 4 checkpoints: fine
    ],
)
def test_bad_input_is_one_line_before_any_work(runs, capsys, args, expected) -> None:
    args = [a.replace("NARROW", str(runs["narrow"])) for a in args]
    if expected is None:
        assert main(["landscape", str(runs["a"]), *args, "--grid", "2", "--examples", "8"]) == 0
        return
    assert main(["landscape", str(runs["a"]), *args]) == 1
    err = capsys.readouterr().err.strip()
    assert expected in err and len(err.splitlines()) == 1


def test_run_without_checkpoint_or_with_too_few_for_pca(runs, tmp_path: Path, capsys) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "recipe.yaml").write_text((runs["b"] / "recipe.yaml").read_text())
    assert main(["landscape", str(empty)]) == 1
    assert "found no usable checkpoint" in capsys.readouterr().err
    assert main(["landscape", str(runs["b"]), "--directions", "pca"]) == 1
    assert "at least 3 checkpoints" in capsys.readouterr().err


def test_bn_stats_far_out_counts_the_points_without_a_finite_loss(runs, capsys) -> None:
    """--bn-stats moves running variances along filter-normalized directions; far enough out
    some turn negative and the loss is NaN there: counted per split and said in one line."""
    args = ["landscape", str(runs["b"]), "--line", "--grid", "9", "--range", "20",
            "--examples", "30", "--split", "test", "--bn-stats", "--biasbn", "filter"]  # fmt: skip
    assert main(args) == 0
    out = capsys.readouterr().out
    stem = "line-filter-eval-seed0-biasbn-filter-bnstats"  # distinct from the plain line
    row = summary(runs["b"], stem)["splits"]["test"]
    arrays = np.load(runs["b"] / "landscape" / f"{stem}.npz")
    losses = np.concatenate([arrays[k].ravel() for k in arrays.files if "loss" in k])
    assert row["non_finite_points"] == int((~np.isfinite(losses)).sum()) > 0
    assert "running variance below 0" in out


def test_plane_centre_is_the_models_own_test_loss(runs: dict[str, Path]) -> None:
    """The written numbers, not just the exit code: at (0, 0) the plane's test loss is the
    checkpoint's loss on the whole test split, as `evaluate` measures it."""
    from trainlab.run.trained import build_trained, open_run
    from trainlab.train import evaluate

    assert main(["landscape", str(runs["b"]), "--grid", "3", "--examples", "100000",
                 "--split", "test"]) == 0  # fmt: skip
    row = summary(runs["b"], "plane-filter-eval-seed0")["splits"]["test"]
    exp = build_trained(open_run(runs["b"]))
    loss, _ = evaluate(exp.model, exp.test, exp.loss_fn)
    assert row["centre_loss"] == pytest.approx(loss, rel=1e-6)
    assert row["min_loss"] <= row["centre_loss"] <= row["max_loss"]
