"""report.html on a small real run: every section, only inline resources, the verdicts and the
probe tables; probes.json round trip and resume merge; bad input."""

from __future__ import annotations

import base64
import json
import re
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from trainlab.cli import main
from trainlab.diagnose.probe_file import load_probes, merge_summaries, save_probes
from trainlab.diagnose.probes import Probes
from trainlab.report import SECTIONS, NotARunError, build_report, write_report
from trainlab.run.config import validate_recipe
from trainlab.run.runner import train_recipe

RECIPE = {
    "name": "report-test",
    "data": {"name": "digits", "batch_size": 64, "normalize": "global"},
    "model": {"name": "mlp", "widths": [32, 32]},
    "optimizer": {"name": "sgd", "lr": 0.5},  # too high on purpose: a verdict to show
    "schedule": {"name": "constant"},
    "train": {"epochs": 2, "early_stopping": None, "log_every": 5, "channels_last": False,
              "threads": 1},
    "diagnose": {"interval": 5},
}  # fmt: skip


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("runs")
    result = train_recipe(validate_recipe({**RECIPE, "runs_dir": str(root)}), quiet=True)
    torch.set_num_threads(threads)
    return result.run_dir


def test_every_run_writes_probes_verdicts_and_report(run_dir) -> None:
    """The files hold what the run measured: the result is the metrics log's test row, the
    probes cover step 1 then every 5th step, the too-high learning rate has its verdict."""
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    epochs, (test,) = (
        [r for r in rows if r["kind"] == "epoch"],
        [r for r in rows if r["kind"] == "test"],
    )
    result = json.loads((run_dir / "result.json").read_text())
    assert result["epochs"] == len(epochs) == 2
    assert (result["test_loss"], result["test_acc"]) == (test["test_loss"], test["test_acc"])
    assert result["train_seconds"] == pytest.approx(sum(r["seconds"] for r in epochs), rel=1e-6)
    probes = load_probes(run_dir / "probes.json")
    last = epochs[-1]["step"]
    assert probes["every"] == 5 and list(probes["steps"]) == [1, *range(5, last + 1, 5)]
    for layer in probes["layers"].values():
        assert len(layer["mean"]) == len(layer["std"]) == len(probes["steps"])
    verdicts = json.loads((run_dir / "verdicts.json").read_text())
    (high,) = [v for v in verdicts if v["code"] == "update_ratio_high"]
    assert high["evidence"]["update_ratio"] > 10 * high["evidence"]["healthy"]
    assert "learning rate too high" in high["message"] and high["advice"]
    png = (run_dir / "curves.png").read_bytes()
    width, height = struct.unpack(">II", png[16:24])  # the IHDR chunk
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and width > 200 and height > 200
    assert (run_dir / "report.html").read_text() == build_report(run_dir)


def test_report_has_every_section_in_order_and_no_external_resource(run_dir) -> None:
    page = (run_dir / "report.html").read_text()
    positions = [page.index(f'<section id="{sid}">') for sid in SECTIONS]
    assert positions == sorted(positions)
    assert not re.search(r"""(src|href)=["'](?!data:|#)""", page)  # nothing to fetch
    assert "<script" not in page and "http://" not in page and "https://" not in page
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(images) >= 6  # curves, schedule, histograms, moments, gradient flow, ratios
    assert all(base64.b64decode(b)[:8] == b"\x89PNG\r\n\x1a\n" for b in images)


def test_report_shows_the_verdicts_probe_tables_recipe_and_data(run_dir) -> None:
    page = (run_dir / "report.html").read_text()
    assert "update/weight ratio" in page and "learning rate too high" in page
    for layer in ("1", "2", "3", "4", "5"):  # Flatten, Linear, ReLU, Linear, ReLU, Linear
        assert f'<td class="name">{layer}</td>' in page
    assert '<td class="name">3.weight</td>' in page
    assert "name: report-test" in page and "scikit-learn (bundled)" in page
    assert "model.safetensors" in page


def test_report_is_rebuilt_identically_from_the_run_directory(run_dir, tmp_path) -> None:
    out = write_report(run_dir, tmp_path / "again.html")
    assert out.read_text() == build_report(run_dir)
    assert out.read_text() == (run_dir / "report.html").read_text()


