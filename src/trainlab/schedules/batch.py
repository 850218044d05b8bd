"""Increase the batch size instead of decaying the rate (Smith, Kindermans, Ying & Le 2018).

SGD's noise scale is roughly ``lr * N / B``; dividing ``lr`` by ``k`` or multiplying ``B`` by
``k`` shrinks it alike, and the larger batch needs fewer, more parallel steps. A data loader
asks ``batch_size_schedule(...)(epoch)`` at the start of each epoch.
"""

from __future__ import annotations

from collections.abc import Callable

from trainlab.schedules._types import Schedule
from trainlab.schedules._validate import check_int, check_positive

__all__ = ["batch_size_lr", "batch_size_schedule"]


def _checked(where: str, base_batch: int, lr_schedule: Schedule, max_batch: int | None) -> float:
    check_int(where, "base_batch", base_batch, minimum=1)
    if max_batch is not None:
        check_int(where, "max_batch", max_batch, minimum=base_batch)
    if not callable(lr_schedule):
        raise ValueError(f"{where}: lr_schedule must be callable, got {lr_schedule!r}")
    return check_positive(where, "lr_schedule(0)", lr_schedule(0))


def batch_size_schedule(
    base_batch: int, lr_schedule: Schedule, max_batch: int | None = None
) -> Callable[[int], int]:
    """Batch size for epoch ``t``: ``B_t = min(round(base_batch * lr(0) / lr(t)), max_batch)``.

    ``lr_schedule`` is the decay one *would* have used (e.g. ``step_decay(0.1, 60, 0.2)`` gives
    the paper's 5x batch increases). Past ``max_batch`` the remaining decay must go to the rate:
    ``batch_size_lr`` gives that rate. Returns ints; ``t`` is 0-indexed.
    """
    lr0 = _checked("batch_size_schedule", base_batch, lr_schedule, max_batch)

    def schedule(epoch: int) -> int:
        lr = lr_schedule(epoch)
        if lr <= 0:
            raise ValueError(f"batch_size_schedule: lr_schedule({epoch}) must be > 0, got {lr}")
        size = max(round(base_batch * lr0 / lr), 1)
        return size if max_batch is None else min(size, max_batch)

    return schedule


def batch_size_lr(base_batch: int, lr_schedule: Schedule, max_batch: int | None = None) -> Schedule:
    """The rate to pair with ``batch_size_schedule``: ``lr'_t = lr(t) * B_t / base_batch``.

    Keeps ``lr'_t / B_t = lr(t) / base_batch``, the noise scale of the original decay: it stays
    at ``lr(0)`` while the batch grows (up to rounding of ``B_t``) and decays once ``B_t`` is
    capped at ``max_batch``.
    """
    sizes = batch_size_schedule(base_batch, lr_schedule, max_batch)

    def schedule(epoch: int) -> float:
        return lr_schedule(epoch) * sizes(epoch) / base_batch

    return schedule
