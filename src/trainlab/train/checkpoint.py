"""Checkpoints: model weights as safetensors, optimizer state, RNG state and the run position.

Each checkpoint is a directory written under a temporary name, fsynced and renamed into place
(`durable.publish_dir`), and `LATEST` names the newest one (an atomic write), so a run killed
at any moment leaves its last good checkpoint intact. Only the newest `keep` checkpoints are
kept. Reading checks every file before anything is applied to the model: a damaged checkpoint
is `CheckpointError`, and `usable_checkpoint` falls back to the one before it."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from trainlab.durable import crash_point, publish_dir, write_text
from trainlab.train.records import Position

FILES = ("model.safetensors", "optimizer.pt", "state.pt")


class CheckpointError(RuntimeError):
    """A checkpoint directory that cannot be read (missing, truncated or corrupt file)."""


@dataclass
class Checkpoint:
    """A checkpoint read into memory: nothing is applied until `restore`."""

    path: Path
    weights: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    state: dict[str, Any]


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
    save_file(weights, str(tmp / FILES[0]))
    crash_point(f"checkpoint:{FILES[0]}", torn=tmp / FILES[0])
    torch.save(optimizer.state_dict(), tmp / FILES[1])
    crash_point(f"checkpoint:{FILES[1]}", torn=tmp / FILES[1])
    state = {"position": position.state_dict(), "rng": torch.get_rng_state(), **(extra or {})}
    torch.save(state, tmp / FILES[2])
    crash_point(f"checkpoint:{FILES[2]}", torn=tmp / FILES[2])
    shutil.rmtree(final, ignore_errors=True)
    publish_dir(tmp, final)
    write_text(directory / "LATEST", name)
    _prune(directory, keep)
    return final


def _prune(directory: Path, keep: int) -> None:
    """Remove all but the newest `keep` checkpoints, and what killed writers left behind."""
    for old in [*sorted(directory.glob("step-*"))[:-keep], *directory.glob(".tmp-step-*")]:
        shutil.rmtree(old, ignore_errors=True)


def latest_checkpoint(directory: Path) -> Path | None:
    """The checkpoint LATEST names, else the newest complete one, else None."""
    found = checkpoints_newest_first(directory)
    return found[0] if found else None


def checkpoints_newest_first(directory: Path) -> list[Path]:
    """The checkpoint directories under `directory`, the one LATEST names first, then the
    others from newest to oldest (temporary `.tmp-*` directories are never listed)."""
    found = sorted((p for p in directory.glob("step-*") if p.is_dir()), reverse=True)
    latest = directory / "LATEST"
    named = latest.read_text(errors="replace").strip() if latest.is_file() else ""
    first = [p for p in found if p.name == named]
    return first + [p for p in found if p.name != named]


def read_checkpoint(path: Path) -> Checkpoint:
    """Read every file of the checkpoint at `path` into memory, or raise CheckpointError
    naming the file that is missing or damaged."""
    loaders: dict[str, Callable[[Path], Any]] = {
        FILES[0]: lambda p: load_file(str(p)),
        FILES[1]: lambda p: torch.load(p, weights_only=True),
        FILES[2]: lambda p: torch.load(p, weights_only=True),
    }
    parts = []
    for name, load in loaders.items():
        file = path / name
        if not file.is_file():
            raise CheckpointError(f"{file}: missing")
        try:
            parts.append(load(file))
        except Exception as err:  # a truncated or corrupt file: any reader error
            raise CheckpointError(f"{file}: unreadable ({type(err).__name__})") from None
    state = parts[2]
    if not isinstance(state, dict) or "position" not in state or "rng" not in state:
        raise CheckpointError(f"{path / FILES[2]}: no position or RNG state")
    return Checkpoint(path, parts[0], parts[1], state)


def usable_checkpoint(
    directory: Path, warn: Callable[[str], None] = lambda _: None, move_aside: bool = True
) -> Checkpoint | None:
    """The newest checkpoint under `directory` that reads completely; each damaged one that is
    skipped gets one `warn` line (and is renamed `damaged-step-*` if `move_aside`, so that
    pruning never keeps it over a good one). None when there is no usable checkpoint."""
    for path in checkpoints_newest_first(directory):
        try:
            return read_checkpoint(path)
        except CheckpointError as err:
            if not move_aside:
                warn(f"checkpoint {path.name} is damaged ({err}); trying the one before it")
                continue
            aside = path.with_name(f"damaged-{path.name}")
            shutil.rmtree(aside, ignore_errors=True)
            path.rename(aside)  # out of the step-* list, so pruning never keeps it over a good one
            warn(f"checkpoint {path.name} is damaged ({err}); moved to {aside.name}, "
                 "trying the one before it")  # fmt: skip
    return None


def restore(
    ckpt: Checkpoint, model: nn.Module, optimizer: torch.optim.Optimizer
) -> tuple[Position, dict[str, Any]]:
    """Apply a read checkpoint to model, optimizer and the global torch RNG; return the
    position and any extra state saved with it."""
    model.load_state_dict(ckpt.weights)
    optimizer.load_state_dict(ckpt.optimizer)
    state = dict(ckpt.state)
    torch.set_rng_state(state.pop("rng"))
    return Position.from_state_dict(state.pop("position")), state


def load_checkpoint(
    path: Path, model: nn.Module, optimizer: torch.optim.Optimizer
) -> tuple[Position, dict[str, Any]]:
    """Restore model, optimizer and the global torch RNG from `path`; return the position and
    any extra state that was saved with it."""
    return restore(read_checkpoint(path), model, optimizer)