def test_report_command(run_dir, tmp_path, capsys) -> None:
    assert main(["report", str(run_dir), "--out", str(tmp_path / "r.html")]) == 0
    assert (tmp_path / "r.html").read_text() == build_report(run_dir)
    assert main(["report", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a run directory" in err and "recipe.yaml" in err


def test_not_a_run_directory_is_one_line(tmp_path) -> None:
    with pytest.raises(NotARunError, match="is not a directory; expected a run directory"):
        build_report(tmp_path / "missing")
    (tmp_path / "recipe.yaml").write_text("name: x\n")
    with pytest.raises(NotARunError, match=r"\(no metrics.jsonl\)") as err:
        build_report(tmp_path)
    assert "\n" not in str(err.value)


def test_run_without_probes_still_reports(tmp_path) -> None:
    recipe = {**RECIPE, "diagnose": {"probes": False}, "runs_dir": str(tmp_path)}
    recipe["train"] = {**RECIPE["train"], "epochs": 1}
    result = train_recipe(validate_recipe(recipe), quiet=True)
    assert not (result.run_dir / "probes.json").exists()
    assert "No probes in this run" in (result.run_dir / "report.html").read_text()


def _summary(steps: range) -> dict:
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    probes = Probes(model, every=1, bins=5)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x = torch.randn(8, 3, generator=torch.Generator().manual_seed(0))
    for t in steps:
        with probes.step(t):
            opt.zero_grad()
            model(x).pow(2).mean().backward()
            opt.step()
    return probes.summary()


def test_probe_file_round_trip_is_strict_json_with_nan_as_null(tmp_path) -> None:
    summary = _summary(range(1, 4))
    path = save_probes(summary, tmp_path / "probes.json")
    assert "NaN" not in path.read_text()
    back = load_probes(path)
    np.testing.assert_array_equal(back["steps"], [1, 2, 3])
    for name, layer in summary["layers"].items():
        for key in ("mean", "std", "hist", "dead_fraction"):
            want, got = layer[key], back["layers"][name][key]
            assert (want is None) == (got is None)
            if want is not None:
                np.testing.assert_allclose(got, want, rtol=1e-12)
    ratio = back["params"]["0.weight"]["update_ratio"]
    np.testing.assert_allclose(ratio, summary["params"]["0.weight"]["update_ratio"])


def test_merge_keeps_rows_up_to_the_resumed_step_then_the_new_ones() -> None:
    old, new = _summary(range(1, 6)), _summary(range(4, 7))
    merged = merge_summaries(old, new, upto_step=3)
    np.testing.assert_array_equal(merged["steps"], [1, 2, 3, 4, 5, 6])
    mean = merged["layers"]["0"]["mean"]
    np.testing.assert_array_equal(mean[:3], old["layers"]["0"]["mean"][:3])
    np.testing.assert_array_equal(mean[3:], new["layers"]["0"]["mean"])
    assert merged["probes"] == 6
    dropped = old["layers"]["0"]["hist"][3:].sum(axis=0)  # steps 4 and 5, run again
    total = old["layers"]["0"]["hist_total"] - dropped + new["layers"]["0"]["hist_total"]
    np.testing.assert_array_equal(merged["layers"]["0"]["hist_total"], total)


def test_curves_use_one_colour_per_split_in_both_panels() -> None:
    """Train is one colour and validation another in both panels (they once swapped)."""
    from trainlab.report.curves import curves_figure

    records = [{"kind": "step", "step": s, "loss": 1 / s} for s in range(1, 20)]
    records += [{"kind": "epoch", "step": 10 * e, "train_loss": 1 / e, "val_loss": 1.2 / e,
                 "train_acc": 0.5 + e / 10, "val_acc": 0.4 + e / 10} for e in (1, 2)]  # fmt: skip
    loss_ax, acc_ax = curves_figure(records).axes

    def colour(ax, label):
        (line,) = [ln for ln in ax.get_lines() if ln.get_label() == label]
        return line.get_color()

    for label in ("train", "validation"):
        assert colour(loss_ax, label) == colour(acc_ax, label)
    assert colour(loss_ax, "train") != colour(loss_ax, "validation")
    assert colour(loss_ax, "train (steps)") == colour(loss_ax, "train")


def test_overlay_draws_each_runs_validation_curve(tmp_path) -> None:
    import json

    from trainlab.cli import main
    from trainlab.report.curves import overlay_figure

    runs = {f"r{k}": [{"kind": "epoch", "epoch": e, "step": e, "val_loss": k + 1 / e,
                       "train_loss": 2 / e, "val_acc": k / 10 + e / 100} for e in (1, 2, 3)]
            for k in range(3)}  # fmt: skip
    loss_ax, acc_ax = overlay_figure(runs).axes
    for k in range(3):
        (line,) = [ln for ln in acc_ax.get_lines() if ln.get_label() == f"r{k} (val)"]
        assert list(line.get_ydata()) == [k / 10 + e / 100 for e in (1, 2, 3)]
    dirs = []
    for name, rows in runs.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        dirs.append(str(tmp_path / name))
    assert main(["curves", *dirs, "--out", str(tmp_path / "all.png")]) == 0
    assert (tmp_path / "all.png").read_bytes()[:4] == b"\x89PNG"
    assert main(["curves", str(tmp_path)]) == 1  # not a run directory: one line
