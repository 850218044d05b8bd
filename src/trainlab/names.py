"""One-line errors for a name that is not in a registry (naming the closest valid one) and
for arguments a registered factory does not take or needs."""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

T = TypeVar("T")


def closest_name_error(what: str, name: str, valid: Iterable[str]) -> ValueError:
    """ValueError "unknown <what> 'nme' (did you mean 'name'?); valid: a, b, c"."""
    valid = sorted(valid)
    lowered = {v.lower(): v for v in valid}  # case-insensitive: "SGDW" suggests "sgd"
    close = difflib.get_close_matches(str(name).lower(), list(lowered), n=1, cutoff=0.5)
    hint = f" (did you mean '{lowered[close[0]]}'?)" if close else ""
    return ValueError(f"unknown {what} '{name}'{hint}; valid: {', '.join(valid)}")


def arguments(factory: Callable[..., Any]) -> tuple[list[str], list[str]]:
    """(required, optional) keyword arguments of `factory`, in signature order."""
    params = inspect.signature(factory).parameters.values()
    named = [p for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    required = [p.name for p in named if p.default is p.empty]
    return required, [p.name for p in named if p.default is not p.empty]


def checked_call(what: str, name: str, factory: Callable[..., T], kwargs: dict[str, Any]) -> T:
    """`factory(**kwargs)`, with an unknown or a missing argument reported first, in one
    ValueError line naming it and the accepted ones (never Python's "positional argument"
    signature text)."""
    required, optional = arguments(factory)
    unknown = sorted(set(kwargs) - set(required) - set(optional))
    if unknown:
        accepted = ", ".join(required + optional) or "none"
        raise ValueError(f"{what} '{name}': unknown argument '{unknown[0]}'; accepted: {accepted}")
    missing = [a for a in required if a not in kwargs]
    if missing:
        raise ValueError(f"{what} '{name}': missing required argument '{missing[0]}' "
                         f"(required: {', '.join(required)}; optional: "
                         f"{', '.join(optional) or 'none'})")  # fmt: skip
    return factory(**kwargs)
