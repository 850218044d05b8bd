"""The report's ``analysis`` section: what the post-training commands wrote into a run directory.

- ``landscape/*.json`` (`trainlab landscape` / `interpolate`): per split the loss range, the
  loss at the model, for an interpolation the two ends and the barrier between them; with the
  pictures the summary names (contours, heat map, 3-D surface, 1-D curves).
- ``sharpness.json`` (`trainlab sharpness`): top Hessian eigenvalue, trace and SAM sharpness
  on each random example subset, and their spread.
- ``fge.json`` (`trainlab fge`): the snapshots' and the growing ensemble's test accuracy.
- ``connections/*.json`` (`trainlab connect`, one per curve this run is an end of): largest
  train loss and test error along the curve and the straight segment, and the curve plot.

The commands call `refresh_report` after writing, so an existing report.html stays current.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from pathlib import Path
from typing import Any

from trainlab.durable import read_json


def _picture(path_text: str, run_dir: Path, img: Callable[[bytes | None, str], str]) -> str:
    path = Path(path_text)
    path = path if path.is_absolute() or path.is_file() else run_dir / path
    return img(path.read_bytes() if path.is_file() else None, path.name)


def _scalars(obj: dict[str, Any]) -> list[list[Any]]:
    return [[k, v] for k, v in obj.items() if isinstance(v, (int, float, str)) or v is None]


def _landscape(path: Path, data: dict, run_dir: Path, table: Callable, img: Callable) -> str:
    splits = data.get("splits", {})
    keys = sorted({k for row in splits.values() for k in row})
    rows = [[split, *(row.get(k) for k in keys)] for split, row in splits.items()]
    evaluator = data.get("evaluator", {})
    what = f"{data.get('kind')}, grid {data.get('grid')} over {data.get('range')}"
    head = f"<h3>{html.escape(path.stem)}: {html.escape(what)}, {data.get('seconds')} s</h3>"
    how = "; ".join(f"{k}: {v}" for k, v in evaluator.items())
    parts = [head, table(["split", *keys], rows), f'<p class="muted">{html.escape(how)}</p>']
    parts += [_picture(p, run_dir, img) for p in data.get("pictures", [])]
    return "\n".join(parts)


def _sharpness(data: dict, table: Callable) -> str:
    subsets = data.get("subsets", [])
    keys = sorted({k for s in subsets for k in s if not isinstance(s[k], (list, dict))})
    rows = [[f"subset {i + 1}", *(s.get(k) for k in keys)] for i, s in enumerate(subsets)]
    spread = data.get("spread") or {}
    rows += [["spread", *(spread.get(k) for k in keys)]] if isinstance(spread, dict) else []
    note = f"<p>{data.get('n_examples')} training examples per subset.</p>"
    return "<h3>Sharpness</h3>" + note + table(["", *keys], rows)


def _fge(data: dict, table: Callable) -> str:
    steps = data.get("snapshot_steps", [])
    single, joint = data.get("member_test_acc", []), data.get("ensemble_test_acc", [])
    rows = [[f"snapshot {k + 1} (step {s})", a, b]
            for k, (s, a, b) in enumerate(zip(steps, single, joint, strict=False))]  # fmt: skip
    head = (
        f"<h3>Fast geometric ensemble</h3><p>start test accuracy {data.get('start_test_acc')}</p>"
    )
    return head + table(["snapshot", "its test acc", "ensemble test acc"], rows)


def _connection(path: Path, data: dict, run_dir: Path, table: Callable, img: Callable) -> str:
    head = f"<h3>Mode connectivity: {html.escape(path.stem)}</h3>"
    body = table(["quantity", "value"], _scalars(data))
    out_dir = Path(str(data.get("out_dir", "")))
    return head + body + _picture(str(out_dir / "connect.png"), run_dir, img)


def analysis_body(run_dir: Path, table: Callable, img: Callable) -> str:
    """The section's HTML (``table(header, rows)`` and ``img(png, alt)`` from the report)."""
    parts = []
    for path in sorted((run_dir / "landscape").glob("*.json")):
        data = read_json(path)
        if isinstance(data, dict):
            parts.append(_landscape(path, data, run_dir, table, img))
    sharp = read_json(run_dir / "sharpness.json")
    if isinstance(sharp, dict):
        parts.append(_sharpness(sharp, table))
    fge = read_json(run_dir / "fge.json")
    if isinstance(fge, dict):
        parts.append(_fge(fge, table))
    for path in sorted((run_dir / "connections").glob("*.json")):
        data = read_json(path)
        if isinstance(data, dict):
            parts.append(_connection(path, data, run_dir, table, img))
    if not parts:
        commands = "trainlab landscape | interpolate | sharpness | fge | connect RUN_DIR"
        return (
            f'<p class="muted">No landscape, sharpness or connectivity results yet: {commands}.</p>'
        )
    return "\n".join(parts)
