"""study.html: what its plots draw (pruned trials apart at their last reported value, log x
axes for log ranges, the best-so-far line), the summary's counts and its one test score, the
sentence that replaces importances with fewer than two completed trials, and the page of a
real (tiny) search in the real headless Chromium of `tests/conftest.py`: no console error,
every image decoded, every section sized."""

from __future__ import annotations

import os
import re
from pathlib import Path

import optuna
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState, create_trial
from search_checks import write_spec

from trainlab.study.search import load_study, plan_search, run_search
from trainlab.study.search_html import (
    STUDY_FILE,
    STUDY_SECTIONS,
    _param_axes,
    build_study_html,
    history_plot,
    points,
)
from trainlab.study.search_report import BestResult, finish_search
from trainlab.study.search_state import Tally

ROOT = Path(__file__).resolve().parents[2]
DISTS = {"lr": FloatDistribution(1e-4, 1.0, log=True), "mom": FloatDistribution(0.5, 0.99),
         "widths": CategoricalDistribution(["json:[16]", "json:[24]"])}  # fmt: skip


def _study(values: list[float | None]) -> optuna.Study:
    """An in-memory study: a completed trial per value, a pruned one (reported 0.3 then 0.2)
    per None."""
    study = optuna.create_study(direction="maximize", study_name="html")
    for i, value in enumerate(values):
        params = {"lr": 10.0 ** -(1 + i % 3), "mom": 0.6 + 0.05 * i, "widths": "json:[16]"}
        if value is None:
            trial = create_trial(state=TrialState.PRUNED, params=params, distributions=DISTS,
                                 intermediate_values={1: 0.3, 2: 0.2})  # fmt: skip
        else:
            trial = create_trial(value=value, params=params, distributions=DISTS)
        study.add_trial(trial)
    return study


def _tally(complete: int, pruned: int) -> Tally:
    return Tally(complete + pruned, complete, pruned, 0, 0, 0, 0)


def test_pruned_trials_are_apart_at_their_last_reported_value():
    pts = points(_study([0.5, None, 0.7]).get_trials())
    assert [(p.number, p.value, p.pruned) for p in pts] == [
        (0, 0.5, False), (1, 0.2, True), (2, 0.7, False)]  # fmt: skip


def test_log_ranges_get_a_log_x_axis_and_choices_their_labels():
    pts = points(_study([0.5, 0.6]).get_trials())
    fig = Figure()
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 3)
    for ax, name in zip(axes, DISTS, strict=True):
        _param_axes(ax, pts, name, DISTS[name], "val_acc")
    assert [ax.get_xscale() for ax in axes] == ["log", "linear", "linear"]
    assert axes[0].get_xlabel() == "lr (log scale)"
    assert [t.get_text() for t in axes[2].get_xticklabels()] == ["[16]", "[24]"]


def test_history_draws_the_best_so_far_line(monkeypatch):
    drawn = {}

    def step(self, x, y, **kwargs):  # record what the best-so-far line is given
        drawn["x"], drawn["y"] = list(x), list(y)

    monkeypatch.setattr("matplotlib.axes.Axes.step", step)
    pts = points(_study([0.5, None, 0.4, 0.8, 0.6]).get_trials())
    assert history_plot(pts, "val_acc", maximize=True)[:8] == b"\x89PNG\r\n\x1a\n"
    assert drawn == {"x": [0, 2, 3, 4], "y": [0.5, 0.5, 0.8, 0.8]}
    history_plot(pts, "val_loss", maximize=False)
    assert drawn["y"] == [0.5, 0.4, 0.4, 0.4]


def _sections(page: str) -> list[str]:
    return re.findall(r'<section id="([a-z]+)">', page)


def test_summary_counts_and_the_single_test_score():
    best = BestResult(3, 3, "val_acc", 0.8, 0.41, 0.853, 5, "/x", "the best trial's saved model")
    page = build_study_html(_study([0.5, None, 0.4, 0.8, 0.6]), "val_acc", _tally(4, 1), best)
    assert _sections(page) == list(STUDY_SECTIONS)
    assert re.search(r"complete</td><td[^>]*>4<", page) and re.search(
        r"pruned</td><td[^>]*>1<", page
    )
    assert "Test accuracy 85.30%, test loss 0.4100" in page
    assert "scored only for this best recipe, once" in page
    assert page.count("<img ") == 4 and 'src="http' not in page  # self-contained


def test_optuna_plots_leave_the_process_style_alone():
    """Optuna's plots call plt.style.use("ggplot"); later figures (report.html's) keep ours."""
    import matplotlib as mpl

    before = dict(mpl.rcParams)
    build_study_html(_study([0.5, 0.4, 0.8]), "val_acc", _tally(3, 0), None)
    assert dict(mpl.rcParams) == before


@pytest.mark.parametrize("values", [[], [0.5], [None, 0.5, None]])
def test_fewer_than_two_completed_trials_is_a_sentence(values):
    done = sum(v is not None for v in values)
    page = build_study_html(_study(values), "val_acc", _tally(done, len(values) - done), None)
    assert f"need at least 2 completed trials; this study has {done}." in page
    assert "No best recipe yet" in page and _sections(page) == list(STUDY_SECTIONS)


class PruneTrial1(optuna.pruners.BasePruner):
    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        return trial.number == 1


@pytest.fixture(scope="module")
def study_page(tmp_path_factory) -> Path:
    """study.html of a tiny search of 3 trials, trial 1 pruned."""
    tmp = tmp_path_factory.mktemp("search")
    plan = plan_search(write_spec(tmp), study_dir=tmp / "study")
    tally = run_search(plan, say=lambda line: None, pruner=PruneTrial1())
    assert (tally.complete, tally.pruned) == (2, 1)
    finish_search(load_study(plan), plan.study_dir, "val_acc", tally)
    return plan.study_dir / STUDY_FILE


def test_study_page_renders_in_chromium_without_errors(browser, study_page):
    browser.open(study_page.as_uri())
    assert browser.errors() == []
    sections = browser.sections(list(STUDY_SECTIONS))
    for sid in STUDY_SECTIONS:
        state = sections[sid]
        assert state is not None, f"section {sid} missing"
        assert state["shown"] and state["height"] > 20 and state["width"] > 500, (sid, state)
    images = browser.images()
    assert len(images) == 4 and all(i["ok"] for i in images), images
    widths = browser.evaluate("[...document.images].map(i => i.naturalWidth)")
    assert all(w > 300 for w in widths), widths
    assert browser.evaluate("document.title") == "trainlab search tiny"
    where = Path(os.environ.get("TRAINLAB_ARTIFACTS", ROOT / "test-artifacts")) / "search"
    where.mkdir(parents=True, exist_ok=True)  # a full-page screenshot to look at
    assert browser.screenshot(where / "study-screenshot.png").read_bytes()[:4] == b"\x89PNG"
