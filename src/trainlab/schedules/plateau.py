"""Reduce-on-plateau as a controller that yields a factor, composable with any schedule.

torch's ``ReduceLROnPlateau`` rewrites ``param_groups[i]["lr"]`` and so cannot be combined with
another scheduler. Here the controller only keeps a multiplicative ``factor`` (starting at 1)
and ``plateau_scaled(schedule, controller)`` multiplies any schedule by it.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from trainlab.schedules._types import Schedule
from trainlab.schedules._validate import check_int, check_nonneg, check_step

__all__ = ["PlateauController", "plateau_scaled"]


class PlateauController:
    """Shrink a factor when a validation metric stops improving (torch ``ReduceLROnPlateau``).

    Call ``observe(metric)`` once per evaluation; it returns the current factor. A metric is an
    improvement if it beats the best so far by ``threshold`` (``best * (1 - threshold)`` in
    ``rel`` mode, ``best - threshold`` in ``abs`` mode; mirrored for ``mode="max"``). After more
    than ``patience`` observations without improvement the factor becomes
    ``max(factor * reduction, min_factor)``, and the next ``cooldown`` observations are ignored.
    A reduction smaller than ``eps`` is skipped.

    Equal to torch with ``lr = lr0 * factor``, ``min_lr = lr0 * min_factor`` and torch's
    ``eps`` divided by ``lr0``: torch's absolute ``min_lr`` and ``eps`` become relative here,
    so the controller does not need to know the rate. (torch calls ``reduction`` ``factor``.)
    """

    def __init__(
        self,
        reduction: float = 0.1,
        patience: int = 10,
        threshold: float = 1e-4,
        threshold_mode: Literal["rel", "abs"] = "rel",
        mode: Literal["min", "max"] = "min",
        cooldown: int = 0,
        min_factor: float = 0.0,
        eps: float = 1e-8,
    ) -> None:
        if not isinstance(reduction, int | float) or not 0 < reduction < 1:
            raise ValueError(f"PlateauController: reduction must be in (0, 1), got {reduction!r}")
        if mode not in ("min", "max"):
            raise ValueError(f"PlateauController: mode must be 'min' or 'max', got {mode!r}")
        if threshold_mode not in ("rel", "abs"):
            raise ValueError(
                f"PlateauController: threshold_mode must be 'rel' or 'abs', got {threshold_mode!r}"
            )
        self.reduction = float(reduction)
        self.patience = check_int("PlateauController", "patience", patience, minimum=0)
        self.threshold = check_nonneg("PlateauController", "threshold", threshold)
        self.threshold_mode = threshold_mode
        self.mode = mode
        self.cooldown = check_int("PlateauController", "cooldown", cooldown, minimum=0)
        self.min_factor = check_nonneg("PlateauController", "min_factor", min_factor)
        self.eps = check_nonneg("PlateauController", "eps", eps)
        self.factor = 1.0
        self.best = math.inf if mode == "min" else -math.inf
        self.num_bad = 0
        self.cooldown_left = 0

    def _is_better(self, value: float) -> bool:
        if self.mode == "min":
            bar = (
                self.best * (1.0 - self.threshold)
                if self.threshold_mode == "rel"
                else (self.best - self.threshold)
            )
            return value < bar
        bar = (
            self.best * (1.0 + self.threshold)
            if self.threshold_mode == "rel"
            else (self.best + self.threshold)
        )
        return value > bar

    def observe(self, metric: float) -> float:
        """Record one validation metric; return the (possibly reduced) factor."""
        value = float(metric)
        if math.isnan(value):
            raise ValueError("PlateauController.observe: metric must not be NaN")
        if self._is_better(value):
            self.best = value
            self.num_bad = 0
        else:
            self.num_bad += 1
        if self.cooldown_left > 0:
            self.cooldown_left -= 1
            self.num_bad = 0
        if self.num_bad > self.patience:
            reduced = max(self.factor * self.reduction, self.min_factor)
            if self.factor - reduced > self.eps:
                self.factor = reduced
            self.cooldown_left = self.cooldown
            self.num_bad = 0
        return self.factor

    def state_dict(self) -> dict[str, Any]:
        """The mutable state, for checkpoints (the settings come from the constructor)."""
        return {
            "factor": self.factor,
            "best": self.best,
            "num_bad": self.num_bad,
            "cooldown_left": self.cooldown_left,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned."""
        self.factor = float(state["factor"])
        self.best = float(state["best"])
        self.num_bad = int(state["num_bad"])
        self.cooldown_left = int(state["cooldown_left"])


def plateau_scaled(schedule: Schedule, controller: PlateauController) -> Schedule:
    """``t -> schedule(t) * controller.factor``, read at call time.

    The result is a pure function of the step *given the controller's state*: call
    ``controller.observe(val_metric)`` after each evaluation and the next lookups see the
    reduced factor, whatever the underlying schedule (cosine, warm-up, join, ...).
    """
    if not callable(schedule):
        raise ValueError(f"plateau_scaled: schedule must be callable, got {schedule!r}")
    if not isinstance(controller, PlateauController):
        raise ValueError(
            f"plateau_scaled: controller must be a PlateauController, got {type(controller)}"
        )

    def scaled(step: int) -> float:
        check_step(step)
        return schedule(step) * controller.factor

    return scaled
