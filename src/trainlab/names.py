"""One-line errors for a name that is not in a registry, naming the closest valid one."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def closest_name_error(what: str, name: str, valid: Iterable[str]) -> ValueError:
    """ValueError "unknown <what> 'nme' (did you mean 'name'?); valid: a, b, c"."""
    valid = sorted(valid)
    lowered = {v.lower(): v for v in valid}  # case-insensitive: "SGDW" suggests "sgd"
    close = difflib.get_close_matches(str(name).lower(), list(lowered), n=1, cutoff=0.5)
    hint = f" (did you mean '{lowered[close[0]]}'?)" if close else ""
    return ValueError(f"unknown {what} '{name}'{hint}; valid: {', '.join(valid)}")
