"""One-line errors for a name that is not in a registry, naming the closest valid one."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def closest_name_error(what: str, name: str, valid: Iterable[str]) -> ValueError:
    """ValueError "unknown <what> 'nme' (did you mean 'name'?); valid: a, b, c"."""
    valid = sorted(valid)
    close = difflib.get_close_matches(str(name), valid, n=1, cutoff=0.5)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return ValueError(f"unknown {what} '{name}'{hint}; valid: {', '.join(valid)}")
