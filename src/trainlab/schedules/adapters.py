"""Bridges out of the library: torch's ``LambdaLR`` for plain torch.optim users, and a PNG plot."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from trainlab.durable import save_figure
from trainlab.schedules._types import Schedule
from trainlab.schedules._validate import check_int

if TYPE_CHECKING:  # torch and matplotlib load on first use: plain schedules need neither
    import torch

__all__ = ["plot_schedule", "to_lambda_lr"]


def to_lambda_lr(
    optimizer: torch.optim.Optimizer, schedule: Schedule | Sequence[Schedule]
) -> torch.optim.lr_scheduler.LambdaLR:
    """A torch ``LambdaLR`` whose groups' ``lr`` is ``schedule(t)`` after ``t`` ``step()`` calls.

    ``LambdaLR`` sets ``lr = initial_lr * lambda(t)``, a *factor* of the group's starting rate.
    Our schedules give absolute rates, so this sets every group's ``initial_lr`` (and ``lr``) to
    1.0 first: the factor is then the rate itself, exactly, with no division by a base rate.
    The optimizer's own ``lr`` setting is therefore replaced by the schedule. Pass one schedule
    per param group to schedule groups differently.
    """
    from torch.optim.lr_scheduler import LambdaLR

    groups = optimizer.param_groups
    if callable(schedule):
        lambdas = [schedule] * len(groups)
    else:
        lambdas = list(schedule)
        if len(lambdas) != len(groups) or not all(callable(s) for s in lambdas):
            raise ValueError(
                f"to_lambda_lr: schedule must be a callable or {len(groups)} callables "
                f"(one per param group), got {schedule!r}"
            )
    for group in groups:
        group["lr"] = 1.0
        group["initial_lr"] = 1.0
    return LambdaLR(optimizer, lambdas)


def plot_schedule(
    schedule: Schedule | Mapping[str, Schedule],
    steps: int,
    path: str | Path,
    *,
    title: str | None = None,
    log_y: bool = False,
) -> Path:
    """Save a PNG of ``schedule(t)`` for ``t = 0 .. steps - 1``; return the path written.

    A mapping of ``label -> schedule`` overlays several curves. Uses matplotlib's object API
    with the Agg canvas, so it never touches pyplot's global state or needs a display.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    steps = check_int("plot_schedule", "steps", steps, minimum=1)
    curves = dict(schedule) if isinstance(schedule, Mapping) else {"": schedule}
    fig = Figure(figsize=(6, 3.5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    xs = range(steps)
    for label, fn in curves.items():
        ax.plot(xs, [fn(t) for t in xs], label=label or None)
    ax.set_xlabel("step (0-indexed)")
    ax.set_ylabel("learning rate")
    if log_y:
        ax.set_yscale("log")
    if title:
        ax.set_title(title)
    if any(curves):
        ax.legend()
    ax.grid(alpha=0.3)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_figure(fig, out, format="png", dpi=100)
    return out
