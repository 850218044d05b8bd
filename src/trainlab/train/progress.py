"""A rich progress bar: epoch, step, loss, accuracy, learning rate, samples/s and ETA.

Cheap per step: no refresh thread (it competes with torch's threads for 2 cores); the bar is
redrawn from the training thread at most every `interval` seconds, and only then is a loss
tensor read."""

from __future__ import annotations

import time

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from trainlab.train.callbacks import Hooks, Signal
from trainlab.train.records import EpochRecord, StepRecord


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.2f}%"


class ProgressBar(Hooks):
    """Shows training progress on `console` (stderr by default) and a line per epoch."""

    def __init__(self, epochs: int, console: Console | None = None, interval: float = 0.5):
        self.epochs, self.interval = epochs, interval
        self.console = console or Console(stderr=True)
        self.progress = Progress(
            TextColumn("[bold]epoch {task.fields[epoch]}/{task.fields[epochs]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]} acc {task.fields[acc]} lr {task.fields[lr]}"),
            TextColumn("{task.fields[rate]} samples/s"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=self.console,
            auto_refresh=False,
            transient=False,
            disable=not self.console.is_terminal,  # logs get the per-epoch lines only
        )
        self.task = None
        self._last, self._seen, self._t0 = 0.0, 0, 0.0

    def on_fit_start(self, total_steps: int, start_step: int) -> None:
        self.progress.start()
        self.task = self.progress.add_task(
            "train", total=total_steps, completed=start_step, epoch=1, epochs=self.epochs,
            loss="-", acc="-", lr="-", rate="-",
        )  # fmt: skip
        self._t0 = time.perf_counter()

    def on_step_end(self, record: StepRecord) -> None:
        self._seen += record.size
        now = time.perf_counter()
        if now - self._last < self.interval:
            return
        acc = record.correct / record.size
        rate = self._seen / max(now - self._t0, 1e-9)
        self.progress.update(
            self.task, completed=record.step, epoch=record.epoch + 1, loss=f"{record.loss:.4f}",
            acc=_pct(acc), lr=f"{record.lr:.3g}", rate=f"{rate:,.0f}",
        )  # fmt: skip
        self.progress.refresh()
        self._last = now

    def on_epoch_end(self, record: EpochRecord) -> Signal:
        self.progress.update(self.task, completed=record.step)
        val = (
            "" if record.val_loss is None else f"  val {record.val_loss:.4f} {_pct(record.val_acc)}"
        )
        self.progress.console.print(
            f"epoch {record.epoch}/{self.epochs}  train {record.train_loss:.4f} "
            f"{_pct(record.train_acc)}{val}  {record.seconds:.1f} s  "
            f"{record.samples_per_s:,.0f}/s"
        )
        return None

    def on_fit_end(self, history: list[dict]) -> None:
        self.close()

    def close(self) -> None:
        """Draw the last state and stop the display; safe to call more than once."""
        if self.progress.live.is_started:
            self.progress.refresh()
            self.progress.stop()
