"""Learning-rate (and momentum) schedules as plain functions of the 0-indexed optimizer step.

A schedule is ``Callable[[int], float]``: ``schedule(t)`` is the rate for the ``(t + 1)``-th
update, the value torch's schedulers leave in ``param_groups[i]["lr"]`` after ``t`` calls to
``scheduler.step()``. Factories validate their arguments at once (one-line errors) and return
closures; combinators (``join``, ``warmup``, ``plateau_scaled``) build new schedules from old
ones. No object here mutates an optimizer, except ``to_lambda_lr``, the bridge to torch.
"""

from trainlab.schedules._types import Schedule
from trainlab.schedules.adapters import plot_schedule, to_lambda_lr
from trainlab.schedules.batch import batch_size_lr, batch_size_schedule
from trainlab.schedules.combine import as_schedule, join, warmup
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
from trainlab.schedules.plateau import PlateauController, plateau_scaled
from trainlab.schedules.registry import (
    MOMENTUM_SCHEDULES,
    SCHEDULES,
    get_momentum_schedule,
    get_schedule,
)

__all__ = [
    "MOMENTUM_SCHEDULES",
    "SCHEDULES",
    "PlateauController",
    "Schedule",
    "as_schedule",
    "batch_size_lr",
    "batch_size_schedule",
    "constant",
    "cosine",
    "cyclic",
    "exponential",
    "get_momentum_schedule",
    "get_schedule",
    "inverse_sqrt",
    "inverse_time",
    "join",
    "linear",
    "linear_to_floor",
    "multistep",
    "one_cycle",
    "one_cycle_momentum",
    "plateau_scaled",
    "plot_schedule",
    "polynomial",
    "sgdr",
    "step_decay",
    "to_lambda_lr",
    "warmup",
]
