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

from rich.console import Console

from trainlab.data import kfold_splits
from trainlab.durable import write_text
from trainlab.run.config import Recipe, RecipeError, dump_recipe, load_recipe
from trainlab.run.experiment import load_bundle
from trainlab.run.runner import new_run_dir
from trainlab.study.compare import Job, JobsTask, preflight, run_or_read_back
from trainlab.study.engine import check_counts, run_to_end

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


def cv_task(recipe_file: Path, recipes: list[Recipe]) -> JobsTask:
    """Cross-validation's study: slot i trains fold i+1, one run (`compare.run_job`)."""
    jobs = [Job(r.name, (r,)) for r in recipes]
    fingerprint = "\n".join(r.model_dump_json() for r in recipes)
    return JobsTask("cv", (str(recipe_file), str(len(recipes))), jobs, fingerprint)


def cv_from_args(args: list[str]) -> JobsTask:
    """The task of a worker process: `cv RECIPE_FILE FOLDS` (see `cv_task`)."""
    path = Path(args[0])
    return cv_task(path, fold_recipes(load_recipe(path), int(args[1])))


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
        write_text(recipe_file, dump_recipe(recipe))
    say = print if console is None else lambda line: console.print(line, markup=False)
    run_to_end(cv_task(recipe_file, recipes), study, f"cv-{recipe.name}", folds,
               workers=workers, storage=storage, say=say,
               resume_hint=f"the same command with --study-dir {study} resumes it")  # fmt: skip
    results = []
    for i, r in enumerate(recipes):
        run = run_or_read_back(
            r, study / r.name
        )  # read back (trained again if its directory was lost)
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


def summarize(results: list[FoldResult]) -> str:
    """ "accuracy 97.10 ± 0.52 % over 5 folds (loss 0.1012 ± 0.0100)"."""
    losses = [r.val_loss for r in results]
    line = f"loss {statistics.fmean(losses):.4f} ± {statistics.stdev(losses):.4f}"
    accs = [r.val_acc for r in results if r.val_acc is not None]
    if accs:
        mean, std = 100 * statistics.fmean(accs), 100 * statistics.stdev(accs)
        line = f"accuracy {mean:.2f} ± {std:.2f} % over {len(results)} folds ({line})"
    return line
