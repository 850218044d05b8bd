"""report.html: one self-contained page per run (inline CSS, plots as base64 PNG, no scripts
and no network resources), so it opens from disk anywhere.

Sections, each a ``<section id=...>`` in this order: ``summary`` (result.json), ``verdicts``
(with their evidence), ``curves`` (loss/accuracy and the learning-rate schedule), ``layers``
(per-layer statistics from probes.json: table, activation histograms over time, gradient flow,
update/weight ratios — CS231n lecture 6, seed 000), ``analysis`` (landscape, sharpness,
FGE and mode-connectivity results, `trainlab.report.analysis`), ``recipe``, ``data``
(data.json) and ``checkpoints``.
"""

from __future__ import annotations

import base64
import html
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from trainlab.diagnose.probe_file import PROBES_FILE, read_probes
from trainlab.diagnose.verdicts import find_verdicts, weight_params
from trainlab.durable import read_json, write_text
from trainlab.report import probe_plots
from trainlab.report.analysis import analysis_body
from trainlab.report.curves import plot_curves
from trainlab.train.metrics_log import read_jsonl

__all__ = ["SECTIONS", "NotARunError", "build_report", "write_report"]

REPORT_FILE = "report.html"

SECTIONS = (
    "summary",
    "verdicts",
    "curves",
    "layers",
    "analysis",
    "recipe",
    "data",
    "checkpoints",
)
"""The id of every section, in page order."""

_CSS = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 0 auto; max-width: 1180px;
       padding: 0 24px 48px; color: #1d2330; background: #fbfbfd; }
