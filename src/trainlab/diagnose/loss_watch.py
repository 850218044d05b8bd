"""LossWatch: the few numbers about the training loss that say whether it diverged.

metrics.jsonl logs the loss every ``log_every`` steps, which can miss a run that blows up in
its first steps (lr 10 takes the loss from 2.3 to 1e6 in under five steps). This callback keeps
three numbers in constant memory: the loss at the first step, the first step whose loss exceeds
``factor`` times it, and the peak. Seed 000 (COMP541/CS231n): "start with a large learning
rate and divide by 2 until the loss does not diverge".
"""

from __future__ import annotations

import math
from typing import Any

from trainlab.train.callbacks import Hooks
from trainlab.train.records import StepRecord

__all__ = ["LossWatch"]


class LossWatch(Hooks):
    """Watch the per-step training loss for divergence (loss > ``factor`` × the first loss)."""

    def __init__(self, factor: float = 3.0) -> None:
        self.factor = factor
        self.first: tuple[int, float] | None = None
        self.peak: tuple[int, float] | None = None
        self.diverged_step: int | None = None
        self.last_step = 0

    def on_step_end(self, record: StepRecord) -> None:
        step, loss = record.step, record.loss
        self.last_step = step
        if not math.isfinite(loss):
            return
        if self.first is None:
            self.first = (step, loss)
        if self.peak is None or loss > self.peak[1]:
            self.peak = (step, loss)
        if self.diverged_step is None and loss > self.factor * abs(self.first[1]):
            self.diverged_step = step

    def state_dict(self) -> dict[str, Any]:
        """Everything watched so far, for checkpoints (a resumed run keeps the first loss)."""
        return {"first": self.first, "peak": self.peak, "diverged_step": self.diverged_step,
                "last_step": self.last_step}  # fmt: skip

    def load_state_dict(self, state: dict[str, Any]) -> None:
        first, peak = state["first"], state["peak"]
        self.first = None if first is None else (int(first[0]), float(first[1]))
        self.peak = None if peak is None else (int(peak[0]), float(peak[1]))
        self.diverged_step, self.last_step = state["diverged_step"], state["last_step"]

    def record(self) -> dict[str, Any] | None:
        """A metrics.jsonl line (``"kind": "loss_watch"``), or None before any step."""
        if self.first is None or self.peak is None:
            return None
        return {
            "kind": "loss_watch",
            "step": self.last_step,
            "first_step": self.first[0],
            "first_loss": self.first[1],
            "peak_step": self.peak[0],
            "peak_loss": self.peak[1],
            "factor": self.factor,
            "diverged_step": self.diverged_step,
        }
