"""The one type every schedule shares."""

from __future__ import annotations

from collections.abc import Callable

Schedule = Callable[[int], float]
"""A learning rate (or any hyperparameter) as a function of the 0-indexed optimizer step."""

__all__ = ["Schedule"]
