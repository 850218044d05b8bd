"""study.html: a search's pictures on one self-contained page (plots as base64 PNG, no script,
no network), in the study directory beside trials.csv and best.yaml.

Written at the end of every `trainlab search` (running the same command again on a finished
study trains nothing and writes it anew). Sections, in order:

* ``summary``: the slots by state (complete, pruned, failed), the retries of killed workers,
  the best trial's parameters and its single test score, saying that the test split was
  scored for that recipe only, once, after the search;
* ``hyperparameters``: the objective against each hyperparameter, on a log x axis for
  log-scale ranges (the decks' random-search scatter: which ranges to narrow next);
* ``history``: the objective by trial number with the best-so-far line;
* ``parallel``: parallel coordinates (Optuna's matplotlib plot) of the completed trials;
* ``importance``: parameter importances (fANOVA, Hutter et al. 2014, through Optuna); they
  need two completed trials at least, fewer are said in a sentence;
* ``trials``: every trial's number, slot, state, value and parameters.

Pruned trials are drawn as hollow grey markers at the last value they reported (the value
the pruner judged), never mixed with the completed trials; the best-so-far line and the
parallel coordinates use completed trials only.
"""

from __future__ import annotations

import html
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import optuna
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from optuna.distributions import BaseDistribution, CategoricalDistribution
from optuna.trial import FrozenTrial, TrialState

from trainlab.durable import write_text
from trainlab.report.html import image, page, section, table
from trainlab.report.probe_plots import png_bytes
from trainlab.study.search_spec import decode_value
from trainlab.study.search_state import RETRY_OF, SURPLUS_ATTR, Tally

if TYPE_CHECKING:
    from trainlab.study.search_report import BestResult

STUDY_FILE = "study.html"
STUDY_SECTIONS = ("summary", "hyperparameters", "history", "parallel", "importance", "trials")
COMPLETE, PRUNED, BEST = "tab:blue", "0.55", "tab:red"


@dataclass(frozen=True)
class Point:
    """A trial as the plots show it: its objective (a pruned trial's last reported value)."""

    number: int
    value: float
    pruned: bool
    params: dict[str, Any]


def points(trials: Sequence[FrozenTrial]) -> list[Point]:
    """The completed and pruned trials (surplus trials left out), by number."""
    out = []
    for t in sorted(trials, key=lambda t: t.number):
        if t.system_attrs.get(SURPLUS_ATTR):
            continue
        if t.state == TrialState.COMPLETE and t.value is not None:
            out.append(Point(t.number, float(t.value), False, t.params))
        elif t.state == TrialState.PRUNED and t.intermediate_values:
            last = t.intermediate_values[max(t.intermediate_values)]
            out.append(Point(t.number, float(last), True, t.params))
    return out


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _scatter(ax: Axes, xs: list[Any], ys: list[float], pruned: bool) -> None:
    """Completed trials as filled blue dots, pruned ones as hollow grey circles."""
    if not xs:
        return
    if pruned:
        ax.scatter(xs, ys, s=30, facecolors="none", edgecolors=PRUNED,
                   label="pruned (last reported value)")  # fmt: skip
    else:
        ax.scatter(xs, ys, s=22, color=COMPLETE, label="complete")


def _categories(dist: CategoricalDistribution) -> list[str]:
    return [str(decode_value(c)) for c in dist.choices]


def _param_axes(ax: Axes, pts: list[Point], name: str, dist: BaseDistribution,
                objective: str) -> None:  # fmt: skip
    """One panel: the objective against `name` (log x for log ranges, ticks for choices)."""
    shown = [p for p in pts if name in p.params]
    for pruned in (False, True):
        chosen = [p for p in shown if p.pruned is pruned]
        xs = [_x(dist, p.params[name]) for p in chosen]
        _scatter(ax, xs, [p.value for p in chosen], pruned)
    if isinstance(dist, CategoricalDistribution):
        ax.set_xticks(range(len(dist.choices)), _categories(dist), fontsize=8)
    elif getattr(dist, "log", False):
        ax.set_xscale("log")
    ax.set_xlabel(name + (" (log scale)" if getattr(dist, "log", False) else ""))
    ax.set_ylabel(objective)
    ax.grid(alpha=0.3)


