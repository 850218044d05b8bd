"""Run a recipe in a run directory: build the experiment (all checked before any step), train
with checkpoints, evaluate on the test split once at the end, and resume interrupted runs."""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import torch
from rich.console import Console

from trainlab.data import TensorSplit
from trainlab.diagnose.verdicts import Verdict
from trainlab.durable import crash_point, read_json, write_json, write_text
from trainlab.report import plot_curves
from trainlab.run.config import Recipe, RecipeError, dump_recipe, load_recipe
from trainlab.run.diagnosis import RunDiagnosis, Unwatched, repair_finished
from trainlab.run.distributed import (
    check_world,
    data_parallel,
    describe_world,
    from_main,
    gather_rng,
    leave_world,
    restore_world,
    seed_rank,
    shard,
    world_entry,
    world_notes,
)
from trainlab.run.evaluation import final_metrics, save_final_weights
from trainlab.run.experiment import Experiment, build
from trainlab.run.run_list import mark_done, mark_running
from trainlab.train import (
    Callback,
    Interrupted,
    NonFiniteLossError,
    Position,
    evaluate,
    fit,
    latest_checkpoint,
    save_checkpoint,
)
from trainlab.train.checkpoint import restore, usable_checkpoint
from trainlab.train.compile import compile_model, uncompile
from trainlab.train.metrics_log import (
    MetricsLog,
    append_jsonl,
    count_lines,
    read_jsonl,
    truncate_after,
    truncate_to,
)
from trainlab.train.precision import resolve_precision
from trainlab.train.progress import ProgressBar
from trainlab.train.world import SINGLE, World

RESULT_FILE = "result.json"
METRICS_LINES = "metrics_lines"  # checkpoint entry: whole lines of metrics.jsonl at that step
WORLD_ENTRY = "world"  # checkpoint entry of a data-parallel run: its size and every rank's RNG


class RunStopped(RuntimeError):
    """A run that ended early (non-finite loss, Ctrl-C); one-line message, an exit code."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass
class RunResult:
    """What a finished run reports (test_loss None: a run trained with the test split
    withheld, e.g. a search trial)."""

    run_dir: Path
    test_loss: float | None
    test_acc: float | None
    train_seconds: float
    epochs: int
    history: list[dict]
    metrics: dict[str, Any] = field(default_factory=dict)  # evaluation.final_metrics
    experiment: Experiment | None = field(default=None, repr=False)  # what was trained
    verdicts: list[Verdict] = field(default_factory=list)
    recorded: bool = False  # read back from a finished run's result.json, not trained now

    def summary(self) -> dict[str, Any]:
        return {
            "run_dir": str(self.run_dir),
            "test_loss": self.test_loss,
            "test_acc": self.test_acc,
            "train_seconds": self.train_seconds,
            "epochs": self.epochs,
            **self.metrics,
        }


def new_run_dir(recipe: Recipe) -> Path:
    """`<runs_dir>/<timestamp>-<name>`, made unique."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    base = Path(recipe.runs_dir) / f"{stamp}-{recipe.name}"
    path, n = base, 1
    while path.exists():
        path, n = base.with_name(f"{base.name}-{n}"), n + 1
    path.mkdir(parents=True)
    return path


