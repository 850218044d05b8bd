"""The `trainlab` command: a thin layer over the library, callable in-process via `main(argv)`.

Exit codes: 0 success, 1 bad input (one line on stderr), 2 usage error, 3 non-finite loss,
4 a sanity check failed (`trainlab check`), 130 interrupted (after saving a checkpoint)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from rich.console import Console

if TYPE_CHECKING:
    from torch.nn import Module
    from torch.optim import Optimizer

from trainlab.data import DATASETS, DataNotFoundError, UnknownDatasetError, dataset_info
from trainlab.run.config import Recipe, RecipeError, dump_recipe, load_recipe
from trainlab.run.distributed import from_main
from trainlab.run.evaluation import describe_metrics
from trainlab.run.runner import (
    RunResult,
    RunStopped,
    interrupt_on_signals,
    resume_run,
    train_recipe,
)
from trainlab.train.world import SINGLE, World


def _recipe_path(name: str | None) -> Path | None:
    """A recipe file path, or a bundled recipe's name (`mlp` -> trainlab/recipes/mlp.yaml);
    None for the built-in default recipe."""
    from trainlab.run.bundled import recipe_file

    return None if name is None else recipe_file(name)


def cmd_train(args: argparse.Namespace) -> int:
    err = Console(stderr=True)
    if args.dry_run:
        print(dump_recipe(_train_recipe_of(args)), end="")
        return 0
    if args.nproc is not None:
        return _launch(args)
    from trainlab.run.distributed import join_world

    world = join_world()  # a torchrun worker: join its ranks; else a single process
    if world.distributed:
        return _train_worker(args, world, err)
    ensemble = _ensemble_recipe(args)
    if ensemble is not None:
        return _train_ensemble(ensemble, args, err)
    if args.workers != 1:
        raise RecipeError(f"--workers {args.workers}: worker processes train an ensemble's "
                          "members; this recipe trains one model (see --nproc)")  # fmt: skip
    quiet = args.quiet or args.json
    if args.resume:
        result = resume_run(Path(args.resume), quiet=quiet, console=err)
    else:
        result = _train_or_resume(_train_recipe_of(args), args.run_dir, quiet, err)
    with interrupt_on_signals():  # the run is done: a Ctrl-C while printing changes nothing
        return _print_result(result, args.json)


def _launch(args: argparse.Namespace) -> int:
    """`--nproc N`: check the recipe, make the run directory, start N workers (torchrun)."""
    from trainlab.run.distributed import check_batch
    from trainlab.run.launch import launch_local
    from trainlab.run.runner import new_run_dir

    if args.nproc < 1:
        raise RecipeError(f"--nproc: {args.nproc}; expected a number of processes >= 1")
    recipe = _train_recipe_of(args)
    if _ensemble_recipe(args) is not None:
        raise RecipeError("--nproc: ensembles train as one process each; drop --nproc")
    check_batch(recipe, args.nproc)
    if args.resume:
        run_dir, where = Path(args.resume), ["--resume", args.resume]
    else:
        run_dir = Path(args.run_dir) if args.run_dir else new_run_dir(recipe)
        where = [
            "--run-dir",
            str(run_dir),
            *(["--runs-dir", args.runs_dir] if args.runs_dir else []),
        ]
        where += [a for s in args.set for a in ("--set", s)]
        where = [*([args.recipe] if args.recipe else []), *where]
    flags = [f for f, on in (("--quiet", args.quiet), ("--json", args.json)) if on]
    return launch_local([*where, *flags], args.nproc, run_dir)


def _train_worker(args: argparse.Namespace, world: World, err: Console) -> int:
    """One rank of a data-parallel run: train (or resume) with the others; rank 0 prints
    the result and the lines of a stopped run, the other ranks only exit with its code.

    The process ends with ``os._exit`` once its output is flushed: at interpreter teardown a
    gloo worker thread may still be joinable, and its destructor aborts the process
    ("terminate called without an active exception", about 1 run in 15 here)."""
    code = _worker_code(args, world, err)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _worker_code(args: argparse.Namespace, world: World, err: Console) -> int:
    from trainlab.run.distributed import leave_world
    from trainlab.run.launch import LAUNCHED

    quiet = args.quiet or args.json or not world.main
    try:
        if args.resume:
            result = resume_run(Path(args.resume), quiet=quiet, console=err, world=world)
        else:
            result = _train_or_resume(_train_recipe_of(args), args.run_dir, quiet, err, world)
        leave_world(world)
    except (RecipeError, RunStopped, DataNotFoundError, UnknownDatasetError) as error:
        if not world.main:
            return getattr(error, "exit_code", 1)
        return _error_code(error)
    except RuntimeError as error:  # gloo raises RuntimeError when a peer's socket closes
        if not _lost_peer(error):
            raise
        if LAUNCHED not in os.environ:  # under `--nproc` the launcher names the lost rank
            first = str(error).strip().splitlines()[0].split("] ", 1)[-1].split(". This is")[0]
            print(f"error: rank {world.rank}: lost contact with another process ({first})",
                  file=sys.stderr)  # fmt: skip
        return 1
    if not world.main:
        return 0
    with interrupt_on_signals():
        return _print_result(result, args.json)


def _lost_peer(error: RuntimeError) -> bool:
    """Whether a collective failed because another rank went away (or timed out)."""
    import torch.distributed as dist

    text = str(error)
    return isinstance(error, dist.DistError) or any(
        mark in text for mark in ("gloo", "Connection reset", "Connection closed", "Timed out")
    )


def _print_result(result: RunResult, as_json: bool) -> int:
    if as_json:
        print(json.dumps(result.summary()))
        return 0
    if result.recorded:
        print(f"{result.run_dir} had already finished; its recorded result:", file=sys.stderr)
    from trainlab.diagnose.verdicts import format_verdicts

    print(format_verdicts(result.verdicts))
    if describe_metrics(result.metrics):
        print(describe_metrics(result.metrics))
    acc = "n/a" if result.test_acc is None else f"{100 * result.test_acc:.2f}%"
    print(  # the last line: what a script reading our output looks for
        f"test accuracy {acc}  test loss {result.test_loss:.4f}  "
        f"({result.epochs} epochs, {result.train_seconds:.1f} s of training)  {result.run_dir}"
    )
    return 0


def _train_recipe_of(args: argparse.Namespace) -> Recipe:
    """The resolved recipe `train` would run: the run's own with --resume, else the recipe
    file or bundled name with the --set overrides and --runs-dir."""
    if args.resume:
        path = Path(args.resume) / "recipe.yaml"
        if not path.is_file():
            raise RecipeError(f"--resume {args.resume}: not a run directory (no recipe.yaml)")
        return load_recipe(path)
    sets = [*args.set, f"runs_dir={args.runs_dir}"] if args.runs_dir else args.set
    return load_recipe(_recipe_path(args.recipe), sets)


def _train_or_resume(
    recipe: Recipe, run_dir: str | None, quiet: bool, err: Console, world: World = SINGLE
) -> RunResult:
    """Train `recipe` in a new run directory, or in `run_dir`: started there if it is new,
    resumed (or its recorded result shown) if it already holds this recipe's run (rank 0
    decides for every rank of a data-parallel run)."""
    if run_dir is None:
        return train_recipe(recipe, quiet=quiet, console=err, world=world)
    path = Path(run_dir)
    if from_main(world, lambda: _holds_run(path, recipe)):
        return resume_run(path, quiet=quiet, console=err, world=world)
    return train_recipe(recipe, quiet=quiet, console=err, run_dir=path, world=world)


def _holds_run(path: Path, recipe: Recipe) -> bool:
    """Whether `path` holds a run of `recipe` (a run of another recipe is one error line)."""
    if path.exists() and not path.is_dir():
        raise RecipeError(f"--run-dir {path}: a file, expected a directory")
    if not (path / "recipe.yaml").is_file():
        return False
    if load_recipe(path / "recipe.yaml") != recipe:
        raise RecipeError(
            f"--run-dir {path} holds a run of another recipe; expected the same recipe "
            "(or --resume to continue it, or a new directory)"
        )
    return True


def cmd_runs(args: argparse.Namespace) -> int:
    from trainlab.run.run_list import describe_runs, find_runs, rows_json

    root = Path(args.dir)
    if not root.is_dir():
        raise RecipeError(f"runs: {root} is not a directory; expected a folder of runs")
    rows = find_runs(root)
    print(rows_json(rows) if args.json else describe_runs(rows))
    return 0


def cmd_curves(args: argparse.Namespace) -> int:
    from trainlab.durable import save_figure
    from trainlab.report.curves import overlay_figure
    from trainlab.train.metrics_log import read_jsonl

    runs = {}
    for run in map(Path, args.runs):
        if not (run / "metrics.jsonl").is_file():
            raise RecipeError(f"curves: {run} has no metrics.jsonl; expected a run directory")
        name = run.name if run.name not in runs else f"{run.name} ({len(runs) + 1})"
        runs[name] = read_jsonl(run / "metrics.jsonl")
    out = Path(args.out)
    save_figure(overlay_figure(runs, args.split), out, dpi=100)
    print(f"curves of {len(runs)} runs: {out}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from trainlab.run.load import load_run
    from trainlab.run.predict import SPLITS, load_inputs, predict, split_of

    run = load_run(args.run_dir)
    if args.input in SPLITS:
        split = split_of(run, args.input)
        result = predict(run, split.x)
        result = type(result)(result.pred, result.probs, result.logits, split.y)
        stem = args.input
    else:
        result = predict(run, load_inputs(run, Path(args.input)))
        stem = Path(args.input).stem
    out = Path(args.out) if args.out else run.run_dir / f"predictions-{stem}.npz"
    result.save(out)
    acc = "" if result.accuracy is None else f"; accuracy {100 * result.accuracy:.2f}%"
    print(f"{len(result.pred)} predictions ({run.weights} weights){acc}: {out}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from trainlab.report import NotARunError, write_report

    try:
        out = write_report(Path(args.run_dir), Path(args.out) if args.out else None)
    except NotARunError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"report: {out}")
    return 0


def _ensemble_recipe(args: argparse.Namespace) -> Recipe | None:
    """The recipe when it (or the run being resumed) trains an ensemble, else None."""
    from trainlab.study.ensemble import ensemble_recipe_at

    if args.resume:
        return ensemble_recipe_at(Path(args.resume))
    recipe = _train_recipe_of(args)
    return recipe if recipe.ensemble is not None else None


def _train_ensemble(recipe: Recipe, args: argparse.Namespace, err: Console) -> int:
    from trainlab.study.ensemble import describe_ensemble, run_ensemble

    run_dir = Path(args.resume) if args.resume else None
    result = run_ensemble(recipe, run_dir, quiet=args.quiet or args.json, console=err,
                          workers=args.workers)  # fmt: skip
    print(json.dumps(result.summary()) if args.json else describe_ensemble(result))
    return 0


def cmd_recipes(args: argparse.Namespace) -> int:
    from trainlab.run.bundled import bundled_recipes, bundled_studies, first_line

    print("recipes (trainlab train NAME):")
    print(f"  {'default':<20} built in: small CNN with BatchNorm on Fashion-MNIST")
    for name, path in bundled_recipes().items():
        print(f"  {name:<20} {first_line(path)}")
    print("studies (trainlab compare NAME, trainlab connect NAME):")
    for name, path in bundled_studies().items():
        print(f"  {name:<20} {first_line(path)}")
    return 0


def cmd_data(args: argparse.Namespace) -> int:
    names = DATASETS if args.action == "list" else [args.name]
    if args.action == "info" and not args.name:
        raise RecipeError("trainlab data info NAME: give a dataset name, e.g. fashion_mnist")
    for name in names:
        info = dataset_info(name)
        if args.action == "info":
            print(json.dumps(info, indent=2, default=str))
        else:
            shape = "x".join(str(d) for d in info["input_shape"])
            sizes = f"{info['train_size']}/{info['test_size']}"
            found = info.get("found", True)
            where = info["source"] if found else f"not found: {info['how_to_get']}"
            print(f"{name:<14} {info['task']:<15} {shape:<9} {sizes:<12} {where}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from trainlab.run.bundled import study_file
    from trainlab.study import compare, format_table, load_compare_spec

    path = study_file(args.file)
    spec, recipes = load_compare_spec(path)
    given = Path(args.study_dir) if args.study_dir else None
    study, rows = compare(spec, recipes, Path(args.runs_dir), Console(stderr=True), given,
                          path=path, workers=args.workers, storage=args.storage)  # fmt: skip
    print(format_table(rows, spec.seeds))
    print(f"table and per-run directories: {study}")
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    from trainlab.run.bundled import study_file
    from trainlab.study.search_stages import run_stages

    given = Path(args.study_dir) if args.study_dir else None
    options = {"study": args.study, "storage": args.storage, "workers": args.workers,
               "trials": args.trials, "study_dir": given}  # fmt: skip
    err = Console(stderr=True)
    say = lambda line: err.print(line, markup=False, soft_wrap=True)  # noqa: E731
    plan, tally, best = run_stages(study_file(args.spec), args.stages, options, say)
    if not tally.finished:
        raise RecipeError(f"search {plan.study_name}: {tally.done} of {tally.budget} trials "
                          f"ended ({tally.running} running elsewhere); run the same command "
                          "again to continue")  # fmt: skip
    print(best.line() if best else "no trial completed: no best recipe (see trials.csv)")
    print(f"trials.csv, best.yaml, study.html and per-trial run directories: {plan.study_dir}")
    return 0 if best else 1


def _study_options(parser: argparse.ArgumentParser) -> None:
    """--workers and --storage of a command that runs a study on the engine."""
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="worker processes on this machine, each with cores/N threads",
    )
    parser.add_argument("--storage", metavar="URL", help="shared database, e.g. postgresql://"
                        "... (default: a journal file in the study directory)")  # fmt: skip


def cmd_lab(args: argparse.Namespace) -> int:
    from trainlab.diagnose import run_lab
    from trainlab.lab.cli import COMMANDS, main

    rest = args.lab_args
    rest = rest[1:] if rest[:1] == ["--"] else rest
    if rest[:1] and rest[0] in COMMANDS:
        try:
            return main(rest)
        except ValueError as err:  # an unknown experiment name: one line, exit 1
            raise RecipeError(str(err)) from None
    return run_lab(rest)


def cmd_lr_find(args: argparse.Namespace) -> int:
    from trainlab.diagnose import lr_range_test, plot_lr_find
    from trainlab.run.experiment import build

    if not 0 < args.start < args.end:
        raise RecipeError(f"lr-find: expected 0 < --start < --end, got {args.start} and {args.end}")
    recipe = load_recipe(_recipe_path(args.recipe), args.set)
    if args.halving is not None:
        return _lr_halving(recipe, args.halving, args.steps)
    exp = build(recipe)
    result = lr_range_test(exp.model, exp.optimizer, exp.loss_fn, exp.loader,
                           start=args.start, end=args.end, steps=args.steps)  # fmt: skip
    out = Path(args.out or f"lr-find-{recipe.name}.png")
    plot_lr_find(result, out)
    print(result.describe())
    print(f"plot: {out}")
    return 0


def _lr_halving(recipe: Recipe, lr0: float, steps: int) -> int:
    """The lectures' search: from ``lr0``, halve until `steps` steps do not diverge; each try
    trains a fresh model of the recipe (add ``--set data.subset=N`` for "on a subset")."""
    from trainlab.diagnose import halving_search
    from trainlab.run.experiment import build

    if not lr0 > 0:
        raise RecipeError(f"lr-find: expected --halving LR0 > 0, got {lr0}")

    def fresh(lr: float) -> tuple[Module, Optimizer]:
        optimizer = recipe.optimizer.model_copy(update={"lr": lr})
        exp = build(recipe.model_copy(update={"optimizer": optimizer}))
        return exp.model, exp.optimizer

    exp = build(recipe)
    result = halving_search(fresh, exp.loss_fn, exp.loader, lr0, steps)
    print(result.describe())
    return 0 if result.lr is not None else 1


def cmd_check(args: argparse.Namespace) -> int:
    from trainlab.run.recipe_checks import run_checks

    recipe = load_recipe(_recipe_path(args.recipe), args.set)
    results = run_checks(recipe, examples=args.examples, max_steps=args.steps)
    if args.json:
        print(json.dumps([r.to_dict() for r in results]))
    else:
        print("\n".join(r.line() for r in results))
    return 4 if any(r.failed for r in results) else 0


def cmd_cv(args: argparse.Namespace) -> int:
    from trainlab.study.cv import cross_validate, summarize

    recipe = load_recipe(_recipe_path(args.recipe), args.set)
    given = Path(args.study_dir) if args.study_dir else None
    results = cross_validate(recipe, args.folds, Console(stderr=True), study=given,
                             workers=args.workers, storage=args.storage)  # fmt: skip
    print(summarize(results))
    return 0


def cmd_schedule_plot(args: argparse.Namespace) -> int:
    from trainlab.run.builders import build_schedule
    from trainlab.run.config import apply_overrides
    from trainlab.schedules import plot_schedule

    if args.action == "list":
        print(describe_schedules())
        return 0
    if args.name is None:
        raise RecipeError("schedule plot NAME: give a schedule name (trainlab schedule list)")
    if args.steps < 1:
        raise RecipeError(f"schedule plot --steps: expected an integer >= 1, got {args.steps}")
    kwargs = apply_overrides({}, args.set)
    schedule = build_schedule(args.name, kwargs, args.lr, args.steps)
    out = Path(args.out or f"schedule-{args.name}.png")
    plot_schedule(schedule, args.steps, out, title=args.name)
    last, top = schedule(args.steps - 1), max(schedule(t) for t in range(args.steps))
    print(f"{args.name}: lr(0)={schedule(0):.4g}  lr({args.steps - 1})={last:.4g}  max={top:.4g}"
          f"  plot: {out}")  # fmt: skip
    return 0


def describe_schedules() -> str:
    """Each schedule's name with its required and optional arguments; `lr` / `max_lr` and
    `total_steps` come from the optimizer and the run length when a recipe leaves them out."""
    from trainlab.names import arguments
    from trainlab.schedules import SCHEDULES

    filled = {"lr", "max_lr", "total_steps"}
    lines = ["schedule             required (besides lr and total_steps)   optional"]
    for name, factory in SCHEDULES.items():
        required, optional = arguments(factory)
        need = ", ".join(a for a in required if a not in filled) or "-"
        lines.append(f"{name:<20} {need:<38} {', '.join(optional) or '-'}")
    return "\n".join(lines)


def cmd_connect(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from trainlab.run.bundled import study_file
    from trainlab.run.config import describe_error
    from trainlab.run.connect import CurveOptions, connect_file, connect_runs, describe

    flags = {"curve": args.curve, "bends": args.bends, "epochs": args.epochs, "lr": args.lr,
             "points": args.points, "bn_examples": args.bn_examples,
             "train_examples": args.train_examples}  # fmt: skip
    overrides = {k: v for k, v in flags.items() if v is not None}

    def say(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    if len(args.inputs) == 1:
        summary = connect_file(study_file(args.inputs[0]), overrides, say)
    elif len(args.inputs) == 2:
        try:
            options = CurveOptions(**overrides)
        except ValidationError as err:
            raise RecipeError(f"connect: {describe_error(err.errors()[0])}") from None
        out = Path(args.out) if args.out else None
        summary = connect_runs(args.inputs[0], args.inputs[1], options, out, say)
    else:
        raise RecipeError("connect: expected RUN_A RUN_B, or one connect file (e.g. connect)")
    print(describe(summary))
    print(f"curve.npz, connect.png, connect.json: {summary['out_dir']}")
    return 0


def cmd_sharpness(args: argparse.Namespace) -> int:
    from trainlab.durable import write_json
    from trainlab.report import refresh_report
    from trainlab.run.trained import report_json, run_sharpness_report

    report = run_sharpness_report(
        args.run_dir, args.examples, seed=args.seed, max_iter=args.max_iter,
        trace_samples=args.trace_samples,
    )  # fmt: skip
    out = Path(args.run_dir) / "sharpness.json"
    write_json(out, report_json(report), indent=2)
    refresh_report(args.run_dir)
    print(report.summary())
    print(f"written: {out}")
    return 0


def cmd_fge(args: argparse.Namespace) -> int:
    from trainlab.run.fge import describe_fge, run_fge

    summary = run_fge(args.run_dir, cycles=args.cycles, cycle_epochs=args.cycle_epochs,
                      alpha1=args.lr1, alpha2=args.lr2)  # fmt: skip
    print(describe_fge(summary))
    print(f"written: {Path(args.run_dir) / 'fge.json'}")
    return 0


def cmd_landscape(args: argparse.Namespace) -> int:
    from trainlab.run.landscape import LandscapeOptions, describe, run_landscape

    mode = "interpolate" if args.interpolate else "line" if args.line else "plane"
    opts = LandscapeOptions(
        mode=mode, other=args.interpolate, grid=args.grid,
        span=tuple(args.range) if args.range else None, examples=args.examples,
        splits=tuple(args.split) if args.split else None, bn=args.bn,
        directions=args.directions, biasbn=args.biasbn, bn_stats=args.bn_stats, seed=args.seed,
        evaluator=args.evaluator, fresh=args.fresh, data_of=args.data_of,
    )  # fmt: skip

    print(describe(run_landscape(args.run_dir, opts, point_progress(sys.stderr))))
    return 0


def point_progress(stream: TextIO) -> Callable[[int, int], None]:
    """Progress of `done` of `total` points: one updating line on a terminal; in a log (not a
    terminal) one line per 10% instead of a fragment per point."""
    tty, shown = stream.isatty(), [-1]

    def progress(done: int, total: int) -> None:
        if tty:
            end = "\n" if done == total else ""
            print(f"\r  {done}/{total} points", end=end, file=stream, flush=True)
            return
        tenth = 10 * done // max(total, 1)
        if tenth > shown[0]:
            shown[0] = tenth
            print(f"  {done}/{total} points", file=stream, flush=True)

    return progress


def cmd_interpolate(args: argparse.Namespace) -> int:
    args.interpolate, args.run_dir = args.run_b, args.run_a
    return cmd_landscape(args)


def _landscape_options(q: argparse.ArgumentParser, grid: int) -> None:
    q.add_argument("--grid", type=int, default=grid, help=f"points per axis (default {grid})")
    q.add_argument("--range", type=float, nargs="+", metavar="V",
                   help="R for [-R, R], or LO HI (default -1 1; interpolate -0.5 1.5)")  # fmt: skip
    q.add_argument("--examples", type=int, default=1000, help="examples per split")
    q.add_argument("--split", nargs="+", choices=["train", "val", "test"],
                   help="default: test for a plane, train and test for 1-D curves")  # fmt: skip
    q.add_argument("--bn", choices=["eval", "recompute"], default="eval",
                   help="BatchNorm: running statistics, or re-estimated at each point")  # fmt: skip
    q.add_argument("--evaluator", choices=["auto", "vmap", "loop"], default="auto")
    q.add_argument("--fresh", action="store_true", help="recompute instead of resuming")
    q.add_argument("--seed", type=int, default=0, help="seed of directions and example subsets")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="trainlab", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train a recipe (default: CNN on Fashion-MNIST)")
    t.add_argument("recipe", nargs="?", help="recipe YAML file or bundled name (trainlab recipes)")
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a recipe field, e.g. --set optimizer.lr=0.05")  # fmt: skip
    t.add_argument("--resume", metavar="RUN_DIR",
                   help="continue an interrupted run from its last usable checkpoint; on a "
                   "finished run, print its recorded result and exit 0")  # fmt: skip
    t.add_argument("--run-dir", metavar="DIR",
                   help="train in DIR: start there if new, else resume the run it holds. "
                   "For a job scheduler (SLURM --requeue, spot instances): launch the same "
                   "command, e.g. `trainlab train R.yaml --run-dir runs/job42 --quiet`, "
                   "every time; a killed run continues, a finished one exits 0")  # fmt: skip
    t.add_argument("--runs-dir", metavar="DIR", help="where new run directories go (default: "
                   "the recipe's runs_dir, `runs`)")  # fmt: skip
    t.add_argument("--dry-run", action="store_true",
                   help="print the resolved recipe (YAML, every default) and exit")  # fmt: skip
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.add_argument("--json", action="store_true", help="print the result as one JSON line")
    t.add_argument("--nproc", type=int, metavar="N",
                   help="data parallel: train in N local processes (torchrun, gloo on CPU); "
                   "data.batch_size is the global batch. Many machines: run `torchrun ... -m "
                   "trainlab.cli train` on each (README)")  # fmt: skip
    t.add_argument("--workers", type=int, default=1, metavar="N",
                   help="an ensemble's members on N processes (cores/N threads each)")  # fmt: skip
    t.set_defaults(func=cmd_train)
    ru = sub.add_parser("runs", help="list runs, newest first: status, epochs, accuracy")
    ru.add_argument("dir", nargs="?", default="runs", help="folder of runs (default: runs)")
    ru.add_argument("--json", action="store_true", help="one JSON list")
    ru.set_defaults(func=cmd_runs)
    cu = sub.add_parser("curves", help="overlay several runs' curves in one PNG")
    cu.add_argument("runs", nargs="+", metavar="RUN_DIR")
    cu.add_argument("--split", choices=["val", "train"], default="val", help="drawn solid")
    cu.add_argument("--out", default="curves.png", help="PNG path (default curves.png)")
    cu.set_defaults(func=cmd_curves)
    pr = sub.add_parser("predict", help="a trained run's predictions on new examples or a split")
    pr.add_argument("run_dir")
    pr.add_argument("input", help="a .npy/.pt file of examples (as the dataset gives them), "
                    "or train, val or test")  # fmt: skip
    pr.add_argument("--out", help="the .npz to write (default RUN_DIR/predictions-INPUT.npz)")
    pr.set_defaults(func=cmd_predict)
    r = sub.add_parser("recipes", help="list bundled recipes")
    r.set_defaults(func=cmd_recipes)
    d = sub.add_parser("data", help="datasets: list, or info NAME")
    d.add_argument("action", choices=["list", "info"])
    d.add_argument("name", nargs="?")
    d.set_defaults(func=cmd_data)
    c = sub.add_parser("compare", help="run recipe variants over seeds; table of mean ± std")
    c.add_argument(
        "file", help="comparison file or bundled name (trainlab recipes), e.g. compare-sam"
    )
    c.add_argument("--runs-dir", default="runs")
    c.add_argument("--study-dir", metavar="DIR",
                   help="use DIR for the study: a comparison killed part-way continues there "
                   "(finished runs kept, unfinished ones resumed)")  # fmt: skip
    _study_options(c)
    c.set_defaults(func=cmd_compare)
    se = sub.add_parser("search", help="hyperparameter search (Optuna): trials.csv, best.yaml")
    se.add_argument("spec", help="search file or bundled name, e.g. search-mnist1d")
    se.add_argument("--study", help="study name (default: the spec's name); the same name "
                    "continues the study")  # fmt: skip
    se.add_argument("--storage", metavar="URL", help="shared database, e.g. postgresql://"
                    "user:pw@host/db (default: a journal file in the study directory)")  # fmt: skip
    se.add_argument("--workers", type=int, default=1, help="worker processes on this machine")
    se.add_argument("--trials", type=int, help="the study's number of trials (default: spec)")
    se.add_argument("--stages", type=int, default=1, help="coarse to fine: after each stage, "
                    "search again in ranges narrowed around its 5 best trials")  # fmt: skip
    se.add_argument("--study-dir", metavar="DIR",
                    help="study directory (default: RUNS_DIR/search-NAME)")  # fmt: skip
    se.set_defaults(func=cmd_search)
    lab = sub.add_parser("lab", add_help=False,
                         help="the decks' claims measured: list | run NAME | all [--quick] | "
                         "double-descent [--epochwise]; "
                         "activation-stats")  # fmt: skip
    lab.add_argument("lab_args", nargs=argparse.REMAINDER)
    lab.set_defaults(func=cmd_lab)
    f = sub.add_parser("lr-find", help="learning-rate range test (Smith 2017) of a recipe")
    f.add_argument("recipe", nargs="?", help="recipe YAML file or bundled name")
    f.add_argument("--start", type=float, default=1e-7)
    f.add_argument("--end", type=float, default=10.0)
    f.add_argument("--steps", type=int, default=100, help="steps of the test (of each try)")
    f.add_argument("--halving", type=float, metavar="LR0",
                   help="the lectures' search instead: start at LR0, halve until --steps steps "
                   "do not diverge (with --set data.subset=N: on a subset)")  # fmt: skip
    f.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    f.add_argument("--out", help="PNG path (default lr-find-NAME.png)")
    f.set_defaults(func=cmd_lr_find)
    ck = sub.add_parser("check", help="sanity checks of a recipe (exit 4 if one fails)")
    ck.add_argument("recipe", nargs="?", help="recipe YAML file or bundled name")
    ck.add_argument("--examples", type=int, default=20, help="tiny subset to overfit")
    ck.add_argument("--steps", type=int, default=300, help="step budget to overfit it")
    ck.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ck.add_argument("--json", action="store_true", help="print the results as one JSON list")
    ck.set_defaults(func=cmd_check)
    v = sub.add_parser("cv", help="k-fold cross-validation of a recipe (mean ± std)")
    v.add_argument("recipe", nargs="?", help="recipe YAML file or bundled name")
    v.add_argument("--folds", type=int, default=5)
    v.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    _study_options(v)
    v.add_argument("--study-dir", metavar="DIR", help="the study's directory (default: a new "
                   "one under the recipe's runs_dir); a killed cv continues there")  # fmt: skip
    v.set_defaults(func=cmd_cv)
    s = sub.add_parser("schedule", help="plot a learning-rate schedule, or list them",
                       epilog="trainlab schedule list: every name with its arguments")  # fmt: skip
    s.add_argument("action", choices=["plot", "list"])
    s.add_argument("name", nargs="?", help="schedule name, e.g. one_cycle, cosine, sgdr")
    s.add_argument("--steps", type=int, default=1000)
    s.add_argument("--lr", type=float, default=0.1, help="lr (or max_lr) if not --set")
    s.add_argument("--set", action="append", default=[], metavar="ARG=VALUE")
    s.add_argument("--out", help="PNG path (default schedule-NAME.png)")
    s.set_defaults(func=cmd_schedule_plot)
    rp = sub.add_parser("report", help="write a run's self-contained report.html")
    rp.add_argument("run_dir", help="a run directory (written by trainlab train)")
    rp.add_argument("--out", help="HTML path (default RUN_DIR/report.html)")
    rp.set_defaults(func=cmd_report)
    k = sub.add_parser("connect", help="mode connectivity: a low-loss curve between two runs")
    k.add_argument("inputs", nargs="+", metavar="RUN_A RUN_B | FILE",
                   help="two run directories, or a connect file (e.g. connect)")  # fmt: skip
    k.add_argument("--curve", choices=["bezier", "polychain"])
    k.add_argument("--bends", type=int)
    k.add_argument("--epochs", type=int, help="epochs of curve training")
    k.add_argument("--lr", type=float)
    k.add_argument("--points", type=int, help="evaluation points along t (default 61)")
    k.add_argument("--bn-examples", type=int, help="training examples for BatchNorm statistics")
    k.add_argument("--train-examples", type=int, help="training examples for the train loss")
    k.add_argument("--out", help="output directory (RUN_A RUN_B only)")
    k.set_defaults(func=cmd_connect)
    h = sub.add_parser("sharpness", help="top Hessian eigenvalue, trace, SAM sharpness of a run")
    h.add_argument("run_dir")
    h.add_argument("--examples", type=int, default=1000, help="per subset (two disjoint subsets)")
    h.add_argument("--max-iter", type=int, default=50, help="power iterations")
    h.add_argument("--trace-samples", type=int, default=20, help="Hutchinson vectors")
    h.add_argument("--seed", type=int, default=0)
    h.set_defaults(func=cmd_sharpness)
    g = sub.add_parser("fge", help="fast geometric ensemble from a trained run (Garipov 2018)")
    g.add_argument("run_dir")
    g.add_argument("--cycles", type=int, default=4, help="number of cycles (= snapshots)")
    g.add_argument("--cycle-epochs", type=int, default=2, help="epochs per cycle")
    g.add_argument("--lr1", type=float, default=0.05, help="lr at the cycle ends (alpha1)")
    g.add_argument("--lr2", type=float, default=0.0005, help="lr at snapshots (alpha2)")
    g.set_defaults(func=cmd_fge)
    ls = sub.add_parser("landscape", help="loss plane/line around a run, or to another run")
    ls.add_argument("run_dir")
    kind = ls.add_mutually_exclusive_group()
    kind.add_argument("--plane", action="store_true", help="2-D plane (the default)")
    kind.add_argument("--line", action="store_true", help="1-D line along one direction")
    kind.add_argument("--interpolate", metavar="OTHER_RUN", help="1-D segment to another run")
    ls.add_argument("--directions", choices=["filter", "random", "pca"], default="filter",
                    help="filter-normalized Gaussian (Li et al. 2018), raw Gaussian, or PCA "
                    "of the checkpoints")  # fmt: skip
    ls.add_argument("--biasbn", choices=["ignore", "filter"], default="ignore",
                    help="biases and norm parameters: fixed, or normalized and moved")  # fmt: skip
    ls.add_argument("--bn-stats", action="store_true",
                    help="move BatchNorm statistics too (with --biasbn filter)")  # fmt: skip
    _landscape_options(ls, 21)
    ls.set_defaults(func=cmd_landscape, data_of=None)
    ip = sub.add_parser("interpolate", help="loss and accuracy on (1-a) A + a B, a in [-0.5, 1.5]")
    ip.add_argument("run_a")
    ip.add_argument("run_b")
    _landscape_options(ip, 41)
    ip.add_argument("--data-of", choices=["A", "B"],
                    help="score both models on this run's data (runs trained on different "
                    "data are refused otherwise)")  # fmt: skip
    ip.set_defaults(func=cmd_interpolate, line=False, directions="filter", biasbn="ignore",
                    bn_stats=False)  # fmt: skip
    return p


def printable(text: str) -> str:
    """`text` on one line: newlines, control characters and line separators that an error
    message may quote from a bad input are shown escaped (``\\x1e``)."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["lab"] and argv[1:2] and argv[1].startswith("-"):
        argv = ["lab", "--", *argv[1:]]  # argparse's REMAINDER would reject `lab --help`
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except (RecipeError, DataNotFoundError, UnknownDatasetError, RunStopped) as err:
        return _error_code(err)
    except KeyboardInterrupt:  # a second Ctrl-C: stop now; the last checkpoint is kept
        print("stopped: interrupted (the last checkpoint is kept; --resume continues)",
              file=sys.stderr)  # fmt: skip
        return 130


def _error_code(err: Exception) -> int:
    """Print the one line of a bad input or a stopped run; return its exit code."""
    if isinstance(err, RunStopped):
        print(f"stopped: {err}", file=sys.stderr)
        return err.exit_code
    print(f"error: {printable(str(err))}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
