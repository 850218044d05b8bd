"""`trainlab search`: the spec's bad inputs (one line each, before any trial), samplers whose
draws depend on (seed, slot, name) only, a tiny study end to end, pruning, and two workers on
a journal file with one SIGKILLed mid-trial (the crash hook of `trainlab.durable`, so the
instant is the same on any machine): every slot ends once, the killed trial retried."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import optuna
import pytest
import yaml
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState, create_trial
from search_checks import assert_nothing_lost_or_doubled
from search_checks import write_spec as _spec

from trainlab.cli import main
from trainlab.run.config import RecipeError, load_recipe
from trainlab.study.search import load_study, plan_search, run_search
from trainlab.study.search_sampler import SlotSampler, grid_points
from trainlab.study.search_spec import load_search
from trainlab.study.search_state import slots


def _params_by_slot(study: optuna.Study, budget: int) -> dict[int, dict]:
    """Each slot's parameters (from its first trial: a retry carries the same)."""
    return {s: chain[0].params for s, chain in slots(study.get_trials(), budget).items()}


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"space": {"optimizer.lrr": {"loguniform": [1e-3, 1.0]}}},
         "space optimizer.lrr: recipe field optimizer.lrr:"),
        ({"space": {"optimizer.lr": {"uniform": [0.5, 0.1]}}},
         "space optimizer.lr: empty range [0.5, 0.1]"),
        ({"space": {"optimizer.lr": {"loguniform": [0.0, 1.0]}}},
         "space optimizer.lr: a log scale needs bounds > 0"),
        ({"space": {"model.widths": {"int": [0, 8], "log": True}}},
         "space model.widths: a log scale needs bounds > 0"),
        ({"space": {"optimizer.momentum": {"uniform": [0.1, 0.9],
                                           "when": {"optimizer.nam": "sgd"}}}},
         "when: recipe field optimizer.nam: unknown field"),
        ({"set": {"data.val_fraction": 0}},
         "objective val_acc: the recipe has no validation split"),
        ({"objective": "val_accuracy"},
         "unknown objective 'val_accuracy' (did you mean 'val_acc'?)"),
        ({"sampler": "bayes"}, "field sampler:"),
    ],
)  # fmt: skip
def test_bad_spec_is_one_line_before_any_trial(tmp_path, capsys, change, expected):
    study_dir = tmp_path / "study"
    code = main(["search", str(_spec(tmp_path, **change)), "--study-dir", str(study_dir)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert len(err) == 1 and err[0].startswith("error: ") and expected in err[0], err
    assert not study_dir.exists()  # nothing started


def test_unreachable_storage_is_one_line(tmp_path, capsys):
    with socket_closed_port() as port:
        url = f"postgresql://me:secret@127.0.0.1:{port}/nowhere"
        code = main(["search", str(_spec(tmp_path)), "--storage", url,
                     "--study-dir", str(tmp_path / "s")])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1, err
    assert f"--storage postgresql://me:***@127.0.0.1:{port}/nowhere: cannot open" in err[0]
    assert "secret" not in err[0]


class socket_closed_port:  # noqa: N801 - a context manager used like a function
    """A loopback port with nothing listening (bound, then closed)."""

    def __enter__(self) -> int:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]

    def __exit__(self, *exc: object) -> None:
        return None


def test_slot_sampler_draws_depend_on_seed_slot_and_name_only():
    dists = {"lr": FloatDistribution(1e-4, 1.0, log=True), "w": IntDistribution(8, 512, log=True),
             "opt": CategoricalDistribution(["sgd", "adam", "adamw"])}  # fmt: skip

    def draws(order: list[int], seed: int = 0) -> dict[int, dict]:
        sampler, out = SlotSampler(seed), {}
        study = optuna.create_study(sampler=sampler)
        for n in order:  # trials asked in another order: the draws follow the numbers
            trial = create_trial(state=TrialState.RUNNING)
            trial.number = n
            out[n] = {k: sampler.sample_independent(study, trial, k, d) for k, d in dists.items()}
        return out

    forward, backward = draws(list(range(8))), draws(list(reversed(range(8))))
    assert forward == backward
    assert draws(list(range(8)), seed=1) != forward  # the seed matters
    assert len({v["lr"] for v in forward.values()}) == 8  # slots differ
    for v in forward.values():
        assert 1e-4 <= v["lr"] <= 1.0 and 8 <= v["w"] <= 512 and v["opt"] in dists["opt"].choices
    lrs = np.log10([draws([n])[n]["lr"] for n in range(200)])
    assert abs(lrs.mean() + 2.0) < 0.3  # uniform on the log scale: mean log10 is -2


def test_grid_leaves_inactive_fields_out_and_repeats_no_point(tmp_path):
    space = {"optimizer.momentum": {"uniform": [0.5, 0.9], "points": 3,
                                    "when": {"optimizer.name": "sgd"}},  # before its condition
             "optimizer.name": {"categorical": ["sgd", "adam"]},
             "optimizer.lr": {"loguniform": [1e-3, 1e-1], "points": 3}}  # fmt: skip
    search = load_search(_spec(tmp_path, space=space, sampler="grid"))
    grid = grid_points(search.dims, search.base.model_dump(mode="json"), seed=0)
    assert len(grid) == 3 * 3 + 3  # sgd: momentum x lr; adam: lr only
    assert all(("optimizer.momentum" in p) == (p["optimizer.name"] == "sgd") for p in grid)
    assert sorted({p["optimizer.lr"] for p in grid}) == pytest.approx([1e-3, 1e-2, 1e-1])
    assert grid_points(search.dims, search.base.model_dump(mode="json"), seed=1) != grid


def test_tiny_study_end_to_end(tmp_path, capsys):
    study_dir = tmp_path / "study"
    assert main(["search", str(_spec(tmp_path)), "--study-dir", str(study_dir)]) == 0
    out = capsys.readouterr().out
    assert "best of 3 configurations" in out and "test accuracy" in out
    rows = list(csv.DictReader((study_dir / "trials.csv").open()))
    assert [r["state"] for r in rows] == ["COMPLETE"] * 3
    assert {r["slot"] for r in rows} == {"0", "1", "2"}
    for r in rows:  # each trial a normal run, judged on validation, the test split withheld
        result = yaml.safe_load((Path(r["run_dir"]) / "result.json").read_text())
        assert result["test_loss"] is None and result["test_acc"] is None
        assert r["optimizer.momentum"] != ""  # sgd: the condition holds
    best = load_recipe(study_dir / "best.yaml")
    best_row = max(rows, key=lambda r: float(r["val_acc"]))
    assert best.optimizer.lr == pytest.approx(float(best_row["optimizer.lr"]))
    scored = yaml.safe_load((study_dir / "best.json").read_text())
    assert scored["test_loss"] > 0 and scored["configurations"] == 3
    # the same command again: nothing to run, nothing counted twice; study.html written anew
    (study_dir / "study.html").unlink()
    assert main(["search", str(_spec(tmp_path)), "--study-dir", str(study_dir)]) == 0
    assert len(list(csv.DictReader((study_dir / "trials.csv").open()))) == 3
    assert "scored only for this best recipe" in (study_dir / "study.html").read_text()


class AlwaysPrune(optuna.pruners.BasePruner):
    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        return True


def test_a_pruner_stops_trials_after_their_first_report(tmp_path):
    plan = plan_search(_spec(tmp_path, trials=2), study_dir=tmp_path / "study")
    final = run_search(plan, say=lambda line: None, pruner=AlwaysPrune())
    assert (final.pruned, final.complete, final.failed) == (2, 0, 0)
    for t in load_study(plan).get_trials():
        assert t.state == TrialState.PRUNED and list(t.intermediate_values) == [1]
        result = yaml.safe_load((Path(t.user_attrs["run_dir"]) / "result.json").read_text())
        assert result["epochs"] == 1  # of 2: the run really stopped


def test_killed_worker_trial_is_retried_once_and_nothing_lost(tmp_path):
    """Worker running trial 1 SIGKILLs itself at the end of its first epoch; the study still
    ends every slot exactly once, the same points as one worker draws; a rerun adds nothing."""
    spec = _spec(tmp_path, trials=4)
    env = {**os.environ, "TRAINLAB_CRASH_AT": "search-trial1:epoch#1"}
    env.pop("TRAINLAB_CRASH_LOG", None)
    args = [sys.executable, "-m", "trainlab.cli", "search", str(spec), "--workers", "2",
            "--study-dir", str(tmp_path / "two")]  # fmt: skip
    done = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=600, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "stopped (signal 9)" in done.stderr
    plan = plan_search(spec, study_dir=tmp_path / "two")
    trials = load_study(plan).get_trials()
    assert_nothing_lost_or_doubled(trials, 4, killed=1)

    rerun = subprocess.run(args, cwd=tmp_path, env={**env, "TRAINLAB_CRASH_AT": ""},
                           capture_output=True, text=True, timeout=600, check=False)  # fmt: skip
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert len(load_study(plan).get_trials()) == len(trials)  # nothing run or counted again

    one = plan_search(spec, study_dir=tmp_path / "one")
    run_search(one, say=lambda line: None)
    assert _params_by_slot(load_study(one), 4) == _params_by_slot(load_study(plan), 4)


def test_bad_study_reuse_is_refused(tmp_path):
    plan_search(_spec(tmp_path), study_dir=tmp_path / "s")
    with pytest.raises(RecipeError, match="made from another search spec"):
        plan_search(_spec(tmp_path, seed=5), study_dir=tmp_path / "s")