@contextmanager
def interrupt_on_signals() -> Iterator[threading.Event]:
    """An Event set by the first Ctrl-C (or SIGTERM); a second Ctrl-C interrupts at once."""
    event = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield event
        return

    def handler(signum: int, frame: Any) -> None:
        if event.is_set():
            raise KeyboardInterrupt
        event.set()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield event
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def train_recipe(
    recipe: Recipe,
    *,
    quiet: bool = False,
    console: Console | None = None,
    run_dir: Path | None = None,
    world: World = SINGLE,
    callbacks: Sequence[Callback] = (),
    test: bool = True,
) -> RunResult:
    """Build everything, create the run directory and train from the start. Across
    data-parallel ranks (`world`, see `trainlab.run.distributed`) every rank calls this; rank
    0 makes the run directory and writes its files. `callbacks` are added to the run's own
    (e.g. a search's pruning reports); `test=False` withholds the test split (no test
    metric is measured: a search trial, judged on validation only)."""
    with run_torch_state(recipe):
        exp = build(recipe)
        check_world(exp, world)
        # a bad probe layer name fails before the run directory
        diagnosis = RunDiagnosis(exp) if world.main else Unwatched()
        run_dir = from_main(world, lambda: _made(run_dir or new_run_dir(recipe)))
        if world.distributed:
            exp.notes["data_parallel"] = world_notes(world, recipe)
            if world.main and not quiet:
                line = describe_world(exp.notes["data_parallel"])
                (console or Console(stderr=True)).print(line, soft_wrap=True, markup=False)
        if world.main:
            write_text(run_dir / "recipe.yaml", dump_recipe(recipe))
            write_json(run_dir / "data.json", exp.notes)
        if exp.rng_state is not None:  # dropout continues from the seeded initialization
            torch.set_rng_state(exp.rng_state)
        seed_rank(world, recipe)
        return _train(exp, run_dir, Position(), quiet, console, diagnosis, world,
                      (callbacks, test))  # fmt: skip


