"""Compare variants of one recipe over several seeds and tabulate mean ± std.

A comparison file names a base recipe, the seeds and the variants (each a set of `--set`
style overrides); every variant's recipe is validated before the first run starts:

    recipe: mnist1d-mlp             # a bundled recipe, or a path relative to this file
    seeds: [0, 1, 2]
    variants:
      sgd: {}
      sam: {optimizer.sam.policy: sam}
    sharpness: {examples: 1000}     # optional: top Hessian eigenvalue of each trained model
    surface: {grid: 11, range: 1.0} # optional: each variant's 2-D loss plane (first seed)
"""

from __future__ import annotations

import json
import statistics
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.pruners import BasePruner, NopPruner
from optuna.samplers import BaseSampler
from optuna.trial import Trial
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from rich.console import Console

from trainlab.durable import write_json, write_text
from trainlab.run.config import (
    Recipe,
    RecipeError,
    describe_error,
    override_recipe,
    read_yaml_mapping,
)
from trainlab.run.runner import RunResult, new_run_dir, resume_run, train_recipe
from trainlab.run.stacked import recipe_refusal, train_stacked
from trainlab.study.engine import (
    Plan,
    check_counts,
    run_errors_fail_the_trial,
    run_to_end,
    with_threads,
)
from trainlab.study.search_sampler import SlotSampler


class SharpnessSpec(BaseModel):
    """Measure each trained model's top Hessian eigenvalue (power iteration) on `examples`
    training examples drawn with `seed` (`trainlab.run.trained.run_sharpness`)."""

    model_config = ConfigDict(extra="forbid")

    examples: int = Field(default=1000, ge=1)
    max_iter: int = Field(default=50, ge=1)
    seed: int = 0


class SurfaceSpec(BaseModel):
    """Compute the 2-D training-loss plane of each variant's first-seed model on a `grid` ×
    `grid` grid over [−range, range]² and draw them side by side (`landscape.planes`)."""

    model_config = ConfigDict(extra="forbid")

    grid: int = Field(default=11, ge=2)
    range: float = Field(default=1.0, gt=0)
    examples: int = Field(default=256, ge=1)
    seed: int = 0


class CompareSpec(BaseModel):
    """The comparison file's schema."""

    model_config = ConfigDict(extra="forbid")

    name: str = "compare"
    recipe: str
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2], min_length=1)
    variants: dict[str, dict[str, Any]] = Field(min_length=1)
    sharpness: SharpnessSpec | None = None
    surface: SurfaceSpec | None = None


@dataclass(frozen=True)
class Row:
    """One finished run of one variant and seed."""

    variant: str
    seed: int
    test_acc: float | None
    test_loss: float
    train_acc: float | None
    train_seconds: float
    top_eigenvalue: float | None = None


def load_compare_spec(path: Path) -> tuple[CompareSpec, dict[str, list[Recipe]]]:
    """Read a comparison file and validate every (variant, seed) recipe before any run."""
    try:
        spec = CompareSpec.model_validate(read_yaml_mapping(path, "a comparison file"))
    except ValidationError as err:
        raise RecipeError(f"{path}: {describe_error(err.errors()[0])}") from None
    from trainlab.run.bundled import base_recipe_file

    try:
        base = read_yaml_mapping(base_recipe_file(spec.recipe, path))
    except RecipeError as err:
        raise RecipeError(f"{path}: field recipe: {err}") from None
    recipes = {}
    for name, overrides in spec.variants.items():
        sets = [f"{k}={json.dumps(v)}" for k, v in overrides.items()]
        recipes[name] = [_variant(base, sets, name, seed) for seed in spec.seeds]
    return spec, recipes


def _variant(base: dict, sets: list[str], name: str, seed: int) -> Recipe:
    try:
        return override_recipe(base, [*sets, f"seed={seed}", f"name={name}-seed{seed}"])
    except RecipeError as err:
        raise RecipeError(f"variant {name}: {err}") from None


def preflight(recipes: dict[str, list[Recipe]], what: str = "variant") -> None:
    """Build each variant (its first seed: seeds change only random draws) as a run would,
    data and probes included, so that a variant that cannot run fails before the first run
    trains — not after the variants before it have."""
    from trainlab.run.diagnosis import RunDiagnosis
    from trainlab.run.experiment import build

    for name, variant_recipes in recipes.items():
        try:
            RunDiagnosis(build(variant_recipes[0])).close()
        except RecipeError as err:
            raise RecipeError(f"{what} {name}: {err}") from None


