"""One-line argument checks shared by every schedule factory.

Each check raises ``ValueError("<schedule>: <argument> must be <range>, got <value>")`` so a bad
recipe fails at construction time, not hundreds of steps into a run.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = [
    "check_fraction",
    "check_int",
    "check_nonneg",
    "check_positive",
    "check_step",
    "check_strictly_increasing",
]


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def check_nonneg(where: str, name: str, value: float) -> float:
    """Return ``float(value)`` if it is a finite number >= 0, else raise a one-line ValueError."""
    if not _is_number(value) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{where}: {name} must be a finite number >= 0, got {value!r}")
    return float(value)


def check_positive(where: str, name: str, value: float) -> float:
    """Return ``float(value)`` if it is a finite number > 0, else raise a one-line ValueError."""
    if not _is_number(value) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{where}: {name} must be a finite number > 0, got {value!r}")
    return float(value)


def check_fraction(where: str, name: str, value: float, *, closed_low: bool = True) -> float:
    """Return ``float(value)`` if it lies in [0, 1] (or (0, 1] when ``closed_low`` is False)."""
    low_ok = _is_number(value) and (value >= 0 if closed_low else value > 0)
    if not low_ok or not math.isfinite(value) or value > 1:
        interval = "[0, 1]" if closed_low else "(0, 1]"
        raise ValueError(f"{where}: {name} must be in {interval}, got {value!r}")
    return float(value)


def check_int(where: str, name: str, value: int, *, minimum: int) -> int:
    """Return ``value`` if it is an int >= ``minimum``, else raise a one-line ValueError."""
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{where}: {name} must be an int >= {minimum}, got {value!r}")
    return value


def check_strictly_increasing(
    where: str, name: str, values: Sequence[int], *, minimum: int
) -> tuple[int, ...]:
    """Return ``values`` as a tuple if it is a non-empty, strictly increasing list of ints."""
    items = tuple(values)
    ints = all(isinstance(v, int) and not isinstance(v, bool) for v in items)
    increasing = all(a < b for a, b in zip(items, items[1:], strict=False))
    if not items or not ints or not increasing or items[0] < minimum:
        raise ValueError(
            f"{where}: {name} must be a non-empty strictly increasing list of ints >= {minimum}, "
            f"got {list(items)!r}"
        )
    return items


def check_step(step: int) -> None:
    """Schedules are defined for steps 0, 1, 2, ...; a negative step is a caller bug."""
    if step < 0:
        raise ValueError(f"schedule step must be >= 0 (steps are 0-indexed), got {step!r}")