def _made(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextmanager
def run_torch_state(recipe: Recipe) -> Iterator[None]:
    """The run's process-wide torch settings for the duration of a run, the caller's restored
    afterwards: the recipe's thread count (`train.threads`) and the global RNG, which
    dropout draws from and checkpoints save."""
    threads = torch.get_num_threads()
    with torch.random.fork_rng(devices=[]):
        if recipe.train.threads is not None:  # small models on a busy machine: fewer threads
            torch.set_num_threads(recipe.train.threads)
        try:
            yield
        finally:
            torch.set_num_threads(threads)


def resume_run(
    run_dir: Path,
    *,
    quiet: bool = False,
    console: Console | None = None,
    warn: Callable[[str], None] | None = None,
    world: World = SINGLE,
    callbacks: Sequence[Callback] = (),
    test: bool = True,
) -> RunResult:
    """Continue the run in `run_dir` from its last usable checkpoint (same recipe, same seed).

    Resuming is idempotent: a finished run is not trained again; its recorded result comes
    back (`RunResult.recorded`), with verdicts.json and report.html rebuilt if missing. What
    a kill can damage is repaired with one `warn` line each: a damaged newest checkpoint
    falls back to the one before it, damaged probes restart, and with no usable checkpoint
    the run starts over. Across data-parallel ranks rank 0 reads the run directory and sends
    the others the recipe and checkpoint; the world size must be the one the run had.
    `callbacks` and `test` as for `train_recipe`."""
    warn = warn or _warn
    recipe, recorded = from_main(world, lambda: _read_run(run_dir, warn))
    if recorded is not None:
        if world.main:
            recorded.verdicts = repair_finished(run_dir, recipe.diagnose.report, warn)
        return recorded
    with run_torch_state(recipe):
        exp = build(recipe)
        check_world(exp, world)
        diagnosis = RunDiagnosis(exp) if world.main else Unwatched()
        if world.distributed:
            exp.notes["data_parallel"] = world_notes(world, recipe)
        if world.main:
            write_json(run_dir / "data.json", exp.notes)  # a kill may have come before it
        if exp.rng_state is not None:  # as a fresh run, if there is no checkpoint to restore
            torch.set_rng_state(exp.rng_state)
        seed_rank(world, recipe)
        position = _restore_latest(exp, run_dir, warn, world)
        diagnosis.resume(run_dir, position.step, warn)
        return _train(exp, run_dir, position, quiet, console, diagnosis, world,
                      (callbacks, test))  # fmt: skip


def _read_run(run_dir: Path, warn: Callable[[str], None]) -> tuple[Recipe, RunResult | None]:
    """The recipe of the run in `run_dir`, and its recorded result if it has finished."""
    if not (run_dir / "recipe.yaml").is_file():
        raise RecipeError(f"--resume {run_dir}: not a run directory (no recipe.yaml)")
    return load_recipe(run_dir / "recipe.yaml"), recorded_result(run_dir, warn)


def _warn(line: str) -> None:
    """One `warning: ...` line on stderr, never wrapped (shown even with --quiet)."""
    print(f"warning: {line}", file=sys.stderr, flush=True)


def _restore_latest(
    exp: Experiment, run_dir: Path, warn: Callable[[str], None], world: World = SINGLE
) -> Position:
    """Load the newest usable checkpoint into the experiment and cut metrics.jsonl back to
    what it had then; with none, start over (saying so if there was anything to lose)."""
    metrics = run_dir / "metrics.jsonl"
    ckpt = from_main(world, lambda: usable_checkpoint(run_dir / "checkpoints", warn))
    if ckpt is None:
        if world.main and count_lines(metrics) > 0:
            warn(f"{run_dir}: no usable checkpoint; starting the run over")
        if world.main:
            truncate_to(metrics, 0)
        return Position()
    position, extra = restore(ckpt, exp.model, exp.optimizer)
    restore_world(world, extra.get(WORLD_ENTRY), str(run_dir))
    for name, component in exp.stateful.items():
        if name in extra:  # checkpoints from before a component existed lack its state
            component.load_state_dict(extra[name])
    if not world.main:
        return position
    lines = extra.get(METRICS_LINES)
    if lines is None:  # a checkpoint from before line counts were saved
        truncate_after(metrics, position.step)
    else:
        if count_lines(metrics) < lines:
            warn(f"metrics.jsonl has {count_lines(metrics)} lines, checkpoint {ckpt.path.name} "
                 f"expected {lines}: the missing rows cannot be regenerated")  # fmt: skip
        truncate_to(metrics, lines)
    return position


def recorded_result(run_dir: Path, warn: Callable[[str], None]) -> RunResult | None:
    """The result a finished run recorded in result.json, or None if it has not finished (a
    damaged result.json counts as not finished: the run is resumed to write it again)."""
    path = run_dir / RESULT_FILE
    if not path.is_file():
        return None
    summary = read_json(path)
    needed = ("test_loss", "test_acc", "train_seconds", "epochs")
    if not isinstance(summary, dict) or any(k not in summary for k in needed):
        warn(f"{path} is damaged: resuming to measure the result again")
        return None
    metrics = {k: v for k, v in summary.items() if k not in (*needed, "run_dir")}
    history = [r for r in read_jsonl(run_dir / "metrics.jsonl") if r.get("kind") == "epoch"]
    return RunResult(
        run_dir, summary["test_loss"], summary["test_acc"], summary["train_seconds"],
        summary["epochs"], history, metrics, recorded=True,
    )  # fmt: skip


def _train(
    exp: Experiment,
    run_dir: Path,
    position: Position,
    quiet: bool,
    console: Console | None,
    diagnosis: RunDiagnosis | Unwatched,
    world: World = SINGLE,
    extra: tuple[Sequence[Callback], bool] = ((), True),
) -> RunResult:
    cfg = exp.recipe.train
    main = world.main
    amp, why = resolve_precision(cfg.precision)
    if main and amp is not None and not quiet:
        (console or Console(stderr=True)).print(why, soft_wrap=True, markup=False)
    shard(exp, world)
    if cfg.compile:
        _compile(exp, run_dir, amp, main, quiet, console)
    net = data_parallel(exp, world)
    log = MetricsLog(run_dir / "metrics.jsonl", cfg.log_every) if main else None
    callbacks = [*_callbacks(exp, run_dir, diagnosis, log), *extra[0]]
    bar = None if quiet or not main else ProgressBar(cfg.epochs, console)
    if bar is not None:
        callbacks.append(bar)

    def checkpoint(pos: Position) -> None:
        rng = gather_rng(world)  # a collective: every rank comes here at the same steps
        if not main:
            return
        # probes first: rows past the checkpoint are dropped on resume, missing ones are lost
        diagnosis.save_probes(run_dir)
        extra = {name: component.state_dict() for name, component in exp.stateful.items()}
        extra[METRICS_LINES] = log.sync() if log is not None else 0
        if world.distributed:
            extra[WORLD_ENTRY] = world_entry(world, rng)
        keep = exp.recipe.train.keep_checkpoints
        save_checkpoint(run_dir / "checkpoints", exp.model, exp.optimizer, pos, extra, keep)

    def on_stop(err: BaseException) -> None:
        if isinstance(err, NonFiniteLossError) and main:
            line = {"kind": "nonfinite", "step": err.step, "value": str(err.value)}
            append_jsonl(run_dir / "metrics.jsonl", line)
            diagnosis.log_watch(run_dir)
        diagnosis.close()
        diagnosis.finish(run_dir, console=None if quiet else console)

    # The handlers stay on through the final evaluation and files: a Ctrl-C (or SIGTERM) that
    # comes after the last step lets the run finish its files and exit 0; a second one stops.
    with interrupt_on_signals() as interrupt, _running(run_dir, main):
        with (
            _stopped_runs(run_dir, on_stop, world),
            _closing(bar),
            _closing(diagnosis),
            _closing(log),
        ):
            position = fit(
                net, exp.loader, exp.optimizer, exp.loss_fn, epochs=cfg.epochs,
                schedule=exp.schedule, val=exp.val, callbacks=callbacks, position=position,
                checkpoint=checkpoint, checkpoint_every=cfg.checkpoint_every,
                checkpoint_every_steps=cfg.checkpoint_every_steps, interrupt=interrupt,
                eval_batch_size=exp.recipe.data.eval_batch_size,
                channels_last=cfg.channels_last, penalty=exp.penalty, augment=exp.augment,
                seed=exp.recipe.seed, adversary=exp.adversary, world=world,
                autocast=amp,
            )  # fmt: skip
        uncompile(exp.model)  # evaluation and the final files use the eager module
        diagnosis.log_watch(run_dir)
        result = finish_run(exp, run_dir, position, world, test=extra[1])
        result.verdicts = diagnosis.finish(run_dir)
    return result


def _compile(
    exp: Experiment,
    run_dir: Path,
    amp: torch.dtype | None,
    main: bool,
    quiet: bool,
    console: Console | None,
) -> None:
    """`train.compile`: compile the model on this rank's first batch; the compile time goes
    to metrics.jsonl (a ``compile`` line) and, with a failure, one warning line."""
    x, y = next(iter(exp.loader.epoch(0)))
    if exp.recipe.train.channels_last and x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    seconds, failure = compile_model(exp.model, x, y, exp.loss_fn, amp)
    if not main:
        return
    if failure is not None:
        _warn(f"train.compile: compiling failed ({failure}); training in eager mode")
    elif not quiet:
        line = f"compiled the model in {seconds:.1f} s (not counted as training time)"
        (console or Console(stderr=True)).print(line, soft_wrap=True, markup=False)
    append_jsonl(run_dir / "metrics.jsonl",
                 {"kind": "compile", "seconds": seconds, "fallback": failure})  # fmt: skip


def _callbacks(
    exp: Experiment,
    run_dir: Path,
    diagnosis: RunDiagnosis | Unwatched,
    log: MetricsLog | None,
) -> list:
    """The run's callbacks: the metrics log, the recipe's (plateau, early stopping, averages:
    on every rank, as they steer training), the diagnosis and TensorBoard (rank 0 only)."""
    callbacks: list = [] if log is None else [log]
    callbacks.extend(exp.callbacks)
    callbacks.extend(diagnosis.callbacks)
    if exp.recipe.train.tensorboard and log is not None:
        from trainlab.train.tensorboard import TensorBoardLogger

        board = TensorBoardLogger(run_dir / "tensorboard", model=exp.model,
                                  optimizer=exp.optimizer,
                                  hparams=exp.recipe.model_dump(mode="json"))  # fmt: skip
        callbacks.append(board)
        if diagnosis.probes is not None:
            diagnosis.probes.listeners.append(board.log_probe_row)
    return callbacks


@contextmanager
def _running(run_dir: Path, main: bool = True) -> Iterator[None]:
    """A RUNNING marker in `run_dir` while this process trains there (`trainlab runs`)."""
    if not main:
        yield
        return
    mark_running(run_dir)
    try:
        yield
    finally:
        mark_done(run_dir)


@contextmanager
def _closing(thing: ProgressBar | RunDiagnosis | MetricsLog | None) -> Iterator[None]:
    """Stop the progress display (restoring the terminal cursor) or remove the probes' hooks
    however training ends."""
    try:
        yield
    finally:
        if thing is not None:
            thing.close()


@contextmanager
def _stopped_runs(
    run_dir: Path, on_stop: Callable[[BaseException], None], world: World = SINGLE
) -> Iterator[None]:
    """Turn a non-finite loss or an interrupt into RunStopped naming what was kept, after
    `on_stop(err)` has saved what the run saw (probes, verdicts, report)."""
    try:
        yield
    except NonFiniteLossError as err:
        on_stop(err)
        kept = latest_checkpoint(run_dir / "checkpoints") or "none yet"
        raise RunStopped(f"{err}; last good checkpoint: {kept}", exit_code=3) from None
    except Interrupted as err:
        on_stop(err)
        raise RunStopped(
            f"{err}; checkpoint saved. Resume with: trainlab train --resume {run_dir}"
            + (f" --nproc {world.size}" if world.distributed else ""),
            exit_code=130,
        ) from None


def finish_run(
    exp: Experiment, run_dir: Path, position: Position, world: World = SINGLE, test: bool = True
) -> RunResult:
    """The one evaluation on the test split, the curves PNG and result.json (the last file of
    the training: a run with a readable result.json has finished). Across data-parallel ranks
    all share the test evaluation; rank 0 measures the rest and writes the files. With
    `test=False` the test split is withheld: test_loss and test_acc are None and no
    test metric is measured."""
    crash_point("final-evaluation")  # test hook: a kill during the one test evaluation
    test_loss, test_acc = None, None
    if test:
        test_loss, test_acc = evaluate(
            exp.model, exp.test, exp.loss_fn, exp.recipe.data.eval_batch_size,
            exp.recipe.train.channels_last, tuple(exp.recipe.train.tta), world,
        )  # fmt: skip
    else:
        exp.test = TensorSplit(exp.test.x[:0], exp.test.y[:0])  # final_metrics skips it
    leave_world(world)  # the last collective: rank 0 measures the rest alone
    if not world.main:
        return RunResult(run_dir, test_loss, test_acc, position.seconds, position.epoch,
                         position.history, experiment=exp)  # fmt: skip
    result = RunResult(
        run_dir, test_loss, test_acc, position.seconds, position.epoch, position.history,
        final_metrics(exp), exp,
    )  # fmt: skip
    save_final_weights(exp.model, run_dir)
    test_line = {"kind": "test", "step": position.step, "test_loss": test_loss}
    append_jsonl(run_dir / "metrics.jsonl", {**test_line, "test_acc": test_acc, **result.metrics})
    plot_curves(read_jsonl(run_dir / "metrics.jsonl"), run_dir / "curves.png", exp.recipe.name)
    write_json(run_dir / RESULT_FILE, result.summary(), indent=2)
    return result
