"""probes.json: a run's :meth:`Probes.summary` on disk, and back.

The summary is already bounded (a thinned :class:`~trainlab.diagnose.buffer.SeriesBuffer` of
at most ``capacity + 1`` rows), so the file is too, however long the run. Arrays become lists,
NaN becomes ``null`` (strict JSON that any browser or tool can read); :func:`load_probes` gives
back numpy arrays with NaN. A resumed run appends to the summary of the part before the resume
with :func:`merge_summaries`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from trainlab.durable import write_json

__all__ = ["load_probes", "merge_summaries", "read_probes", "save_probes"]

PROBES_FILE = "probes.json"
_SERIES = ("mean", "std", "hist", "dead_fraction", "saturated_fraction")
_PARAM_SERIES = ("grad_norm", "weight_norm", "update_ratio")


def _to_json(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return _to_json(value.tolist())
    if isinstance(value, dict):
        return {k: _to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_to_json(v) for v in value]
    if isinstance(value, float | np.floating):
        v = float(value)
        return v if math.isfinite(v) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def _array(value: Any) -> np.ndarray | None:
    if value is None:
        return None
    return np.array(value, dtype=np.float64)  # None entries become NaN


def save_probes(summary: dict[str, Any], path: Path) -> Path:
    """Write a :meth:`Probes.summary` as strict JSON (NaN and Inf as null)."""
    return write_json(path, _to_json(summary), separators=(",", ":"))


def load_probes(path: Path) -> dict[str, Any]:
    """Read probes.json back into the structure of :meth:`Probes.summary` (numpy arrays, NaN
    where the file has null)."""
    raw = json.loads(path.read_text())
    raw["steps"] = np.array(raw["steps"], dtype=np.int64)
    for layer in raw["layers"].values():
        for key in (*_SERIES, "edges", "hist_total"):
            layer[key] = _array(layer.get(key))
    for param in raw["params"].values():
        for key in _PARAM_SERIES:
            param[key] = _array(param.get(key))
    return raw


def read_probes(path: Path) -> dict[str, Any] | None:
    """probes.json read back, or None when it is missing or damaged (a kill, a full disk)."""
    try:
        return load_probes(path)
    except (OSError, ValueError, KeyError, TypeError, AttributeError, IndexError):
        return None


def _cat(old: np.ndarray | None, new: np.ndarray | None, keep: np.ndarray) -> np.ndarray | None:
    """``old[keep]`` then ``new``; NaN rows stand in for a series the old part lacks."""
    if new is None:
        return None
    if old is None or old.shape[1:] != new.shape[1:]:
        old = np.full((len(keep), *new.shape[1:]), np.nan)
    return np.concatenate([old[keep], new])


def _rows_upto(old: dict[str, Any], keep: np.ndarray, upto_step: int) -> dict[str, Any]:
    """``old`` with only its rows at steps ``<= upto_step`` (``keep``)."""
    out = {**old, "steps": old["steps"][keep], "probes": int(keep.sum())}
    for group, keys in (("layers", _SERIES), ("params", _PARAM_SERIES)):
        out[group] = {
            name: {**entry, **{k: entry[k][keep] for k in keys if entry.get(k) is not None}}
            for name, entry in old[group].items()
        }
    first = old.get("first_nonfinite")
    out["first_nonfinite"] = first if first and first["step"] <= upto_step else None
    return out


def merge_summaries(old: dict[str, Any], new: dict[str, Any], upto_step: int) -> dict[str, Any]:
    """The rows of ``old`` at steps ``<= upto_step`` (the part of an interrupted run before the
    checkpoint it resumed from) followed by every row of ``new``. Histogram totals add (less
    the dropped old rows, when the old part was never thinned); the first non-finite value is
    the earliest of the two."""
    keep = old["steps"] <= upto_step
    if len(new["steps"]) == 0:  # resumed at the very end: nothing new was probed
        return _rows_upto(old, keep, upto_step)
    merged = {**new, "steps": np.concatenate([old["steps"][keep], new["steps"]])}
    merged["probes"] = int(keep.sum()) + new["probes"]
    for group, keys in (("layers", _SERIES), ("params", _PARAM_SERIES)):
        merged[group] = {}
        for name, entry in new[group].items():
            before = old[group].get(name, {})
            merged[group][name] = {**entry}
            for key in keys:
                merged[group][name][key] = _cat(before.get(key), entry[key], keep)
    for name, layer in merged["layers"].items():
        before = old["layers"].get(name, {})
        total, hist = before.get("hist_total"), before.get("hist")
        if total is None or len(total) != len(layer["hist_total"]):
            continue
        if hist is not None and old.get("stride", 1) == 1:  # every old probe is a row
            total = total - np.nan_to_num(hist[~keep]).sum(axis=0)
        layer["hist_total"] = layer["hist_total"] + total
    firsts = [f for f in (old.get("first_nonfinite"), new.get("first_nonfinite")) if f]
    firsts = [f for f in firsts if f is new.get("first_nonfinite") or f["step"] <= upto_step]
    merged["first_nonfinite"] = min(firsts, key=lambda f: f["step"]) if firsts else None
    return merged