def _x(dist: BaseDistribution, value: Any) -> Any:
    """The x position of a value: its index for a categorical, else the value."""
    if isinstance(dist, CategoricalDistribution):
        return dist.choices.index(value)
    return value


def hyperparameter_plot(pts: list[Point], distributions: dict[str, BaseDistribution],
                        objective: str) -> bytes | None:  # fmt: skip
    """The objective against each hyperparameter, three panels a row."""
    if not pts or not distributions:
        return None
    names = list(distributions)
    rows, cols = -(-len(names) // 3), min(3, len(names))
    fig = _figure(4.2 * cols, 3.3 * rows)
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    for ax, name in zip(axes, names, strict=False):
        _param_axes(ax, pts, name, distributions[name], objective)
    for ax in axes[len(names) :]:
        ax.set_visible(False)
    axes[0].legend(fontsize=8)
    return png_bytes(fig, dpi=90)


def history_plot(pts: list[Point], objective: str, maximize: bool) -> bytes | None:
    """The objective by trial number, pruned trials apart, and the best-so-far line."""
    if not pts:
        return None
    fig = _figure(9, 3.8)
    ax = fig.subplots()
    for pruned in (False, True):
        chosen = [p for p in pts if p.pruned is pruned]
        _scatter(ax, [p.number for p in chosen], [p.value for p in chosen], pruned)
    done = [p for p in pts if not p.pruned]
    if done:
        best = (np.maximum if maximize else np.minimum).accumulate([p.value for p in done])
        ax.step([p.number for p in done], best, where="post", color=BEST,
                label="best so far")  # fmt: skip
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("trial number")
    ax.set_ylabel(objective)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return png_bytes(fig, dpi=90)


def _optuna_png(plot: Any, study: optuna.Study, **kwargs: Any) -> bytes:
    """PNG bytes of one of Optuna's matplotlib plots. Its `plt.style.use("ggplot")` would
    restyle every later figure of the process (report.html's too): rc_context undoes it; the
    pyplot figure is closed after."""
    import matplotlib.pyplot as plt

    with plt.rc_context(), warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        warnings.simplefilter("ignore", UserWarning)  # an axis of one value: widened, fine
        fig = plot(study, **kwargs).figure
        try:
            fig.set_size_inches(9, 4.2)
            fig.tight_layout()
            return png_bytes(fig, dpi=90)
        finally:
            plt.close(fig)


def parallel_plot(study: optuna.Study, objective: str) -> bytes | None:
    """Optuna's parallel coordinates of the completed trials, or None with none."""
    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        return None
    from optuna.visualization.matplotlib import plot_parallel_coordinate

    return _optuna_png(plot_parallel_coordinate, study, target_name=objective)


def importance_body(study: optuna.Study, objective: str) -> str:
    """Optuna's fANOVA importances (seeded), or a sentence saying why there are none."""
    done = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    if done < 2:
        return (f'<p class="muted">Parameter importances need at least 2 completed trials; '
                f"this study has {done}.</p>")  # fmt: skip
    from optuna.importance import FanovaImportanceEvaluator
    from optuna.visualization.matplotlib import plot_param_importances

    try:
        png = _optuna_png(plot_param_importances, study, target_name=objective,
                          evaluator=FanovaImportanceEvaluator(seed=0))  # fmt: skip
    except (ValueError, RuntimeError) as err:  # e.g. no parameter shared by every trial
        return f'<p class="muted">No parameter importances: {html.escape(str(err))}</p>'
    note = (f'<p class="muted">fANOVA over the {done} completed trials: the share of the '
            f"objective's variance each hyperparameter explains (parameters every completed "
            "trial has).</p>")  # fmt: skip
    return note + image(png, "parameter importances")


def _summary(tally: Tally, trials: Sequence[FrozenTrial], objective: str,
             best: BestResult | None) -> str:  # fmt: skip
    """The slots by state, the best trial and its single test score."""
    retried = sum(1 for t in trials if RETRY_OF in t.system_attrs)
    counts = table(["trials", "count"], [
        ["planned", tally.budget], ["complete", tally.complete], ["pruned", tally.pruned],
        ["failed", tally.failed], ["running or waiting", tally.running + tally.waiting],
        ["retried after their worker died", retried],
    ])  # fmt: skip
    return section("summary", "Summary", counts + _best_body(tally, objective, best))


def _best_body(tally: Tally, objective: str, best: BestResult | None) -> str:
    if best is None:
        why = "no trial completed"
        if not tally.finished:
            why = f"the study is not finished ({tally.done} of {tally.budget} trials ended)"
        return (f'<p class="verdict">No best recipe yet: {why}. The test split is scored once '
                "every trial has ended, for the best recipe only.</p>")  # fmt: skip
    acc = "–" if best.test_acc is None else f"{100 * best.test_acc:.2f}%"
    return (
        f"<p><b>Best: trial {best.trial}</b> (slot {best.slot}), {html.escape(objective)} "
        f"{best.value:.4f}, recipe in best.yaml.</p>"
        f'<p class="ok">Test accuracy {acc}, test loss {best.test_loss:.4f}. The test split '
        f"was scored only for this best recipe, once, after the search "
        f"({html.escape(best.measured)}); every trial was trained, chosen and pruned with "
        f"the test split withheld, on the validation split alone.</p>"
    )


def _trials_table(trials: Sequence[FrozenTrial], objective: str) -> str:
    """Every trial (surplus left out): number, slot, state, value, retry of, parameters."""
    rows = [t for t in sorted(trials, key=lambda t: t.number)
            if not t.system_attrs.get(SURPLUS_ATTR)]  # fmt: skip
    names = list(dict.fromkeys(p for t in rows for p in t.params))
    body = [[t.number, t.user_attrs.get("slot"), t.state.name, t.value,
             t.system_attrs.get(RETRY_OF), *[_shown(t.params.get(n)) for n in names]]
            for t in rows]  # fmt: skip
    return table(["trial", "slot", "state", objective, "retry of", *names], body)


def _shown(value: Any) -> Any:
    return None if value is None else decode_value(value)


def _distributions(trials: Sequence[FrozenTrial]) -> dict[str, BaseDistribution]:
    """Each parameter's distribution, in the order trials first used them."""
    out: dict[str, BaseDistribution] = {}
    for t in sorted(trials, key=lambda t: t.number):
        for name, dist in t.distributions.items():
            out.setdefault(name, dist)
    return out


def build_study_html(study: optuna.Study, objective: str, tally: Tally,
                     best: BestResult | None) -> str:  # fmt: skip
    """The HTML text of the study's page (see the module docstring)."""
    trials = study.get_trials(deepcopy=False)
    pts, maximize = points(trials), study.direction == optuna.study.StudyDirection.MAXIMIZE
    hyper = hyperparameter_plot(pts, _distributions(trials), objective)
    parallel = parallel_plot(study, objective)
    sections = [
        _summary(tally, trials, objective, best),
        section("hyperparameters", f"{objective} against each hyperparameter",
                image(hyper, f"{objective} against each hyperparameter")),
        section("history", "Optimization history",
                image(history_plot(pts, objective, maximize), "optimization history")),
        section("parallel", "Parallel coordinates",
                image(parallel, "parallel coordinates of the completed trials")),
        section("importance", "Parameter importances", importance_body(study, objective)),
        section("trials", "Trials", _trials_table(trials, objective)),
    ]  # fmt: skip
    return page(f"trainlab search {study.study_name}", STUDY_SECTIONS, sections)


def write_study_html(study: optuna.Study, study_dir: Path, objective: str, tally: Tally,
                     best: BestResult | None) -> Path:  # fmt: skip
    """Write `study_dir/study.html` and return its path."""
    path = Path(study_dir) / STUDY_FILE
    write_text(path, build_study_html(study, objective, tally, best))
    return path