h1 { font-size: 1.6em; margin: 24px 0 4px; }
h2 { font-size: 1.2em; border-bottom: 2px solid #d9dde8; padding-bottom: 4px; }
nav a { margin-right: 14px; }
section { margin-top: 28px; }
table { border-collapse: collapse; font-size: 13px; margin: 8px 0; }
th, td { border: 1px solid #d9dde8; padding: 3px 8px; text-align: right; }
th { background: #eef0f6; } td.name, th.name { text-align: left; }
pre { background: #f0f2f7; padding: 10px; overflow-x: auto; font-size: 12.5px; }
img { max-width: 100%; display: block; margin: 8px 0; }
.verdict { border-left: 4px solid #d9534f; background: #fff4f3; padding: 6px 12px;
           margin: 8px 0; }
.ok { border-left: 4px solid #3c9d5d; background: #f1faf4; padding: 6px 12px; }
.muted { color: #667085; }
"""


class NotARunError(ValueError):
    """A directory that is not a run directory; the message is one line."""


def _check_run_dir(run_dir: Path) -> None:
    if not run_dir.is_dir():
        raise NotARunError(f"report: {run_dir} is not a directory; expected a run directory")
    missing = [n for n in ("recipe.yaml", "metrics.jsonl") if not (run_dir / n).is_file()]
    if missing:
        raise NotARunError(
            f"report: {run_dir} is not a run directory (no {' or '.join(missing)}); expected "
            "a directory written by trainlab train, with recipe.yaml and metrics.jsonl"
        )


def _records(path: Path) -> list[dict]:
    return read_jsonl(path)


def _img(png: bytes | None, alt: str) -> str:
    if png is None:
        return f'<p class="muted">{html.escape(alt)}: nothing to plot.</p>'
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return f"{value:.4g}"
    return html.escape(str(value))


def _table(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f'<th class="{"name" if i == 0 else ""}">{html.escape(h)}</th>'
                   for i, h in enumerate(header))  # fmt: skip
    body = "".join(
        "<tr>" + "".join(
            f'<td class="{"name" if i == 0 else ""}">{_fmt(v)}</td>' for i, v in enumerate(row)
        ) + "</tr>"
        for row in rows
    )  # fmt: skip
    return f"<table><tr>{head}</tr>{body}</table>"


def _section(sid: str, title: str, body: str) -> str:
    return f'<section id="{sid}"><h2>{html.escape(title)}</h2>\n{body}\n</section>'


# ------------------------------------------------------------------ sections


def _summary(run_dir: Path, records: list[dict]) -> str:
    result = read_json(run_dir / "result.json")
    epochs = [r for r in records if r.get("kind") == "epoch"]
    parts = []
    if result is None:
        parts.append('<p class="verdict">This run did not finish (no result.json).</p>')
    else:
        keys = ["test_acc", "test_loss", "epochs", "train_seconds"]
        parts.append(_table(["result", "value"], [[k, result.get(k)] for k in keys]))
    if epochs:
        cols = ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds"]
        shown = epochs if len(epochs) <= 12 else epochs[:3] + epochs[-9:]
        parts.append(_table(cols, [[e.get(c) for c in cols] for e in shown]))
    return _section("summary", "Summary", "\n".join(parts))


def _evidence(evidence: dict[str, Any]) -> str:
    return " · ".join(f"{html.escape(str(k))} = {_fmt(v)}" for k, v in evidence.items())


def _verdicts(records: list[dict], probes: dict[str, Any] | None, run_dir: Path) -> str:
    verdicts = read_json(run_dir / "verdicts.json")
    if verdicts is None:  # a run from before verdicts existed: compute them now
        verdicts = [v.as_dict() for v in find_verdicts(records, probes)]
    if not verdicts:
        body = '<p class="ok">No problem found in the curves and probes.</p>'
    else:
        body = "".join(
            f'<div class="verdict"><b>{html.escape(v["message"])}</b>'
            f"<br>try: {html.escape(v.get('advice', ''))}"
            f'<br><span class="muted">evidence: {_evidence(v.get("evidence", {}))}</span></div>'
            for v in verdicts
        )
    return _section("verdicts", "Verdicts", body)


def _curves(run_dir: Path, records: list[dict], title: str) -> str:
    png_path = run_dir / "curves.png"
    if not png_path.is_file():
        png_path = plot_curves(records, run_dir / "curves.png", title)
    body = _img(png_path.read_bytes(), "training and validation curves")
    body += "<h3>Learning-rate schedule</h3>" + _img(
        probe_plots.schedule_plot(records), "learning rate against step"
    )
    return _section("curves", "Learning curves", body)


def _last(values: np.ndarray | None) -> float | None:
    if values is None or not len(values):
        return None
    return float(values[-1])


def _median(values: np.ndarray | None) -> float | None:
    if values is None:
        return None
    finite = np.asarray(values, dtype=float)
    finite = finite[np.isfinite(finite)]
    return float(np.median(finite)) if len(finite) else None


def _layers(probes: dict[str, Any] | None) -> str:
    if probes is None:
        body = '<p class="muted">No probes in this run (recipe diagnose.probes: false).</p>'
        return _section("layers", "Per-layer statistics", body)
    steps = probes["steps"]
    span = f"{len(steps)} probes kept, steps {steps[0]}–{steps[-1]}" if len(steps) else "none"
    layer_rows = [
        [name, lay["kind"], _last(lay["mean"]), _last(lay["std"]),
         _last(lay["dead_fraction"]), _last(lay["saturated_fraction"])]
        for name, lay in probes["layers"].items()
    ]  # fmt: skip
    param_rows = [
        [name, _median(p["grad_norm"]), _last(p["weight_norm"]), _median(p["update_ratio"])]
        for name, p in probes["params"].items()
    ]
    weights = weight_params(probes)
    body = "\n".join([
        f'<p class="muted">Probed every {probes["every"]} steps; {span}. '
        f"First NaN/Inf: {_fmt(probes.get('first_nonfinite'))}.</p>",
        "<h3>Layers at the last probe</h3>",
        _table(["layer", "kind", "mean", "std", "dead", "saturated"], layer_rows),
        "<h3>Parameters</h3>",
        _table(["parameter", "grad norm (median)", "weight norm (last)",
                "update/weight (median)"], param_rows),
        "<h3>Activation histograms over time</h3>",
        _img(probe_plots.activation_histograms(probes), "activation histograms over time"),
        _img(probe_plots.activation_moments(probes), "activation mean and std over time"),
        "<h3>Gradient flow</h3>",
        _img(probe_plots.gradient_flow(probes, weights), "gradient norm per weight tensor"),
        "<h3>Update/weight ratios</h3>",
        _img(probe_plots.update_ratios(probes, weights), "update to weight ratio"),
    ])  # fmt: skip
    return _section("layers", "Per-layer statistics", body)


def _text(sid: str, title: str, text: str | None, missing: str) -> str:
    body = f"<pre>{html.escape(text)}</pre>" if text else f'<p class="muted">{missing}</p>'
    return _section(sid, title, body)


def _checkpoints(run_dir: Path) -> str:
    folder = run_dir / "checkpoints"
    files = sorted(p for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else []
    if not files:
        return _section("checkpoints", "Checkpoints", '<p class="muted">No checkpoints.</p>')
    rows = [[str(p.relative_to(run_dir)), f"{p.stat().st_size / 1024:.1f} KiB"] for p in files]
    return _section("checkpoints", "Checkpoints", _table(["file", "size"], rows))


# ------------------------------------------------------------------ the page


def build_report(run_dir: Path) -> str:
    """The HTML text of ``run_dir``'s report; raises NotARunError (one line) if ``run_dir`` has
    no recipe.yaml and metrics.jsonl."""
    run_dir = Path(run_dir)
    _check_run_dir(run_dir)
    records = _records(run_dir / "metrics.jsonl")
    probes = read_probes(run_dir / PROBES_FILE)
    data = read_json(run_dir / "data.json")
    data_text = None if data is None else json.dumps(data, indent=1)
    if data_text is not None and len(data_text) > 4000:
        data_text = data_text[:4000] + "\n... (truncated; see data.json)"
    title = f"trainlab run {run_dir.name}"
    sections = [
        _summary(run_dir, records),
        _verdicts(records, probes, run_dir),
        _curves(run_dir, records, run_dir.name),
        _layers(probes),
        _section(
            "analysis",
            "Landscape, sharpness and connectivity",
            analysis_body(run_dir, _table, _img),
        ),  # fmt: skip
        _text(
            "recipe", "Recipe", (run_dir / "recipe.yaml").read_text(errors="replace"), "No recipe."
        ),
        _text("data", "Data", data_text, "No data.json."),
        _checkpoints(run_dir),
    ]
    return page(title, SECTIONS, sections)


# The pieces other self-contained pages share (the study page, `trainlab.study.search_html`),
# so that they look the same and nothing is written twice.
image, table, section = _img, _table, _section


def page(title: str, section_ids: tuple[str, ...], sections: list[str]) -> str:
    """A whole self-contained page: the title, a link to each section, the sections."""
    links = " ".join(f'<a href="#{s}">{s}</a>' for s in section_ids)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head>\n"
        f"<body><h1>{html.escape(title)}</h1><nav>{links}</nav>\n"
        + "\n".join(sections)
        + "\n</body></html>\n"
    )


def write_report(run_dir: Path, out: Path | None = None) -> Path:
    """Write ``run_dir/report.html`` (or ``out``) and return its path."""
    run_dir = Path(run_dir)
    text = build_report(run_dir)
    out = out or run_dir / REPORT_FILE
    write_text(out, text)
    return out


def refresh_report(run_dir: str | Path) -> Path | None:
    """Rewrite ``run_dir``'s report.html if it exists (after a command added results)."""
    run_dir = Path(run_dir)
    if not (run_dir / REPORT_FILE).is_file():
        return None
    return write_report(run_dir)
