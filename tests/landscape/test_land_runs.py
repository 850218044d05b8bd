"""Analyses of trained runs: a run's top Hessian eigenvalue against the dense Hessian, the
sharpness column of `trainlab compare`, and `trainlab connect` end to end on tiny runs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch.func import functional_call

from trainlab.cli import main
from trainlab.run.config import validate_recipe
from trainlab.run.planes import plot_planes, run_plane
from trainlab.run.runner import train_recipe
from trainlab.run.trained import build_trained, open_run, run_sharpness
from trainlab.study.compare import Row, format_table

RECIPE = {
    "data": {"name": "digits", "val_fraction": 0, "batch_size": 64},
    "model": {"name": "mlp", "widths": [4]},
    "optimizer": {"name": "sgd", "lr": 0.1, "momentum": 0.9},
    "schedule": {"name": "constant"},
    "train": {"epochs": 2, "early_stopping": None, "channels_last": False, "threads": 1},
}


def _run(tmp_path, seed: int, widths: list[int] | None = None):
    raw = {**RECIPE, "seed": seed, "runs_dir": str(tmp_path / "runs")}
    if widths is not None:
        raw["model"] = {"name": "mlp", "widths": widths}
    return train_recipe(validate_recipe(raw), quiet=True).run_dir


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """Two digits MLPs from seeds 0 and 1 (shared by the tests of this module)."""
    tmp = tmp_path_factory.mktemp("runs")
    return _run(tmp, 0), _run(tmp, 1)


def test_run_sharpness_is_the_dense_hessians_top_eigenvalue(two_runs) -> None:
    run_dir = two_runs[0]
    got = run_sharpness(run_dir, examples=200, max_iter=500, seed=3)
    exp = build_trained(open_run(run_dir))
    split = exp.loader.split
    gen = torch.Generator().manual_seed(3)
    index = torch.randperm(len(split), generator=gen)[:200].sort().values
    x, y = split.x[index].double(), split.y[index]
    model = exp.model.double()
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]
    flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()])

    def loss(w: torch.Tensor) -> torch.Tensor:
        parts = dict(zip(names, torch.split(w, [s.numel() for s in shapes]), strict=True))
        params = {n: p.view(s) for (n, p), s in zip(parts.items(), shapes, strict=True)}
        return exp.loss_fn(functional_call(model, params, (x,)), y)

    eigenvalues = torch.linalg.eigvalsh(torch.autograd.functional.hessian(loss, flat))
    top = eigenvalues[eigenvalues.abs().argmax()].item()
    assert got.examples == 200
    assert abs(got.top_eigenvalue - top) <= 1e-2 * abs(top)


def test_compare_table_has_the_eigenvalue_mean_and_std() -> None:
    rows = [Row("sam", s, 0.9, 0.3, 0.95, 1.0, lam) for s, lam in ((0, 2.0), (1, 4.0))]
    table = format_table(rows, [0, 1])
    assert "top Hessian eigenvalue |" in table.splitlines()[0]
    assert table.splitlines()[-1].endswith("| 3 ± 1.4 |")  # mean 3, sample std √2
    assert "eigenvalue" not in format_table([Row("sgd", 0, 0.9, 0.3, 0.95, 1.0)], [0])


def test_sharpness_command_prints_and_writes_the_report(two_runs, capsys) -> None:
    argv = ["sharpness", str(two_runs[0]), "--examples", "50", "--max-iter", "5"]
    assert main([*argv, "--trace-samples", "2"]) == 0
    assert "top_eigenvalue" in capsys.readouterr().out
    report = json.loads((two_runs[0] / "sharpness.json").read_text())
    assert report["n_examples"] == 50 and len(report["subsets"]) == 2
    section = _analysis_section(two_runs[0])
    assert "<h3>Sharpness</h3>" in section and "top_eigenvalue" in section
    assert f"{report['subsets'][0]['top_eigenvalue']:.4g}" in section  # the measured value


def _analysis_section(run_dir) -> str:
    """The run's report.html section that the analysis commands refresh."""
    page = (run_dir / "report.html").read_text()
    start = page.index('<section id="analysis">')
    return page[start : page.index("</section>", start)]


def test_landscape_command_adds_its_curve_to_the_report(two_runs) -> None:
    run = two_runs[1]
    assert "No landscape, sharpness or connectivity results yet" in _analysis_section(run)
    argv = ["landscape", str(run), "--line", "--grid", "3", "--examples", "40", "--split", "test"]
    assert main(argv) == 0
    section = _analysis_section(run)
    assert "line-filter-eval-seed0: line, grid 3" in section
    assert section.count('src="data:image/png;base64,') == 1  # the 1-D curve picture


def test_connect_end_to_end_and_bad_inputs(two_runs, tmp_path, capsys) -> None:
    a, b = two_runs
    out = tmp_path / "curve"
    argv = ["connect", str(a), str(b), "--epochs", "1", "--points", "5", "--out", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "bezier curve: max test error" in printed and "segment: midpoint test error" in printed
    arrays = np.load(out / "curve.npz")
    np.testing.assert_allclose(arrays["curve_t"], [0, 0.25, 0.5, 0.75, 1])
    # The endpoints of the curve and of the segment are the same two models.
    ends = [arrays[f"{path}_test_error"][[0, -1]] for path in ("curve", "segment")]
    np.testing.assert_allclose(*ends)
    summary = json.loads((out / "connect.json").read_text())
    assert summary["segment_midpoint_t"] == 0.5
    assert (out / "connect.png").stat().st_size > 0
    for run in (a, b):  # each end's report shows the curve, its numbers and its plot
        assert json.loads((run / "connections" / "curve.json").read_text()) == summary
        section = _analysis_section(run)
        assert "Mode connectivity: curve" in section and "segment_midpoint_t" in section
        assert 'src="data:image/png;base64,' in section
    # A rerun into the same directory reuses the trained bends instead of training again.
    assert main(argv) == 0
    assert "loaded the trained bends" in capsys.readouterr().err
    again = np.load(out / "curve.npz")
    np.testing.assert_array_equal(again["curve_test_error"], arrays["curve_test_error"])

    other = _run(tmp_path, 2, widths=[6])
    assert main(["connect", str(a), str(other)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "expected the same architecture" in err
    assert "\n" not in err
    assert main(["connect", str(a), str(tmp_path)]) == 1
    assert "expected a run directory with recipe.yaml" in capsys.readouterr().err
    assert main(["connect", str(a), str(b), "--points", "1"]) == 1
    assert "points" in capsys.readouterr().err


def test_planes_of_two_runs_center_on_their_losses(two_runs, tmp_path) -> None:
    surfaces = {d.name: run_plane(d, grid=3, span=0.5, examples=64) for d in two_runs}
    for run_dir, surface in zip(two_runs, surfaces.values(), strict=True):
        exp = build_trained(open_run(run_dir))
        split = exp.loader.split
        index = torch.randperm(len(split), generator=torch.Generator().manual_seed(0))[:64]
        with torch.no_grad():
            loss = exp.loss_fn(exp.model.eval()(split.x[index]), split.y[index]).item()
        assert surface.loss["train"].shape == (3, 3)
        assert surface.loss["train"][1, 1] == pytest.approx(loss, rel=1e-5)
        assert (run_dir / "plane.npz").is_file()
    assert plot_planes(surfaces, tmp_path / "planes.png").stat().st_size > 0
