"""Schedules by name, for recipes: ``get_schedule("cosine", lr=0.1, total_steps=1000)``."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from trainlab.names import checked_call, closest_name_error
from trainlab.schedules._types import Schedule
from trainlab.schedules.cyclic import cyclic, one_cycle, one_cycle_momentum, sgdr
from trainlab.schedules.decay import (
    constant,
    cosine,
    exponential,
    inverse_sqrt,
    inverse_time,
    linear,
    linear_to_floor,
    multistep,
    polynomial,
    step_decay,
)

__all__ = ["SCHEDULES", "get_schedule"]

SCHEDULES: dict[str, Callable[..., Schedule]] = {
    "constant": constant,
    "step_decay": step_decay,
    "multistep": multistep,
    "exponential": exponential,
    "inverse_time": inverse_time,
    "inverse_sqrt": inverse_sqrt,
    "polynomial": polynomial,
    "linear": linear,
    "linear_to_floor": linear_to_floor,
    "cosine": cosine,
    "sgdr": sgdr,
    "cyclic": cyclic,
    "triangular": partial(cyclic, mode="triangular"),
    "triangular2": partial(cyclic, mode="triangular2"),
    "exp_range": partial(cyclic, mode="exp_range"),
    "one_cycle": one_cycle,
    "one_cycle_momentum": one_cycle_momentum,
}
"""Every leaf schedule by name. Combinators (``warmup``, ``join``) take schedules, not names."""


def get_schedule(name: str, **kwargs: object) -> Schedule:
    """Build the schedule registered as ``name`` with ``kwargs``.

    An unknown name raises a one-line ValueError naming the closest valid one; an unknown or
    missing argument, or one out of range, raises a one-line ValueError naming it.
    """
    factory = SCHEDULES.get(name)
    if factory is None:
        raise closest_name_error("schedule", name, SCHEDULES)
    return checked_call("schedule", name, factory, kwargs)
