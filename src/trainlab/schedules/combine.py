"""Combinators: lift a float to a schedule, join schedules at boundaries, prepend a warm-up."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence

from trainlab.schedules._types import Schedule
from trainlab.schedules._validate import (
    check_int,
    check_nonneg,
    check_step,
    check_strictly_increasing,
)
from trainlab.schedules.decay import constant

__all__ = ["as_schedule", "join", "warmup"]


def as_schedule(value: float | Schedule) -> Schedule:
    """Return ``value`` if it is already a schedule, else the constant schedule ``t -> value``.

    Lets a hyperparameter be "a float or a schedule" with one code path.
    """
    if callable(value):
        return value
    return constant(value)


def join(schedules: Sequence[Schedule], boundaries: Sequence[int]) -> Schedule:
    """Run ``schedules[i]`` on ``[boundaries[i-1], boundaries[i])``, each restarting its step at 0.

    ``join([a, b], [100])(t)`` is ``a(t)`` for ``t < 100`` and ``b(t - 100)`` after, as
    ``optax.join_schedules``. Needs ``len(boundaries) == len(schedules) - 1`` and strictly
    increasing boundaries >= 1. The result is continuous at a boundary ``B`` exactly when the
    earlier part, continued, meets the later one: ``a(B) == b(0)``.
    """
    parts = tuple(schedules)
    if not parts or not all(callable(p) for p in parts):
        raise ValueError(f"join: schedules must be a non-empty list of callables, got {parts!r}")
    cuts = tuple(boundaries)
    if len(cuts) != len(parts) - 1:
        raise ValueError(
            f"join: boundaries must have len(schedules) - 1 = {len(parts) - 1} entries, "
            f"got {len(cuts)}"
        )
    if cuts:
        cuts = check_strictly_increasing("join", "boundaries", cuts, minimum=1)
    starts = (0, *cuts)

    def schedule(step: int) -> float:
        check_step(step)
        i = bisect_right(cuts, step)
        return parts[i](step - starts[i])

    return schedule


def warmup(
    schedule: Schedule, warmup_steps: int, start_lr: float = 0.0, shift: bool = True
) -> Schedule:
    """Linear warm-up from ``start_lr`` into ``schedule`` over ``w = warmup_steps`` steps.

    With ``shift=True`` (the usual "warm-up then decay", e.g. Goyal et al. 2017; optax's
    ``warmup_cosine_decay_schedule``) the wrapped schedule starts its own clock after warm-up:
    ``lr_t = start_lr + (schedule(0) - start_lr) * t / w`` for ``t < w`` and
    ``schedule(t - w)`` after. With ``shift=False`` the wrapped schedule keeps the global clock:
    the ramp aims at ``schedule(w)`` and ``lr_t = schedule(t)`` for ``t >= w``. Either way the
    ramp reaches the wrapped schedule's value exactly at step ``w``. ``warmup_steps=0`` returns
    ``schedule`` unchanged.
    """
    if not callable(schedule):
        raise ValueError(f"warmup: schedule must be callable, got {schedule!r}")
    w = check_int("warmup", "warmup_steps", warmup_steps, minimum=0)
    start_lr = check_nonneg("warmup", "start_lr", start_lr)
    if w == 0:
        return schedule
    offset = w if shift else 0

    def warmed(step: int) -> float:
        check_step(step)
        if step < w:
            # Evaluated per call, so a wrapped schedule with live state (plateau_scaled) works.
            target = schedule(w - offset)
            return start_lr + (target - start_lr) * step / w
        return schedule(step - offset)

    return warmed
