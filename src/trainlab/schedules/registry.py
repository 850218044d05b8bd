"""Schedules by name, for recipes: ``get_schedule("cosine", lr=0.1, total_steps=1000)``.

Two kinds: learning-rate schedules (`SCHEDULES`, what a recipe's ``schedule.name`` picks) and
momentum schedules (`MOMENTUM_SCHEDULES`, passed as an optimizer's momentum or beta1). A name of
one kind is refused by the other's lookup, in one line saying which kind it is.
"""

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

__all__ = ["MOMENTUM_SCHEDULES", "SCHEDULES", "get_momentum_schedule", "get_schedule"]

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
}
"""Every leaf learning-rate schedule by name. Combinators (``warmup``, ``join``) take schedules,
not names."""

MOMENTUM_SCHEDULES: dict[str, Callable[..., Schedule]] = {
    "one_cycle_momentum": one_cycle_momentum,
}
"""Momentum (or Adam beta1) schedules by name: not learning rates."""


def get_schedule(name: str, **kwargs: object) -> Schedule:
    """Build the schedule registered as ``name`` with ``kwargs``.

    An unknown name raises a one-line ValueError naming the closest valid one; an unknown or
    missing argument, or one out of range, raises a one-line ValueError naming it.
    """
    if name in MOMENTUM_SCHEDULES:
        raise ValueError(
            f"schedule {name!r} is a momentum schedule, not a learning-rate schedule; "
            "use get_momentum_schedule (in a recipe, one_cycle cycles momentum itself)"
        )
    factory = SCHEDULES.get(name)
    if factory is None:
        raise closest_name_error("schedule", name, SCHEDULES)
    return checked_call("schedule", name, factory, kwargs)


def get_momentum_schedule(name: str, **kwargs: object) -> Schedule:
    """Build the momentum schedule registered as ``name`` (`MOMENTUM_SCHEDULES`) with ``kwargs``;
    errors as `get_schedule`."""
    factory = MOMENTUM_SCHEDULES.get(name)
    if factory is None:
        raise closest_name_error("momentum schedule", name, MOMENTUM_SCHEDULES)
    return checked_call("momentum schedule", name, factory, kwargs)