def compare(
    spec: CompareSpec,
    recipes: dict[str, list[Recipe]],
    runs_dir: Path,
    console: Console,
    study: Path | None = None,
    *,
    path: Path | None = None,
    workers: int = 1,
    storage: str | None = None,
) -> tuple[Path, list[Row]]:
    """Run every variant and seed as a study on the engine (`trainlab.study.engine`: a slot
    per job of `plan_jobs`, `workers` processes when the comparison file's `path` is given);
    write results.json and table.md.

    Given the `study` directory of an earlier, interrupted comparison, finished runs are
    taken as recorded and unfinished ones resumed from their checkpoints."""
    check_counts(workers)
    preflight(recipes)
    if workers > 1 and path is None:
        raise RecipeError("compare: --workers > 1 needs the comparison file's path")
    if study is None:
        study = new_run_dir(Recipe(name=spec.name, runs_dir=str(runs_dir)))
    study.mkdir(parents=True, exist_ok=True)
    say = lambda line: console.print(line, markup=False, soft_wrap=True)  # noqa: E731
    task = compare_task(path, spec, recipes, say)
    run_to_end(task, study, spec.name, len(task.jobs), workers=workers, storage=storage, say=say,
               resume_hint=f"the same command with --study-dir {study} resumes it")  # fmt: skip
    rows = [_row(spec, name, r, run_or_read_back(r, study / r.name), console)
            for name, rs in recipes.items() for r in rs]  # fmt: skip
    write_json(study / "results.json", [asdict(r) for r in rows], indent=2)
    write_text(study / "table.md", format_table(rows, spec.seeds) + "\n")
    if spec.surface is not None:
        _planes(spec.surface, {name: study / rs[0].name for name, rs in recipes.items()}, study)
        console.print(f"loss planes side by side: {study / 'planes.png'}")
    return study, rows


def _row(spec: CompareSpec, name: str, recipe: Recipe, result: RunResult, console: Console) -> Row:
    """The table's row of one finished run (and its line on the console)."""
    row = Row(name, recipe.seed, result.test_acc, result.test_loss,
              result.metrics.get("train_acc"), result.train_seconds,
              _top_eigenvalue(spec.sharpness, result.run_dir))  # fmt: skip
    sharp = "" if row.top_eigenvalue is None else f"  λ_max {row.top_eigenvalue:.4g}"
    console.print(f"{name:<10} seed {recipe.seed}  test acc {_pct(row.test_acc)}{sharp}  "
                  f"{row.train_seconds:.1f} s")  # fmt: skip
    return row


@dataclass(frozen=True)
class Job:
    """Runs trained together in one slot: a stack of runs (`trainlab.run.stacked`) when
    there are several, else one run. `label` prefixes the job's console lines; `subdirs`
    are the runs' directories in the study directory (default: the runs' names)."""

    label: str
    recipes: tuple[Recipe, ...]
    subdirs: tuple[str, ...] = ()

    def dirs(self, study_dir: Path) -> list[Path]:
        return [study_dir / d for d in self.subdirs or [r.name for r in self.recipes]]


def plan_jobs(recipes: dict[str, list[Recipe]], say: Callable[[str], None] = print) -> list[Job]:
    """The comparison's jobs: every variant and seed in one stack when the variants differ
    only in what a stack lets differ (seed, lr, weight decay: an lr sweep); else each
    variant's seeds as one stack where the variant allows it (one `say` line when it does
    not) and each run alone otherwise."""
    everything = [r for rs in recipes.values() for r in rs]
    if len(recipes) > 1 and recipe_refusal(everything) is None:
        return [Job("all variants", tuple(everything))]
    jobs = []
    for name, variant_recipes in recipes.items():
        why = recipe_refusal(variant_recipes) if len(variant_recipes) > 1 else "one run only"
        if why is None:
            jobs.append(Job(f"{name:<10} seeds", tuple(variant_recipes)))
            continue
        if len(variant_recipes) > 1:
            say(f"{name:<10} seeds trained one by one: {why}")
        jobs += [Job(name, (r,)) for r in variant_recipes]
    return jobs


@dataclass(frozen=True)
class JobsTask:
    """A study whose slot k trains `jobs[k]` (`run_job`): a comparison's variants x seeds,
    an ensemble's members. `args` rebuild it in a worker process (`trainlab.study.worker`);
    `fingerprint_text` names the work, so that a study dir of other work is refused."""

    kind: str
    args: tuple[str, ...]
    jobs: list[Job]
    fingerprint_text: str
    direction = "maximize"

    def fingerprint(self) -> str:
        return self.fingerprint_text

    def worker_args(self) -> list[str]:
        return [self.kind, *self.args]

    def sampler(self, index: int) -> BaseSampler:
        return SlotSampler(0)  # nothing is sampled: the slot names the job

    def pruner(self) -> BasePruner:
        return NopPruner()

    def run(self, plan: Plan, trial: Trial, slot: int) -> float:
        """Train job `slot` (resume or read back runs a killed worker left); its mean test
        accuracy (0 without one)."""
        job = self.jobs[slot]
        trial.set_user_attr("job", job.label.strip())
        with run_errors_fail_the_trial():
            results = run_job(job, plan.study_dir, plan.threads)
        accs = [r.test_acc for r in results if r.test_acc is not None]
        return statistics.fmean(accs) if accs else 0.0

    def best_text(self, study: optuna.Study) -> str:
        return f"{len(self.jobs)} job(s) of {sum(len(j.recipes) for j in self.jobs)} runs"


