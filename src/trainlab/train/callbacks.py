"""Callbacks: objects with a few named events. They receive records (data, not the trainer)
and stop training by returning STOP from `on_epoch_end`."""

from __future__ import annotations

from typing import Literal, Protocol

from trainlab.schedules import PlateauController
from trainlab.train.records import EpochRecord, StepRecord

STOP: Literal["stop"] = "stop"
Signal = Literal["stop"] | None


class Callback(Protocol):
    """The events of `fit`. Implement the ones you need; `Hooks` gives no-op defaults."""

    def on_fit_start(self, total_steps: int, start_step: int) -> None: ...
    def on_step_end(self, record: StepRecord) -> None: ...
    def on_epoch_end(self, record: EpochRecord) -> Signal: ...
    def on_fit_end(self, history: list[dict]) -> None: ...


class Hooks:
    """No-op implementations of every event, to inherit from."""

    def on_fit_start(self, total_steps: int, start_step: int) -> None:
        return None

    def on_step_end(self, record: StepRecord) -> None:
        return None

    def on_epoch_end(self, record: EpochRecord) -> Signal:
        return None

    def on_fit_end(self, history: list[dict]) -> None:
        return None


class PlateauOnMetric(Hooks):
    """Feed an epoch metric (validation loss by default) to a `PlateauController`."""

    def __init__(self, controller: PlateauController, metric: str = "val_loss") -> None:
        self.controller, self.metric = controller, metric

    def on_epoch_end(self, record: EpochRecord) -> Signal:
        value = getattr(record, self.metric)
        if value is not None:
            self.controller.observe(value)
        return None
