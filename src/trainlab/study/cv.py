"""k-fold cross-validation of a recipe (`trainlab cv RECIPE --folds 5`): train on k−1 folds of
the training split, evaluate on the held-out fold, report mean ± std. The test split is not
used. Folds come from scikit-learn's (Stratified)KFold, seeded by the recipe.

A study on the engine (`trainlab.study.engine`): slot i trains fold i+1 as a normal run
directory, STUDY_DIR/NAME-foldI, whose recipe says `data.fold: {count: k, index: i}` (the
held-out fold stands in the test split's place), so folds run on `--workers` processes,
resume after a kill and continue with `--study-dir`."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.pruners import BasePruner, NopPruner
from optuna.samplers import BaseSampler
from optuna.trial import Trial
from rich.console import Console

from trainlab.data import kfold_splits
from trainlab.durable import write_text
from trainlab.run.config import Recipe, RecipeError, load_recipe
from trainlab.run.experiment import load_bundle
from trainlab.run.runner import new_run_dir
from trainlab.study.compare import preflight
from trainlab.study.engine import (
    Plan,
    check_counts,
    create_study,
    first_failure,
    run_study,
    threads_per_worker,
    train_or_resume,
    with_threads,
)
from trainlab.study.search_sampler import SlotSampler

RECIPE_FILE = "cv-recipe.yaml"  # the recipe the folds are made from, for worker processes


@dataclass(frozen=True)
class FoldResult:
    fold: int
    val_loss: float
    val_acc: float | None


def fold_recipes(recipe: Recipe, folds: int) -> list[Recipe]:
    """The recipe of each fold: no inner validation split (early stopping is idle), fold i
    held out."""
    raw = recipe.model_dump(mode="json")
    return [
        Recipe.model_validate({**raw, "name": f"{recipe.name}-fold{i + 1}",
                               "data": {**raw["data"], "val_fraction": 0,
                                        "fold": {"count": folds, "index": i}}})
        for i in range(folds)
    ]  # fmt: skip


@dataclass(frozen=True)
class CvTask:
    """Cross-validation's slots: slot i trains fold i+1."""

    recipe_file: Path
    recipes: list[Recipe]
    kind = "cv"
    direction = "maximize"

    def fingerprint(self) -> str:
        return "\n".join(r.model_dump_json() for r in self.recipes)

    def worker_args(self) -> list[str]:
        return ["cv", str(self.recipe_file), str(len(self.recipes))]

    def sampler(self, index: int) -> BaseSampler:
        return SlotSampler(0)  # nothing is sampled: the slot names the fold

    def pruner(self) -> BasePruner:
        return NopPruner()

    def run(self, plan: Plan, trial: Trial, slot: int) -> float:
        """Train fold `slot + 1` (or resume it); its held-out accuracy (or −loss)."""
        recipe = with_threads(self.recipes[slot], plan.threads)
        trial.set_user_attr("job", recipe.name)
        result = train_or_resume(recipe, plan.study_dir / recipe.name)
        return result.test_acc if result.test_acc is not None else -result.test_loss

    def best_text(self, study: optuna.Study) -> str:
        return f"{len(self.recipes)} folds"


def cv_from_args(args: list[str]) -> CvTask:
    """The task of a worker process: `cv RECIPE_FILE FOLDS` (see `CvTask.worker_args`)."""
    path = Path(args[0])
    return CvTask(path, fold_recipes(load_recipe(path), int(args[1])))


def cross_validate(
    recipe: Recipe,
    folds: int,
    console: Console | None = None,
    *,
    study: Path | None = None,
    workers: int = 1,
    storage: str | None = None,
) -> list[FoldResult]:
    """Train the recipe once per fold, as a study in `study` (default: a new directory under
    the recipe's runs_dir), and evaluate each model on its held-out fold."""
    check_counts(workers)
    _check_folds(recipe, folds)
    recipes = fold_recipes(recipe, folds)
    preflight({"1": recipes[:1]}, what="cv fold")
    study = study or new_run_dir(recipe.model_copy(update={"name": f"cv-{recipe.name}"}))
    study.mkdir(parents=True, exist_ok=True)
    recipe_file = study / RECIPE_FILE
    if not recipe_file.is_file():
        write_text(recipe_file, _yaml(recipe))
    task = CvTask(recipe_file, recipes)
    threads = None if workers == 1 else threads_per_worker(workers)
    plan = Plan(task, study, f"cv-{recipe.name}", storage, folds, workers, threads)
    create_study(plan)
    say = print if console is None else lambda line: console.print(line, markup=False)
    tally = run_study(plan, say)
    if tally.complete < folds:
        why = first_failure(plan) or f"{folds - tally.complete} of {folds} folds did not finish"
        raise RecipeError(f"cv: {why} (study: {study}; the same command with --study-dir "
                          f"{study} resumes it)")  # fmt: skip
    results = []
    for i, r in enumerate(recipes):
        run = train_or_resume(with_threads(r, threads), study / r.name)  # read back
        results.append(FoldResult(i + 1, run.test_loss, run.test_acc))
        if console is not None:
            shown = "-" if run.test_acc is None else f"{100 * run.test_acc:.2f}%"
            console.print(f"fold {i + 1}/{folds}  held-out loss {run.test_loss:.4f}  "
                          f"accuracy {shown}")  # fmt: skip
    return results


def _check_folds(recipe: Recipe, folds: int) -> None:
    """--folds against the training split, in one line, before any fold trains."""
    bundle = load_bundle(recipe)
    stratify = recipe.data.stratify and bundle.num_classes is not None
    try:
        kfold_splits(bundle.train, folds, seed=recipe.seed, stratify=stratify)
    except ValueError as err:
        raise RecipeError(f"--folds {folds}: {err}") from None


def _yaml(recipe: Recipe) -> str:
    import yaml

    return yaml.safe_dump(recipe.model_dump(mode="json"), sort_keys=False)


def summarize(results: list[FoldResult]) -> str:
    """ "accuracy 97.10 ± 0.52 % over 5 folds (loss 0.1012 ± 0.0100)"."""
    losses = [r.val_loss for r in results]
    line = f"loss {statistics.fmean(losses):.4f} ± {statistics.stdev(losses):.4f}"
    accs = [r.val_acc for r in results if r.val_acc is not None]
    if accs:
        mean, std = 100 * statistics.fmean(accs), 100 * statistics.stdev(accs)
        line = f"accuracy {mean:.2f} ± {std:.2f} % over {len(results)} folds ({line})"
    return line
