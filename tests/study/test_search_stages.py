"""`trainlab search --stages K`: coarse to fine. Each later stage's ranges are the span of
the last stage's best values, widened and clipped (hand-computed cases), and only the last
stage's best is scored on the test split."""

from __future__ import annotations

import csv
import json
import math

import pytest
import yaml
from search_checks import write_spec

from trainlab.cli import main
from trainlab.study.search_spec import Dim
from trainlab.study.search_stages import narrow_dim


def test_a_log_range_narrows_around_the_best_on_a_log_scale() -> None:
    dim = Dim("optimizer.lr", "float", 1e-4, 1.0, log=True)
    got = narrow_dim(dim, [1e-3, 1e-2])  # span one decade: half a decade more on each side
    lo, hi = got["loguniform"]
    assert (math.log10(lo), math.log10(hi)) == pytest.approx((-3.5, -1.5))


def test_a_linear_range_is_clipped_to_the_old_one() -> None:
    dim = Dim("optimizer.momentum", "float", 0.5, 0.99)
    assert narrow_dim(dim, [0.9, 0.98])["uniform"] == pytest.approx([0.86, 0.99])


def test_agreeing_values_keep_a_tenth_of_the_old_range_around_them() -> None:
    dim = Dim("train.epochs", "int", 10, 110, when=(("optimizer.name", "sgd"),))
    got = narrow_dim(dim, [50, 50])
    assert got["int"] == [40, 60] and got["when"] == {"optimizer.name": "sgd"}


def test_categoricals_keep_the_choices_the_best_used() -> None:
    dim = Dim("model.widths", "categorical", choices=([16], [24], [32]))
    assert narrow_dim(dim, ["json:[32]", "json:[16]"]) == {"categorical": [[16], [32]]}
    assert narrow_dim(dim, []) == {"categorical": [[16], [24], [32]]}


def test_two_stages_end_to_end_score_the_test_split_once(tmp_path, capsys) -> None:
    study = tmp_path / "study"
    spec = write_spec(tmp_path, trials=4)
    argv = ["search", str(spec), "--study-dir", str(study), "--stages", "2"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    first = json.loads((study / "best.json").read_text())
    last = json.loads((study / "stage-2" / "best.json").read_text())
    assert first["test_acc"] is None and last["test_acc"] is not None
    assert f"test accuracy {100 * last['test_acc']:.2f}%" in out
    staged = yaml.safe_load((study / "stage-2.yaml").read_text())
    lo, hi = staged["space"]["optimizer.lr"]["loguniform"]
    assert 1e-3 <= lo < hi <= 1.0
    with (study / "stage-2" / "trials.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4
    assert all(lo <= float(r["optimizer.lr"]) <= hi for r in rows)  # inside the narrowed range
    assert main(argv) == 0  # the same command again: both stages ended, nothing trained
    assert (study / "stage-2.yaml").read_text() == yaml.safe_dump(staged, sort_keys=False)


def test_zero_stages_is_one_line(tmp_path, capsys) -> None:
    argv = ["search", str(write_spec(tmp_path)), "--study-dir", str(tmp_path / "s"),
            "--stages", "0"]  # fmt: skip
    assert main(argv) == 1
    assert "--stages: 0; expected a number of stages >= 1" in capsys.readouterr().err
