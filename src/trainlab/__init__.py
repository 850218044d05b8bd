"""trainlab: train deep networks well and see why training works or fails."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["load_run"]

if TYPE_CHECKING:
    from trainlab.run.load import load_run


def __getattr__(name: str) -> Any:
    """`trainlab.load_run` without importing torch and the data code on `import trainlab`."""
    if name == "load_run":
        from trainlab.run.load import load_run

        return load_run
    raise AttributeError(f"module 'trainlab' has no attribute {name!r}")
