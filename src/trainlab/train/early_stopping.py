"""Early stopping (Prechelt 1998; Goodfellow et al. 2016, sec. 7.8): stop when a monitored
metric has not improved by `min_delta` for `patience` epochs, and restore the best weights."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from trainlab.train.callbacks import STOP, Hooks, Signal
from trainlab.train.records import EpochRecord


class EarlyStopping(Hooks):
    """Watch `monitor` (an EpochRecord field, e.g. "val_loss") each epoch; an epoch improves
    when the value beats the best by more than `min_delta` ("min": lower is better, "max":
    higher). After `patience` epochs without improvement, signal STOP. At the end of `fit`
    the best epoch's weights are loaded back when `restore_best`. Epochs with no value (no
    validation split) are ignored. `state_dict` carries everything needed to resume."""

    def __init__(
        self,
        model: nn.Module,
        monitor: str = "val_loss",
        mode: Literal["min", "max"] = "min",
        patience: int = 10,
        min_delta: float = 0.0,
        restore_best: bool = True,
    ) -> None:
        self.model, self.monitor, self.mode = model, monitor, mode
        self.patience, self.min_delta, self.restore_best = patience, min_delta, restore_best
        self.best: float | None = None
        self.best_epoch = 0
        self.wait = 0
        self.best_weights: dict[str, torch.Tensor] | None = None
        self.stopped_epoch: int | None = None

    def _improved(self, value: float) -> bool:
        if self.best is None:
            return True
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def on_epoch_end(self, record: EpochRecord) -> Signal:
        value = getattr(record, self.monitor)
        if value is None:
            return None
        if self._improved(value):
            self.best, self.best_epoch, self.wait = value, record.epoch, 0
            if self.restore_best:
                self.best_weights = {
                    k: v.detach().clone() for k, v in self.model.state_dict().items()
                }
            return None
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = record.epoch
            return STOP
        return None

    def on_fit_end(self, history: list[dict]) -> None:
        if self.restore_best and self.best_weights is not None:
            self.model.load_state_dict(self.best_weights)

    def state_dict(self) -> dict:
        return {"best": self.best, "best_epoch": self.best_epoch, "wait": self.wait,
                "best_weights": self.best_weights, "stopped_epoch": self.stopped_epoch}  # fmt: skip

    def load_state_dict(self, state: dict) -> None:
        self.best, self.best_epoch, self.wait = state["best"], state["best_epoch"], state["wait"]
        self.best_weights, self.stopped_epoch = state["best_weights"], state["stopped_epoch"]
