"""Checkpoints: model weights as safetensors, optimizer state, RNG state and the run position.

Each checkpoint is a directory written under a temporary name and renamed into place, and
`LATEST` names the newest one, so a run killed at any moment leaves its last good checkpoint
intact. Only the newest `keep` checkpoints are kept."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from trainlab.train.records import Position


def _write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def save_checkpoint(
    directory: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    position: Position,
    extra: dict[str, Any] | None = None,
    keep: int = 2,
) -> Path:
    """Write checkpoint `step-<step>` under `directory` atomically and point LATEST at it."""
    directory.mkdir(parents=True, exist_ok=True)
    name = f"step-{position.step:09d}"
    final, tmp = directory / name, directory / f".tmp-{name}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    weights = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(weights, str(tmp / "model.safetensors"))
    torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    state = {"position": position.state_dict(), "rng": torch.get_rng_state(), **(extra or {})}
    torch.save(state, tmp / "state.pt")
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    _write_text_atomic(directory / "LATEST", name)
    _prune(directory, keep)
    return final


def _prune(directory: Path, keep: int) -> None:
    for old in sorted(directory.glob("step-*"))[:-keep]:
        shutil.rmtree(old, ignore_errors=True)


def latest_checkpoint(directory: Path) -> Path | None:
    """The checkpoint LATEST names, else the newest complete one, else None."""
    latest = directory / "LATEST"
    if latest.is_file() and (directory / latest.read_text().strip()).is_dir():
        return directory / latest.read_text().strip()
    found = sorted(directory.glob("step-*"))
    return found[-1] if found else None


def load_checkpoint(
    path: Path, model: nn.Module, optimizer: torch.optim.Optimizer
) -> tuple[Position, dict[str, Any]]:
    """Restore model, optimizer and the global torch RNG from `path`; return the position and
    any extra state that was saved with it."""
    model.load_state_dict(load_file(str(path / "model.safetensors")))
    optimizer.load_state_dict(torch.load(path / "optimizer.pt", weights_only=True))
    state = torch.load(path / "state.pt", weights_only=True)
    torch.set_rng_state(state.pop("rng"))
    return Position.from_state_dict(state.pop("position")), state
