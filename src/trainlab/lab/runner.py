"""Running lab experiments into a directory: one ``finding.json`` per experiment, seeded, timed,
and the lab book over all of them."""

from __future__ import annotations

import time
import traceback
from pathlib import Path
from typing import Any

import torch
from rich.console import Console

from trainlab.durable import read_json, write_json
from trainlab.lab.registry import LabExperiment, load_all

FINDING = "finding.json"


def run_experiment(exp: LabExperiment, out: Path, *, quick: bool, seed: int) -> dict[str, Any]:
    """Run ``exp`` in ``out/NAME`` with the global RNG seeded (and restored afterwards); write
    and return its record (the finding plus name, deck, claim, seconds)."""
    where = out / exp.name
    where.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        finding = exp.run(where, quick, seed)
    record = {
        "name": exp.name, "deck": exp.deck, "claim": exp.claim, "quick": quick, "seed": seed,
        "seconds": round(time.perf_counter() - started, 2), "numbers": finding.numbers,
        "verdict": finding.verdict, "rule": finding.rule, "table": finding.table,
        "note": finding.note, "figures": [str(Path(f).relative_to(out)) for f in finding.figures],
    }  # fmt: skip
    write_json(where / FINDING, record, indent=1, default=_plain)
    return read_json(where / FINDING)


def _plain(value: Any) -> Any:
    """numpy / torch scalars and arrays as plain JSON values."""
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def run_all(out: Path, *, quick: bool, seed: int, names: list[str] | None = None,
            console: Console | None = None) -> list[dict[str, Any]]:  # fmt: skip
    """Every experiment (or ``names``) in turn; one that fails is recorded with its error and
    the rest still run, so the book shows what did and did not work."""
    experiments = load_all()
    chosen = names or sorted(experiments)
    console = console or Console(stderr=True)
    records = []
    for i, name in enumerate(chosen, start=1):
        console.print(f"[{i}/{len(chosen)}] {name}: {experiments[name].claim}")
        try:
            record = run_experiment(experiments[name], out, quick=quick, seed=seed)
        except Exception as err:  # noqa: BLE001 - the book reports it; the others still run
            record = _failed(experiments[name], quick, seed, err)
            write_json(out / name / FINDING, record, indent=1)
        console.print(f"    {record['verdict']} ({record['seconds']:.0f} s)")
        records.append(record)
    return records


def _failed(exp: LabExperiment, quick: bool, seed: int, err: Exception) -> dict[str, Any]:
    last = traceback.format_exception_only(type(err), err)[-1].strip()
    return {"name": exp.name, "deck": exp.deck, "claim": exp.claim, "quick": quick,
            "seed": seed, "seconds": 0.0, "numbers": {}, "verdict": "error", "rule": "",
            "table": [], "note": f"the experiment failed: {last}", "figures": []}  # fmt: skip
