"""Durable writes: every file trainlab puts in a run, study or analysis directory goes through
here, so a kill at any instant leaves either the old file or the new one, never half of one.

A whole-file write goes to a temporary file in the same directory, is flushed and fsynced, and
is renamed over the target with ``os.replace`` (atomic on POSIX); the directory is fsynced so
the rename itself survives a power cut. Appends (``metrics.jsonl``) stay appends: a kill can
tear the last line, and readers drop a torn last line (``trainlab.train.metrics_log``).

Crash points, for tests only: when ``TRAINLAB_CRASH_AT`` is ``LABEL#N`` the process kills
itself with SIGKILL the N-th time it reaches the point LABEL (a temporary file left half
written, a line half appended, or a rename done but not yet fsynced); with
``TRAINLAB_CRASH_LOG`` set to a file, every point reached is appended to it. The kill-chain
test (``tests/train/test_kill_chain.py``) uses them to kill inside each kind of write on
purpose rather than by chance. Unset, each point costs one ``if``.
"""

from __future__ import annotations

import json
import os
import signal
import tempfile
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

__all__ = [
    "append_line",
    "crash_point",
    "fsync_dir",
    "publish_dir",
    "replacing",
    "save_figure",
    "write_bytes",
    "write_json",
    "write_text",
]

_CRASH_AT = os.environ.get("TRAINLAB_CRASH_AT")
_CRASH_LOG = os.environ.get("TRAINLAB_CRASH_LOG")
_reached: Counter[str] = Counter()
_UMASK = os.umask(0o022)
os.umask(_UMASK)


def crash_point(label: str, torn: Path | None = None) -> None:
    """Test hook (see the module docstring): log `label`, and if this is the planned N-th visit,
    cut `torn` (a temporary file) to half its size and SIGKILL this process."""
    if _CRASH_AT is None and _CRASH_LOG is None:
        return
    _reached[label] += 1
    if _CRASH_LOG is not None:
        with open(_CRASH_LOG, "a") as log:
            log.write(f"{label}\n")
    if f"{label}#{_reached[label]}" == _CRASH_AT:
        if torn is not None and torn.is_file():
            os.truncate(torn, torn.stat().st_size // 2)
        os.kill(os.getpid(), signal.SIGKILL)


def fsync_dir(path: Path) -> None:
    """fsync a directory, so that the names created or renamed in it are on disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def replacing(path: Path | str) -> Iterator[Path]:
    """Yield a temporary path beside `path` (same suffix, so writers that look at it still
    work); when the block ends without error, fsync it and atomically rename it to `path`.
    On error the temporary file is removed and `path` is untouched."""
    path = Path(path)
    fd, name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}",
                                dir=path.parent)  # fmt: skip
    os.close(fd)
    tmp = Path(name)
    os.chmod(tmp, 0o666 & ~_UMASK)  # as a plain open() would create it, not mkstemp's 0600
    try:
        yield tmp
        _fsync_file(tmp)
        crash_point(f"write:{path.name}", torn=tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    crash_point(f"renamed:{path.name}")
    fsync_dir(path.parent)


def write_bytes(path: Path | str, data: bytes) -> Path:
    """Atomically replace `path` with `data`."""
    with replacing(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: Path | str, text: str) -> Path:
    """Atomically replace `path` with `text` (UTF-8)."""
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: Path | str, obj: Any, **dumps: Any) -> Path:
    """Atomically replace `path` with `obj` as JSON and a final newline."""
    return write_text(path, json.dumps(obj, **dumps) + "\n")


def publish_dir(tmp: Path, final: Path) -> None:
    """Make a fully written directory `tmp` appear as `final` at once: fsync its files and
    itself, rename it (`final` must not exist), fsync the parent."""
    for child in tmp.iterdir():
        if child.is_file():
            _fsync_file(child)
    fsync_dir(tmp)
    crash_point(f"publish:{final.parent.name}")
    os.replace(tmp, final)
    fsync_dir(final.parent)


def append_line(file: IO[str], line: str, label: str) -> None:
    """Append `line` (no newline) and a newline to the open text `file` and flush it. A kill
    may tear this line; nothing before it changes."""
    text = line + "\n"
    if _CRASH_AT is not None or _CRASH_LOG is not None:
        _reached_append(file, text, label)
    file.write(text)
    file.flush()


def _reached_append(file: IO[str], text: str, label: str) -> None:
    """The torn-append crash point: write half the line first, so a planned kill tears it."""
    if f"append:{label}#{_reached[f'append:{label}'] + 1}" == _CRASH_AT:
        file.write(text[: len(text) // 2])
        file.flush()
    crash_point(f"append:{label}")


def save_figure(fig: Any, path: Path | str, **savefig: Any) -> Path:
    """Atomically write a matplotlib figure to `path` (its format from the suffix unless
    `format=` is given)."""
    with replacing(path) as tmp:
        fig.savefig(tmp, **savefig)
    return Path(path)


def read_json(path: Path) -> Any:
    """The JSON in ``path``, or None if it is missing or unreadable."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None
