"""A finished search's own files in its study directory:

* ``trials.csv``: one row per trial (retries included, surplus trials left out): number,
  slot, state, objective value, each parameter, the trial it retries, its run directory,
  and why it failed;
* ``best.yaml``: the best trial's recipe, exactly as its run recorded it (`trainlab train
  best.yaml` trains it again);
* ``study.html``: the study's pictures (`search_html`);
* ``best.json``: the best trial and its one test score. The test split is evaluated here only,
  for the best trial's saved model (its final weights, `model.safetensors`): every trial was
  trained and judged with the test split withheld, so the score the report quotes was never
  used to choose (CS231n: judge on validation, test once at the very end). Should the best
  trial's run directory be on another machine (a shared database), the best recipe is trained
  once more here instead.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from trainlab.durable import write_json, write_text
from trainlab.run.config import dump_recipe, load_recipe
from trainlab.study.search_html import write_study_html
from trainlab.study.search_spec import decode_value
from trainlab.study.search_state import RETRY_OF, SURPLUS_ATTR, Tally


@dataclass(frozen=True)
class BestResult:
    """The best trial, its objective value and its one test score."""

    trial: int
    slot: int
    objective: str
    value: float
    test_loss: float
    test_acc: float | None
    configurations: int  # slots ended (complete, pruned or failed)
    run_dir: str
    measured: str  # "saved model" or "trained again"

    def line(self) -> str:
        acc = "-" if self.test_acc is None else f"{100 * self.test_acc:.2f}%"
        return (f"best of {self.configurations} configurations: trial {self.trial} "
                f"{self.objective} {self.value:.4f}; test accuracy {acc}  test loss "
                f"{self.test_loss:.4f} (the test split scored once, for this recipe only; "
                f"{self.measured})")  # fmt: skip


def write_trials_csv(trials: list[FrozenTrial], objective: str, path: Path) -> Path:
    """trials.csv (see the module docstring)."""
    rows = [
        t for t in sorted(trials, key=lambda t: t.number) if not t.system_attrs.get(SURPLUS_ATTR)
    ]
    params = list(dict.fromkeys(p for t in rows for p in t.params))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["number", "slot", "state", objective, *params, "retry_of", "run_dir", "error"])
    for t in rows:
        writer.writerow([t.number, t.user_attrs.get("slot", ""), t.state.name,
                         "" if t.value is None else t.value,
                         *[decode_value(t.params.get(p, "")) for p in params],
                         t.system_attrs.get(RETRY_OF, ""), t.user_attrs.get("run_dir", ""),
                         t.user_attrs.get("error", "")])  # fmt: skip
    write_text(path, out.getvalue())
    return path


def best_trial(study: optuna.Study) -> FrozenTrial | None:
    """The study's best COMPLETE trial, or None."""
    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        return None
    return study.best_trial


def write_best(
    study: optuna.Study, study_dir: Path, objective: str, tally: Tally, score: bool = True
) -> BestResult | None:
    """best.yaml and best.json (see the module docstring); None with no completed trial.
    `score=False` (a coarse stage of a staged search) leaves the test split alone."""
    best = best_trial(study)
    if best is None:
        return None
    run_dir = Path(best.user_attrs["run_dir"])
    recipe = load_recipe(run_dir / "recipe.yaml") if (run_dir / "recipe.yaml").is_file() else None
    if recipe is None:
        raise FileNotFoundError(run_dir / "recipe.yaml")
    header = (f"# best of {tally.done} configurations of search {study.study_name}: {objective}"
              f" {best.value:.4f} (trial {best.number}); trainlab train best.yaml\n")  # fmt: skip
    write_text(study_dir / "best.yaml", header + dump_recipe(recipe))
    loss, acc, measured = float("nan"), None, "not scored: a coarse stage"
    if score:
        loss, acc, measured = _test_score(run_dir, study_dir)
    slot = int(best.user_attrs.get("slot", -1))
    result = BestResult(best.number, slot, objective, float(best.value), loss, acc,
                        tally.done, str(run_dir), measured)  # fmt: skip
    write_json(study_dir / "best.json", result.__dict__, indent=2)
    return result


def _test_score(run_dir: Path, study_dir: Path) -> tuple[float, float | None, str]:
    """The saved model's test loss and accuracy, or those of the recipe trained once more."""
    if (run_dir / "model.safetensors").is_file():
        from trainlab.run.load import load_run
        from trainlab.train import evaluate

        run = load_run(run_dir)
        r = run.recipe
        loss, acc = evaluate(run.model, run.test, run.experiment.loss_fn,
                             r.data.eval_batch_size, r.train.channels_last,
                             tuple(r.train.tta))  # fmt: skip
        return loss, acc, "the best trial's saved model"
    from trainlab.run.runner import train_recipe

    result = train_recipe(load_recipe(study_dir / "best.yaml"), quiet=True,
                          run_dir=study_dir / "best-retrained")  # fmt: skip
    return result.test_loss or 0.0, result.test_acc, "the best recipe trained again here"


def summary(tally: Tally) -> dict[str, Any]:
    """The tally as a JSON-ready dict."""
    return {**tally.__dict__, "done": tally.done}


def finish_search(
    study: optuna.Study, study_dir: Path, objective: str, tally: Tally, score: bool = True
) -> BestResult | None:
    """trials.csv and study.html always; best.yaml, best.json and (unless `score` is False)
    the test score once every slot ended."""
    write_trials_csv(study.get_trials(deepcopy=False), objective, study_dir / "trials.csv")
    write_json(study_dir / "tally.json", summary(tally), indent=2)
    best = write_best(study, study_dir, objective, tally, score) if tally.finished else None
    write_study_html(study, study_dir, objective, tally, best)
    return best
