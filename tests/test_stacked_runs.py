"""Runs trained as one stack (trainlab.run.stacked) are ordinary run directories with the
numbers of the same runs trained one by one; what cannot be stacked is refused in one line, and
ensembles and comparisons use the stack where they can and say so."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from rich.console import Console
from safetensors.torch import load_file

from trainlab.run.config import Recipe, validate_recipe
from trainlab.run.runner import train_recipe
from trainlab.run.stacked import recipe_refusal, train_stacked
from trainlab.study.compare import compare, load_compare_spec
from trainlab.study.ensemble import run_ensemble


def _recipe(tmp_path: Path, seed: int, **changes: object) -> Recipe:
    raw = {
        "name": f"r{seed}", "seed": seed, "runs_dir": str(tmp_path),
        "data": {"name": "digits", "batch_size": 64},
        "model": {"name": "mlp", "widths": [32, 32]},
        "optimizer": {"name": "adamw", "lr": 3e-3, "weight_decay": 1e-2},
        "schedule": {"name": "cosine"},
        "train": {"epochs": 3, "threads": 1, "early_stopping": None},
    }  # fmt: skip
    for key, value in changes.items():
        section, field = key.split("__")
        raw[section] = {**raw[section], field: value}
    return validate_recipe(raw)


def test_stacked_runs_match_the_runs_trained_one_by_one(tmp_path: Path) -> None:
    recipes = [_recipe(tmp_path, s, optimizer__lr=lr) for s, lr in ((0, 3e-3), (1, 1e-2))]
    lines: list[str] = []
    stacked = train_stacked(recipes, [tmp_path / "s0", tmp_path / "s1"], say=lines.append)
    assert stacked is not None and lines[0].startswith("stacked: 2 runs")
    for k, recipe in enumerate(recipes):
        alone = train_recipe(recipe, quiet=True, run_dir=tmp_path / f"a{k}")
        mine = stacked[k]
        for name in ("recipe.yaml", "metrics.jsonl", "model.safetensors", "result.json",
                     "curves.png", "verdicts.json", "report.html"):  # fmt: skip
            assert (mine.run_dir / name).is_file(), name
        # float32: the stacked matmuls round differently, so close rather than equal (the
        # float64 equality to 1e-10 is tests/stack/test_stack_equal_alone.py)
        assert mine.test_loss == pytest.approx(alone.test_loss, abs=1e-4)
        assert abs(mine.test_acc - alone.test_acc) <= 2 / 360
        w_mine = load_file(str(mine.run_dir / "model.safetensors"))
        w_alone = load_file(str(alone.run_dir / "model.safetensors"))
        assert all(torch.allclose(w_mine[n], w_alone[n], atol=1e-4) for n in w_alone)
        rows = [json.loads(x) for x in (mine.run_dir / "metrics.jsonl").read_text().splitlines()]
        epochs = [r for r in rows if r["kind"] == "epoch"]
        assert [r["epoch"] for r in epochs] == [1, 2, 3]
        assert epochs[0]["lr"] == pytest.approx(alone.history[0]["lr"], rel=1e-9)
        assert rows[-1]["kind"] == "test"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"model__widths": [16]}, "differ in model.widths"),
        ({"optimizer__sam": {"policy": "sam", "rho": 0.05}}, "not stackable: SAM"),
        ({"train__early_stopping": {}}, "train.early_stopping"),
    ],
)
def test_what_cannot_share_a_stack_is_named(tmp_path: Path, change: dict, reason: str) -> None:
    a = _recipe(tmp_path, 0)
    if "model__widths" in change:
        b = _recipe(tmp_path, 1, **change)
        assert reason in (recipe_refusal([a, b]) or "")
    else:
        both = [_recipe(tmp_path, s, **change) for s in (0, 1)]
        assert reason in (recipe_refusal(both) or "")
        lines: list[str] = []
        assert train_stacked(both, [tmp_path / "x", tmp_path / "y"], say=lines.append) is None
        assert lines == [f"trained one by one: {recipe_refusal(both)}"]
        assert not (tmp_path / "x").exists()


def test_an_ensemble_trains_its_members_stacked_and_says_so(tmp_path: Path, capsys) -> None:
    recipe = validate_recipe({
        "name": "ens", "seed": 3, "runs_dir": str(tmp_path),
        "data": {"name": "digits", "batch_size": 64}, "model": {"name": "mlp", "widths": [32]},
        "optimizer": {"name": "sgd", "lr": 0.1, "momentum": 0.9},
        "train": {"epochs": 2, "threads": 1, "early_stopping": None},
        "ensemble": {"members": 3},
    })  # fmt: skip
    result = run_ensemble(recipe)
    assert "ensemble members stacked: 3 runs" in capsys.readouterr().err
    accs = [m["test_acc"] for m in result.members]
    assert len(set(accs)) > 1 and result.test_acc >= min(accs)
    for k in range(3):
        assert (Path(result.run_dir) / "members" / str(k) / "result.json").is_file()


def _compare(tmp_path: Path, variants: str) -> list:
    """A two-seed comparison of ``variants`` (YAML lines) on a small digits MLP."""
    (tmp_path / "base.yaml").write_text(
        "name: base\ndata: {name: digits, batch_size: 64}\nmodel: {name: mlp, widths: [16]}\n"
        "optimizer: {name: sgd, lr: 0.1, momentum: 0.9}\n"
        "train: {epochs: 1, threads: 1, early_stopping: null}\n"
    )
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(f"name: cmp\nseeds: [0, 1]\nrecipe: base.yaml\nvariants:\n{variants}")
    spec, recipes = load_compare_spec(spec_file)
    return compare(spec, recipes, tmp_path, Console(stderr=True, width=200))[1]


def test_compare_stacks_each_variants_seeds_where_it_can(tmp_path: Path, capsys) -> None:
    rows = _compare(tmp_path, "  sgd: {}\n  sam: {optimizer.sam: {policy: sam, rho: 0.05}}\n")
    err = capsys.readouterr().err
    assert "sgd        seeds stacked: 2 runs" in err
    assert "sam        seeds trained one by one: not stackable: SAM" in err
    assert len(rows) == 4 and all(r.test_acc is not None for r in rows)


def test_compare_stacks_an_lr_sweep_across_variants(tmp_path: Path, capsys) -> None:
    rows = _compare(tmp_path, "  slow: {optimizer.lr: 0.01}\n  fast: {optimizer.lr: 0.1}\n")
    assert "all variants stacked: 4 runs" in capsys.readouterr().err
    assert [(r.variant, r.seed) for r in rows] == [("slow", 0), ("slow", 1), ("fast", 0),
                                                    ("fast", 1)]  # fmt: skip
    assert len({r.test_acc for r in rows}) > 1


def test_a_section_set_in_one_recipe_and_absent_in_another_is_a_difference(
    tmp_path: Path,
) -> None:
    plain = _recipe(tmp_path, 0)
    sam = _recipe(tmp_path, 1, optimizer__sam={"policy": "sam", "rho": 0.05})
    assert "differ in optimizer.sam" in (recipe_refusal([plain, sam]) or "")
    assert "differ in optimizer.sam" in (recipe_refusal([sam, plain]) or "")
