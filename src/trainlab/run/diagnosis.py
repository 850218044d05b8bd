"""What a run watches about itself and leaves in its directory: the recipe's probes
(probes.json), the loss watch (a ``loss_watch`` line in metrics.jsonl), the verdicts
(verdicts.json) and report.html.

CS231n lecture 6 (the seed-000 deck, "babysitting the learning process") asks to watch
activations, gradients and update ratios while training; this puts that on every run at a
cost measured by ``bench/probes.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console

from trainlab.diagnose.loss_watch import LossWatch
from trainlab.diagnose.probe_file import PROBES_FILE, merge_summaries, read_probes, save_probes
from trainlab.diagnose.probes import Probes
from trainlab.diagnose.verdicts import Verdict, find_verdicts, format_verdicts
from trainlab.durable import read_json, write_json
from trainlab.report import REPORT_FILE, write_report
from trainlab.run.config import RecipeError
from trainlab.run.experiment import Experiment
from trainlab.train.metrics_log import append_jsonl, read_jsonl

__all__ = [
    "VERDICTS_FILE",
    "RunDiagnosis",
    "Unwatched",
    "make_probes",
    "repair_finished",
    "write_verdicts",
]

VERDICTS_FILE = "verdicts.json"


def repair_finished(run_dir: Path, report: bool, warn: Callable[[str], None]) -> list[Verdict]:
    """A finished run's verdicts, rebuilding verdicts.json (and report.html when the recipe
    asks for one) if a kill or a user removed or damaged them; one ``warn`` line each."""
    rows = read_json(run_dir / VERDICTS_FILE)
    if isinstance(rows, list) and all(isinstance(r, dict) for r in rows):
        try:
            verdicts = [Verdict(**r) for r in rows]
        except TypeError:
            verdicts = None
    else:
        verdicts = None
    if verdicts is None:
        warn(f"{VERDICTS_FILE} is missing or damaged: rebuilt from metrics.jsonl and probes")
        summary = read_probes(run_dir / PROBES_FILE)
        verdicts = find_verdicts(read_jsonl(run_dir / "metrics.jsonl"), summary)
        write_json(run_dir / VERDICTS_FILE, [v.as_dict() for v in verdicts], indent=2, default=str)
    if report and not (run_dir / REPORT_FILE).is_file():
        warn(f"{REPORT_FILE} is missing: rebuilt")
        write_report(run_dir)
    return verdicts


def make_probes(exp: Experiment) -> Probes | None:
    """The recipe's probes on the experiment's model (None when ``diagnose.probes`` is off); a
    layer name that is not a module of the model is one RecipeError line."""
    cfg = exp.recipe.diagnose
    if not cfg.probes:
        return None
    try:
        return Probes(exp.model, every=cfg.interval, layers=cfg.layers, bins=cfg.bins)
    except ValueError as err:
        raise RecipeError(f"recipe field diagnose.layers: {err}") from None


class RunDiagnosis:
    """The probes and loss watch of one run. Build it right after the experiment (so a bad
    layer name fails before the run directory exists); the loss watch joins
    ``exp.stateful`` so it is checkpointed and a resumed run continues it."""

    def __init__(self, exp: Experiment) -> None:
        self.probes = make_probes(exp)
        self.watch = LossWatch()
        exp.stateful["loss_watch"] = self.watch
        self.write_html = exp.recipe.diagnose.report
        self.start_step = 0
        self._before: dict[str, Any] | None = None

    @property
    def callbacks(self) -> list[Any]:
        return [self.watch] if self.probes is None else [self.probes, self.watch]

    def resume(self, run_dir: Path, step: int, warn: Callable[[str], None] = print) -> None:
        """Continue from checkpoint ``step``: keep the probe rows saved up to it. A missing or
        damaged probes.json costs those rows (one ``warn`` line), not the run."""
        self.start_step, self._before = step, None
        if step == 0 or self.probes is None:
            return
        self._before = read_probes(run_dir / PROBES_FILE)
        if self._before is None:
            warn(f"{PROBES_FILE} is missing or damaged: the probes restart at step {step}")

    def save_probes(self, run_dir: Path) -> dict[str, Any] | None:
        """Write probes.json (called at every checkpoint and at the end); return the summary."""
        if self.probes is None:
            return None
        summary = self.probes.summary()
        if self._before is not None:
            summary = merge_summaries(self._before, summary, self.start_step)
        save_probes(summary, run_dir / PROBES_FILE)
        return summary

    def close(self) -> None:
        if self.probes is not None:
            self.probes.close()

    def log_watch(self, run_dir: Path) -> None:
        """Append the loss watch's line to metrics.jsonl (at the end of training, before the
        test line; not on an interrupt, as the resumed run continues the watch)."""
        line = self.watch.record()
        if line is not None:
            append_jsonl(run_dir / "metrics.jsonl", line)

    def finish(self, run_dir: Path, console: Console | None = None) -> list[Verdict]:
        """Save probes.json, verdicts.json and (if the recipe asks) report.html; print the
        verdicts on ``console``."""
        return write_verdicts(run_dir, self.save_probes(run_dir), self.write_html, console)


def write_verdicts(run_dir: Path, probes: dict[str, Any] | None, report: bool,
                   console: Console | None = None) -> list[Verdict]:  # fmt: skip
    """verdicts.json from metrics.jsonl (and the probes' summary, if any), printed on
    ``console``, and report.html if ``report``."""
    verdicts = find_verdicts(read_jsonl(run_dir / "metrics.jsonl"), probes)
    write_json(run_dir / VERDICTS_FILE, [v.as_dict() for v in verdicts], indent=2, default=str)
    if console is not None:
        console.print(format_verdicts(verdicts), markup=False, highlight=False)
    if report:
        write_report(run_dir)
    return verdicts


class Unwatched:
    """The diagnosis of a data-parallel rank other than 0: rank 0 watches the run and writes
    its files; this one does nothing (same methods as `RunDiagnosis`)."""

    probes = None
    callbacks: list[Any] = []

    def resume(self, run_dir: Path, step: int, warn: Callable[[str], None] = print) -> None:
        pass

    def save_probes(self, run_dir: Path) -> dict[str, Any] | None:
        return None

    def close(self) -> None:
        pass

    def log_watch(self, run_dir: Path) -> None:
        pass

    def finish(self, run_dir: Path, console: Console | None = None) -> list[Verdict]:
        return []
