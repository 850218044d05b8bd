"""`trainlab runs`: the run directories under a folder, newest first, with their status and key
results — what a newcomer looks for after a few runs (fastai and Keras leave it to the file
browser; TensorBoard needs a server).

Status: ``finished`` (result.json), ``running`` (a RUNNING file whose process is alive on this
host), ``diverged`` (the loss became NaN/Inf), else ``stopped`` (interrupted or killed:
``trainlab train --resume DIR`` continues it).
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from trainlab.durable import read_json, write_json
from trainlab.train.metrics_log import read_jsonl

RUNNING = "RUNNING"  # {"pid", "host"} while a process trains in the directory


def mark_running(run_dir: Path) -> None:
    """Say that this process trains in `run_dir` (removed by `mark_done`)."""
    write_json(run_dir / RUNNING, {"pid": os.getpid(), "host": socket.gethostname()})


def mark_done(run_dir: Path) -> None:
    (run_dir / RUNNING).unlink(missing_ok=True)


@dataclass(frozen=True)
class RunRow:
    """One line of `trainlab runs`."""

    path: Path
    name: str
    status: str
    epochs: int
    total_epochs: int | None
    test_acc: float | None
    best_val_acc: float | None

    def line(self) -> str:
        done = f"{self.epochs}/{self.total_epochs or '?'}"
        test = "-" if self.test_acc is None else f"{100 * self.test_acc:.2f}%"
        val = "-" if self.best_val_acc is None else f"{100 * self.best_val_acc:.2f}%"
        return f"{self.path.name:<40} {self.status:<9} {done:>7} {val:>9} {test:>9}"


HEADER = f"{'run':<40} {'status':<9} {'epochs':>7} {'best val':>9} {'test':>9}"


def _alive(marker: Path) -> bool:
    info = read_json(marker)
    if not isinstance(info, dict) or info.get("host") != socket.gethostname():
        return False
    try:
        os.kill(int(info["pid"]), 0)
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return True


def _status(run_dir: Path, records: list[dict]) -> str:
    if isinstance(read_json(run_dir / "result.json"), dict):
        return "finished"
    if (run_dir / RUNNING).is_file() and _alive(run_dir / RUNNING):
        return "running"
    if any(r.get("kind") == "nonfinite" for r in records):
        return "diverged"
    return "stopped"


def _total_epochs(run_dir: Path) -> int | None:
    import yaml

    try:
        recipe = yaml.safe_load((run_dir / "recipe.yaml").read_text())
        return int(recipe["train"]["epochs"])
    except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError):
        return None


def run_row(run_dir: Path) -> RunRow:
    """What `trainlab runs` shows of one run directory."""
    records = read_jsonl(run_dir / "metrics.jsonl")
    epochs = [r for r in records if r.get("kind") == "epoch"]
    vals = [r["val_acc"] for r in epochs if isinstance(r.get("val_acc"), (int, float))]
    result = read_json(run_dir / "result.json")
    test = result.get("test_acc") if isinstance(result, dict) else None
    return RunRow(run_dir, run_dir.name, _status(run_dir, records), len(epochs),
                  _total_epochs(run_dir), test, max(vals) if vals else None)  # fmt: skip


def find_runs(root: Path) -> list[RunRow]:
    """Every run directory (one holding recipe.yaml and metrics.jsonl) under `root`, at any
    depth (a study's runs included), newest first."""
    dirs = {p.parent for p in root.rglob("recipe.yaml") if (p.parent / "metrics.jsonl").is_file()}
    newest = sorted(dirs, key=lambda d: (d / "metrics.jsonl").stat().st_mtime, reverse=True)
    return [run_row(d) for d in newest]


def describe_runs(rows: list[RunRow]) -> str:
    """The table `trainlab runs` prints."""
    if not rows:
        return "no runs found"
    return "\n".join([HEADER, *(r.line() for r in rows)])


def rows_json(rows: list[RunRow]) -> str:
    return json.dumps([{**vars(r), "path": str(r.path)} for r in rows])
