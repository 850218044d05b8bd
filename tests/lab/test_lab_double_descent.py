"""double-descent, quick (widths 4..128, one seed, 40 epochs: too short for the peak): the
noisy labels are recorded, wider nets fit the training set better, noisy labels are harder to
fit; and the verdict's rule, on hand-made sweeps, holds for a peak at the threshold and fails
without one."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from trainlab.lab.experiments.double_descent import _judge, _landmarks, width_grid
from trainlab.lab.registry import load_all
from trainlab.lab.runner import run_experiment


def test_quick_sweep_records_noise_and_capacity_fits_better(tmp_path: Path) -> None:
    record = run_experiment(load_all()["double-descent"], tmp_path, quick=True, seed=0)
    flipped = json.loads((tmp_path / "double-descent" / "label_noise.json").read_text())
    assert len(flipped["0.15"]) == 600 and flipped["0.0"] == []  # 15% of 4,000
    table = record["table"][1:]
    train_noisy = [float(r[1].split("%")[0]) for r in table]
    train_clean = [float(r[3].split("%")[0]) for r in table]
    assert train_noisy[-1] < train_noisy[0] - 30  # capacity fits the training set
    assert train_clean[-1] < train_noisy[-1]  # random labels are harder to fit
    assert len(record["figures"]) == 2  # the curves and the epoch-wise heat map
    assert all((tmp_path / f).is_file() for f in record["figures"])


def _rows(test: list[float], train: list[float]) -> list[dict]:
    widths = [4, 8, 16, 32, 64, 128]
    return [{"width": w, "train": np.array([tr] * 3), "test": np.array([te, te + 0.01, te - 0.01]),
             "curves": None} for w, tr, te in zip(widths, train, test, strict=True)]  # fmt: skip


def test_the_rule_holds_for_a_peak_at_the_threshold_and_fails_without() -> None:
    train = [0.5, 0.3, 0.1, 0.0, 0.0, 0.0]  # threshold: width 32
    peaked = _landmarks(_rows([0.4, 0.38, 0.42, 0.45, 0.35, 0.30], train))
    clean = _landmarks(_rows([0.35, 0.30, 0.28, 0.27, 0.26, 0.25], train))
    monotone = _landmarks(_rows([0.45, 0.42, 0.40, 0.38, 0.35, 0.30], train))
    assert peaked["threshold"] == 32 and peaked["peak_width"] == 32
    assert _judge({0.15: peaked, 0.0: clean})[0]
    assert not _judge({0.15: monotone, 0.0: clean})[0]  # peak at the smallest width
    assert not _judge({0.15: peaked, 0.0: peaked})[0]  # no noise: the gap must shrink


def test_width_grid_has_the_asked_number_of_distinct_widths() -> None:
    grid = width_grid(24)
    assert len(grid) >= 24 and grid[0] == 2 and grid[-1] == 400
    assert list(grid) == sorted(set(grid))


def test_the_command_takes_the_sweeps_options(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    from trainlab.cli import main

    out = tmp_path / "dd"
    assert main(["lab", "double-descent", "--quick", "--noise", "0.2", "--out", str(out)]) == 0
    record = json.loads((out / "double-descent" / "finding.json").read_text())
    assert "20% noise: threshold" in record["numbers"] and len(record["figures"]) == 1
    assert "lab book:" in capsys.readouterr().out
    assert main(["lab", "double-descent", "--noise", "1.5", "--out", str(out)]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--noise must be in [0, 1]" in err[0]