def compare_task(
    path: Path | None, spec: CompareSpec, recipes: dict[str, list[Recipe]], say: Callable
) -> JobsTask:
    """A comparison's study: slot k trains job k of `plan_jobs` into STUDY_DIR/RUN_NAME."""
    args = () if path is None else (str(path),)
    return JobsTask("compare", args, plan_jobs(recipes, say), spec.model_dump_json())


def run_job(job: Job, study_dir: Path, threads: int | None = None) -> list[RunResult]:
    """Train a job's runs as one stack when none has started (and the stack is allowed),
    else each run alone: trained, resumed or read back."""
    recipes = [r if r.train.threads is not None else with_threads(r, threads) for r in job.recipes]
    dirs = job.dirs(study_dir)
    if len(recipes) > 1 and not any(d.exists() for d in dirs):
        say = lambda line: print(f"{job.label} {line}", file=sys.stderr, flush=True)  # noqa: E731
        results = train_stacked(recipes, dirs, say=say)
        if results is not None:
            return results
    return [run_or_read_back(r, d) for r, d in zip(recipes, dirs, strict=True)]


def compare_from_args(args: list[str]) -> JobsTask:
    """The task of a worker process: `compare SPEC` (see `compare_task`)."""
    path = Path(args[0])
    spec, recipes = load_compare_spec(path)
    return compare_task(path, spec, recipes, say=lambda line: None)


def run_or_read_back(recipe: Recipe, run_dir: Path) -> RunResult:
    """Train `recipe` in `run_dir`, resume it there, or read back its recorded result."""
    if (run_dir / "recipe.yaml").is_file():
        return resume_run(run_dir, quiet=True)
    return train_recipe(recipe, quiet=True, run_dir=run_dir)


def _planes(spec: SurfaceSpec, run_dirs: dict[str, Path], study: Path) -> None:
    from trainlab.run.planes import plot_planes, run_plane

    surfaces = {
        name: run_plane(run_dir, spec.grid, spec.range, spec.examples, spec.seed)
        for name, run_dir in run_dirs.items()
    }
    plot_planes(surfaces, study / "planes.png")


def _top_eigenvalue(spec: SharpnessSpec | None, run_dir: Path) -> float | None:
    if spec is None:
        return None
    from trainlab.run.trained import run_sharpness

    return run_sharpness(run_dir, spec.examples, spec.max_iter, spec.seed).top_eigenvalue


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.2f}%"


def _mean_std(values: list[float]) -> str:
    if not values:
        return "-"
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{100 * statistics.fmean(values):.2f} ± {100 * std:.2f}"


def _plain_mean_std(values: list[float]) -> str:
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.4g} ± {std:.2g}"


def format_table(rows: list[Row], seeds: list[int]) -> str:
    """Markdown: per variant, test and final train accuracy (mean ± std over seeds, in %), the
    mean training time and, when measured, the top Hessian eigenvalue (mean ± std)."""
    sharp = any(r.top_eigenvalue is not None for r in rows)
    extra = (" top Hessian eigenvalue |", "---|") if sharp else ("", "")
    lines = [
        f"| variant | test acc % (n={len(seeds)}) | train acc % | train gap | train s |{extra[0]}",
        f"|---|---|---|---|---|{extra[1]}",
    ]
    for name in dict.fromkeys(r.variant for r in rows):
        mine = [r for r in rows if r.variant == name]
        test = [r.test_acc for r in mine if r.test_acc is not None]
        train = [r.train_acc for r in mine if r.train_acc is not None]
        gap = [a - b for a, b in zip(train, test, strict=False)]
        secs = statistics.fmean(r.train_seconds for r in mine)
        line = (
            f"| {name} | {_mean_std(test)} | {_mean_std(train)} | {_mean_std(gap)} | {secs:.1f} |"
        )
        if sharp:
            eig = [r.top_eigenvalue for r in mine if r.top_eigenvalue is not None]
            line += f" {_plain_mean_std(eig) if eig else '-'} |"
        lines.append(line)
    return "\n".join(lines)
