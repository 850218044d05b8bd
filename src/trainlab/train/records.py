"""Frozen records the loop yields and hands to callbacks, and where a run stands."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class StepRecord:
    """One optimizer step: its mean loss, number of correct predictions and batch size."""

    epoch: int  # 0-based
    batch: int  # 0-based index within the epoch
    step: int  # global count of steps taken, 1 after the first step
    loss: float
    correct: int
    size: int
    lr: float


@dataclass(frozen=True, slots=True)
class EpochRecord:
    """The end of an epoch: mean training loss/accuracy and validation metrics (or None)."""

    epoch: int  # 1-based count of finished epochs
    step: int
    train_loss: float
    train_acc: float | None
    val_loss: float | None
    val_acc: float | None
    lr: float
    seconds: float
    samples_per_s: float

    def as_dict(self) -> dict:
        return {"kind": "epoch", **{k: getattr(self, k) for k in self.__slots__}}


@dataclass
class Position:
    """Where training stands: enough, with model and optimizer state, to resume exactly.

    `batch` is the next batch of `epoch` to run; the sums are the running totals of the
    current epoch, so a run resumed mid-epoch reports the same epoch means."""

    epoch: int = 0
    batch: int = 0
    step: int = 0
    loss_sum: float = 0.0
    correct: int = 0
    seen: int = 0
    seconds: float = 0.0  # training wall time so far, across resumes
    history: list[dict] = field(default_factory=list)  # EpochRecord.as_dict() per epoch

    def state_dict(self) -> dict:
        return dict(vars(self))

    @classmethod
    def from_state_dict(cls, state: dict) -> Position:
        return cls(**state)
