"""metrics.jsonl: one JSON object per line ("step" lines every few steps, "epoch" lines, a
final "test" line), appended and flushed as training goes."""

from __future__ import annotations

import json
from pathlib import Path

from trainlab.train.callbacks import Hooks, Signal
from trainlab.train.records import EpochRecord, StepRecord


def append_jsonl(path: Path, obj: dict) -> None:
    """Append one JSON line to `path`."""
    with path.open("a") as f:
        f.write(json.dumps(obj) + "\n")


def read_jsonl(path: Path) -> list[dict]:
    """Every JSON object in `path` (none if it does not exist)."""
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def truncate_after(path: Path, step: int) -> None:
    """Drop lines logged after `step` (and any final "test" line): used when resuming."""
    kept = [r for r in read_jsonl(path) if r.get("kind") != "test" and r.get("step", 0) <= step]
    path.write_text("".join(json.dumps(r) + "\n" for r in kept))


class MetricsLog(Hooks):
    """Writes step losses every `every` steps and every epoch record to `path`."""

    def __init__(self, path: Path, every: int = 50) -> None:
        self.path, self.every = path, every
        self._file = None

    def on_fit_start(self, total_steps: int, start_step: int) -> None:
        self._file = self.path.open("a")

    def on_step_end(self, record: StepRecord) -> None:
        if record.step % self.every == 0:
            line = {"kind": "step", "step": record.step, "epoch": record.epoch + 1,
                    "loss": record.loss, "lr": record.lr}  # fmt: skip
            self._write(line)

    def on_epoch_end(self, record: EpochRecord) -> Signal:
        self._write(record.as_dict())
        return None

    def on_fit_end(self, history: list[dict]) -> None:
        self._file.close()

    def _write(self, obj: dict) -> None:
        self._file.write(json.dumps(obj) + "\n")
        self._file.flush()
