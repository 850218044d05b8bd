"""Lab experiments by name: what each claims, where the claim comes from, and what it found."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

Verdict = Literal["holds", "does not hold", "inconclusive"]


@dataclass
class Finding:
    """What one run of an experiment measured.

    ``numbers``: the measured values by name (JSON-ready: numbers, strings, lists).
    ``verdict``: holds / does not hold / inconclusive, computed from ``numbers`` by ``rule``
    (the rule in words, shown beside the verdict). ``figures``: PNG (or GIF) files written in
    the experiment's directory. ``table``: optional rows (first row the header) for the book.
    ``note``: one or two sentences on what was seen, including where the claim did not hold.
    """

    numbers: dict[str, Any]
    verdict: Verdict
    rule: str
    figures: list[Path] = field(default_factory=list)
    table: list[list[Any]] = field(default_factory=list)
    note: str = ""


Run = Callable[[Path, bool, int], Finding]


@dataclass(frozen=True)
class LabExperiment:
    """A registered experiment: ``run(out_dir, quick, seed)`` and what it is about."""

    name: str
    deck: str  # e.g. "seed 000 (CS231n lecture 7)"
    claim: str  # the deck's claim in one line
    minutes: float  # expected full run time on the 2-core machine
    run: Run


EXPERIMENTS: dict[str, LabExperiment] = {}


def experiment(name: str, *, deck: str, claim: str, minutes: float) -> Callable[[Run], Run]:
    """Register ``run`` as the lab experiment ``name``."""

    def register(run: Run) -> Run:
        if name in EXPERIMENTS:
            raise ValueError(f"lab experiment {name!r} is registered twice")
        EXPERIMENTS[name] = LabExperiment(name, deck, claim, minutes, run)
        return run

    return register


def verdict(holds: bool | None) -> Verdict:
    """``True`` -> "holds", ``False`` -> "does not hold", ``None`` -> "inconclusive"."""
    if holds is None:
        return "inconclusive"
    return "holds" if holds else "does not hold"


def load_all() -> dict[str, LabExperiment]:
    """Every experiment (importing `trainlab.lab.experiments` registers them)."""
    import trainlab.lab.experiments  # noqa: F401

    return EXPERIMENTS
