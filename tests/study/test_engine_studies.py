"""`compare` and `cv` as studies on the engine: each job or fold a normal run directory, the
same numbers as training each run by hand (the serial loops they replaced did exactly that),
the same table with 2 worker processes as with 1, and a killed study continued."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from rich.console import Console

from trainlab.cli import main
from trainlab.data import kfold_splits
from trainlab.run.config import RecipeError, load_recipe
from trainlab.run.experiment import build, held_out_fold, load_bundle
from trainlab.run.runner import train_recipe
from trainlab.study.compare import compare, load_compare_spec, plan_jobs
from trainlab.study.cv import cross_validate, fold_recipes
from trainlab.train import evaluate, fit

BASE = """
name: base
data: {name: digits, batch_size: 64, normalize: per_channel}
model: {name: mlp, widths: [24]}
optimizer: {name: sgd, lr: 0.1, momentum: 0.9}
schedule: {name: constant}
train: {epochs: 2, channels_last: false, threads: 1, early_stopping: null}
diagnose: {probes: false, report: false}
"""
# SAM does not stack: every run is its own job, so two workers share the four runs
VARIANTS = "  sgd: {}\n  sam: {optimizer.sam: {policy: sam, rho: 0.05}}\n"


def _spec(tmp_path: Path, variants: str = VARIANTS) -> Path:
    (tmp_path / "base.yaml").write_text(BASE)
    spec = tmp_path / "cmp.yaml"
    spec.write_text(f"name: eng\nrecipe: base.yaml\nseeds: [0, 1]\nvariants:\n{variants}")
    return spec


def _rows(study: Path) -> list[dict]:
    """results.json less the wall times."""
    rows = json.loads((study / "results.json").read_text())
    return [{k: v for k, v in r.items() if k != "train_seconds"} for r in rows]


def test_jobs_stack_what_can_stack_and_split_the_rest(tmp_path: Path) -> None:
    _, recipes = load_compare_spec(_spec(tmp_path))
    said: list[str] = []
    jobs = plan_jobs(recipes, said.append)
    assert [len(j.recipes) for j in jobs] == [2, 1, 1]  # sgd's seeds stacked; sam one by one
    assert len(said) == 1 and said[0].startswith("sam        seeds trained one by one: not stack")
    _, sweep = load_compare_spec(_spec(tmp_path, "  a: {}\n  b: {optimizer.lr: 0.05}\n"))
    assert [len(j.recipes) for j in plan_jobs(sweep)] == [4]  # an lr sweep: one stack


def test_each_compare_run_is_the_run_trained_alone(tmp_path: Path) -> None:
    """A run the engine trained alone has the numbers of `train_recipe` on its recipe."""
    spec_file = _spec(tmp_path)
    spec, recipes = load_compare_spec(spec_file)
    study, rows = compare(spec, recipes, tmp_path, Console(stderr=True), path=spec_file)
    sam = recipes["sam"][1]
    alone = train_recipe(sam, quiet=True, run_dir=tmp_path / "alone")
    (row,) = [r for r in rows if (r.variant, r.seed) == ("sam", 1)]
    assert (row.test_acc, row.test_loss) == (alone.test_acc, alone.test_loss)
    assert (study / sam.name / "result.json").is_file()
    trials = optuna.load_study(study_name="eng", storage=_journal(study)).get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3  # three jobs, each once


def _journal(study: Path) -> optuna.storages.JournalStorage:
    from optuna.storages.journal import JournalFileBackend

    return optuna.storages.JournalStorage(JournalFileBackend(str(study / "study.journal")))


def test_two_workers_give_the_table_of_one(tmp_path: Path, capsys) -> None:
    spec = _spec(tmp_path)
    assert main(["compare", str(spec), "--study-dir", str(tmp_path / "one")]) == 0
    one = capsys.readouterr().out
    argv = ["compare", str(spec), "--study-dir", str(tmp_path / "two"), "--workers", "2"]
    assert main(argv) == 0
    two = capsys.readouterr().out
    assert _rows(tmp_path / "one") == _rows(tmp_path / "two")
    table = [line.rsplit("|", 2)[0] for line in one.splitlines() if line.startswith("| s")]
    assert len(table) == 2 and all(line in two for line in table)  # less the time column


def test_cv_fold_is_the_recipe_fitted_on_the_other_folds_by_hand(tmp_path: Path) -> None:
    """The reference: kfold_splits, build on the k−1 folds, fit, evaluate the held-out fold."""
    recipe = load_recipe(_write(tmp_path))
    results = cross_validate(recipe, 3, study=tmp_path / "cv")
    bundle = load_bundle(recipe)
    train_idx, held_idx = kfold_splits(bundle.train, 3, seed=recipe.seed, stratify=True)[2]
    no_val = fold_recipes(recipe, 3)[2]
    fold_bundle = held_out_fold(bundle, no_val)
    assert fold_bundle.test.y.tolist() == bundle.train.y[held_idx].tolist()
    assert len(fold_bundle.train) == len(train_idx)
    exp = build(no_val.model_copy(update={"data": no_val.data.model_copy(update={"fold": None})}),
                fold_bundle)  # fmt: skip
    fit(exp.model, exp.loader, exp.optimizer, exp.loss_fn, epochs=recipe.train.epochs,
        schedule=exp.schedule, callbacks=exp.callbacks, penalty=exp.penalty,
        augment=exp.augment, seed=recipe.seed, channels_last=False)  # fmt: skip
    loss, acc = evaluate(exp.model, exp.test, exp.loss_fn, 1000, False)
    assert (results[2].val_loss, results[2].val_acc) == pytest.approx((loss, acc), abs=1e-6)
    assert all((tmp_path / "cv" / f"base-fold{i}" / "result.json").is_file() for i in (1, 2, 3))


def _write(tmp_path: Path) -> Path:
    path = tmp_path / "base.yaml"
    path.write_text(BASE)
    return path


def test_cv_with_two_workers_gives_the_folds_of_one(tmp_path: Path, capsys) -> None:
    recipe = str(_write(tmp_path))
    assert main(["cv", recipe, "--folds", "3", "--study-dir", str(tmp_path / "a")]) == 0
    one = capsys.readouterr().out
    argv = ["cv", recipe, "--folds", "3", "--study-dir", str(tmp_path / "b"), "--workers", "2"]
    assert main(argv) == 0
    assert capsys.readouterr().out == one and one.startswith("accuracy ")


def test_a_killed_cv_continues_in_its_study_dir(tmp_path: Path, capsys) -> None:
    """A fold lost after the study ended is trained again; the finished ones are read back."""
    import shutil

    recipe = str(_write(tmp_path))
    argv = ["cv", recipe, "--folds", "3", "--study-dir", str(tmp_path / "cv")]
    assert main(argv) == 0
    first = capsys.readouterr().out
    kept = (tmp_path / "cv" / "base-fold1" / "result.json").stat().st_mtime_ns
    shutil.rmtree(tmp_path / "cv" / "base-fold2")
    assert main(argv) == 0
    assert capsys.readouterr().out == first
    assert (tmp_path / "cv" / "base-fold1" / "result.json").stat().st_mtime_ns == kept


def test_a_study_dir_of_other_work_is_refused(tmp_path: Path) -> None:
    recipe = load_recipe(_write(tmp_path))
    cross_validate(recipe, 2, study=tmp_path / "cv")
    with pytest.raises(RecipeError, match="made from another cv spec"):
        cross_validate(recipe, 3, study=tmp_path / "cv")


def test_bad_workers_is_one_line_before_any_run(tmp_path: Path, capsys) -> None:
    assert main(["compare", str(_spec(tmp_path)), "--workers", "0",
                 "--runs-dir", str(tmp_path / "runs")]) == 1  # fmt: skip
    assert "--workers: 0; expected a number of processes >= 1" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_an_ensemble_on_two_workers_is_the_ensemble_on_one(tmp_path: Path) -> None:
    """Members that cannot stack (SAM) are one job each: two processes train them, and the
    ensemble's numbers are those of one process."""
    from trainlab.run.config import validate_recipe
    from trainlab.study.ensemble import run_ensemble

    raw = load_recipe(_write(tmp_path)).model_dump(mode="json")
    raw["optimizer"]["sam"] = {"policy": "sam", "rho": 0.05}
    raw["ensemble"] = {"method": "independent", "members": 2}
    recipe = validate_recipe(raw)
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    one = run_ensemble(recipe, tmp_path / "one", quiet=True)
    two = run_ensemble(recipe, tmp_path / "two", quiet=True, workers=2)
    assert (one.test_acc, one.test_nll) == (two.test_acc, two.test_nll)
    assert [m["test_acc"] for m in one.members] == [m["test_acc"] for m in two.members]
    trials = optuna.load_study(study_name="ensemble-base", storage=_journal(tmp_path / "two"))
    assert [t.state for t in trials.get_trials()] == [TrialState.COMPLETE] * 2


def test_sharpness_of_stacked_runs_reads_their_final_weights(tmp_path: Path) -> None:
    """Runs trained in a stack keep no checkpoints: the sharpness column reads the final
    weights (model.safetensors) instead of failing (the bundled `sharpness` file did)."""
    import torch
    from safetensors.torch import load_file

    from trainlab.run.trained import open_run

    spec_file = _spec(tmp_path, "  sgd: {}\n")
    spec_file.write_text(spec_file.read_text() + "sharpness: {examples: 64, max_iter: 5}\n")
    spec, recipes = load_compare_spec(spec_file)
    study, rows = compare(spec, recipes, tmp_path, Console(stderr=True), path=spec_file)
    run = study / recipes["sgd"][0].name
    assert not (run / "checkpoints").exists()  # trained in a stack
    state = open_run(run).state
    final = load_file(str(run / "model.safetensors"))
    assert state.keys() == final.keys() and all(torch.equal(state[k], final[k]) for k in final)
    assert all(r.top_eigenvalue is not None and r.top_eigenvalue > 0 for r in rows)
