"""The lab book: one self-contained HTML page (figures embedded) over the lab's findings — per
experiment the claim, its deck, the measured numbers, the verdict with its rule, the figures."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

from trainlab.durable import write_text

BOOK = "lab.html"
STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0; } td, th { border: 1px solid #ccc;
padding: 0.25em 0.6em; text-align: left; vertical-align: top; } th { background: #f3f3f3; }
.holds { color: #176b2c; font-weight: bold; } .does-not-hold { color: #a4161a; font-weight: bold; }
.inconclusive, .error { color: #8a6100; font-weight: bold; } img { max-width: 100%; }
.muted { color: #777; }
"""
MIME = {".png": "image/png", ".gif": "image/gif", ".svg": "image/svg+xml"}


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list | dict):
        return html.escape(json.dumps(value)[:300])
    return html.escape(str(value))


def _table(rows: list[list[Any]]) -> str:
    if not rows:
        return ""
    head = "".join(f"<th>{_fmt(c)}</th>" for c in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{_fmt(c)}</td>" for c in r) + "</tr>" for r in rows[1:])
    return f"<table><tr>{head}</tr>{body}</table>"


def _verdict(v: str) -> str:
    return f'<span class="{v.replace(" ", "-")}">{html.escape(v)}</span>'


def _figure(path: Path) -> str:
    if not path.is_file():
        return f'<p class="muted">missing figure {html.escape(path.name)}</p>'
    data = base64.b64encode(path.read_bytes()).decode()
    mime = MIME.get(path.suffix.lower(), "application/octet-stream")
    return f'<img alt="{html.escape(path.name)}" src="data:{mime};base64,{data}">'


def _section(r: dict[str, Any], root: Path) -> str:
    numbers = [["measured", "value"], *([k, v] for k, v in r["numbers"].items())]
    parts = [
        f'<section id="{html.escape(r["name"])}"><h2>{html.escape(r["name"])}</h2>',
        f"<p><b>Claim</b> ({html.escape(r['deck'])}): {html.escape(r['claim'])}</p>",
        f"<p><b>Verdict</b>: {_verdict(r['verdict'])} &mdash; rule: {html.escape(r['rule'])}</p>",
        f"<p>{html.escape(r['note'])}</p>" if r["note"] else "",
        _table(numbers) if r["numbers"] else "",
        _table(r["table"]),
        *(_figure(root / f) for f in r["figures"]),
        f'<p class="muted">{"quick" if r["quick"] else "full"} run, seed {r["seed"]}, '
        f"{r['seconds']:.0f} s</p></section>",
    ]
    return "\n".join(p for p in parts if p)


def build_book(records: list[dict[str, Any]], root: Path) -> str:
    """The lab book's HTML for ``records`` (figures relative to ``root``)."""
    summary = [["experiment", "deck", "claim", "verdict", "seconds"]]
    rows = "".join(
        f'<tr><td><a href="#{html.escape(r["name"])}">{html.escape(r["name"])}</a></td>'
        f"<td>{html.escape(r['deck'])}</td><td>{html.escape(r['claim'])}</td>"
        f"<td>{_verdict(r['verdict'])}</td><td>{r['seconds']:.0f}</td></tr>"
        for r in records
    )
    head = "".join(f"<th>{c}</th>" for c in summary[0])
    counts = {v: sum(r["verdict"] == v for r in records)
              for v in ("holds", "does not hold", "inconclusive", "error")}  # fmt: skip
    tally = ", ".join(f"{n} {v}" for v, n in counts.items() if n)
    sections = "\n".join(_section(r, root) for r in records)
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>trainlab lab book</title>"
        f"<style>{STYLE}</style></head><body><h1>The decks' lab</h1>"
        f'<p id="tally">{len(records)} experiments: {tally}.</p>'
        f'<table id="summary"><tr>{head}</tr>{rows}</table>{sections}</body></html>'
    )


def write_book(records: list[dict[str, Any]], root: Path) -> Path:
    """Write ``root/lab.html``."""
    return write_text(root / BOOK, build_book(records, root))
