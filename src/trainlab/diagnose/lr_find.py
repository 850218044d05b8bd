"""The learning-rate range test and the lectures' halving search.

`lr_range_test` is the LR range test of Smith 2017 ("Cyclical Learning Rates for Training
Neural Networks", WACV 2017, section 3.3) as popularised by fastai's `Learner.lr_find`: train
for a few steps while the learning rate grows exponentially from `start` to `end`
(lr_i = start·(end/start)^(i/(steps−1)), one batch per step), follow an exponentially
smoothed, bias-corrected loss, and stop once it exceeds `diverge` × its best value (fastai: 4×;
torch-lr-finder: 5×) or the loss is not finite. The model's and optimizer's state dicts and
the torch RNG state are restored afterwards, bit for bit.

Users complain that a single suggestion jumps between runs, so several rules are computed
and shown together, with their spread (largest / smallest suggestion):

- ``steepest``: where d(smoothed loss)/d(log10 lr) is most negative (fastai's "steep"; we use
  log-lr, Lightning uses lr, which favours large lrs). The slope is a least-squares slope over
  a window of ±len/20 points (one-step differences are mostly noise), from the first 10% of
  the points (skipped: there the average holds few batches) up to the minimum of the smoothed
  loss. The argmax of the slope wandered 3x between seeds on the bundled CNN recipes, whose
  descent is long and evenly steep, so the suggestion is the slope-weighted centre of the
  descent: 10^(Σ w_i log10 lr_i / Σ w_i) with w_i = max(0, −slope_i)², which is the argmax
  for a single sharp drop and the middle of a long wall.
- ``minimum/10``: a tenth of the lr at the bottom of the smoothed loss (fastai's "minimum"),
  the bottom being the first point within 5% of the fall (from the skipped 10% to the
  minimum) of the minimum: the argmin itself wanders along a flat bottom (16x between seeds
  on the bundled `sam` recipe, 1.75x with this rule).
- ``valley``: the middle of the valley's descending wall, by loss level — the first lr (after
  the skipped first 10%) at which the smoothed loss has made half of its fall from there to
  its minimum. fastai's "valley" takes a point about half way along the longest decreasing
  subsequence; a version on the longest strictly decreasing stretch moved by 5.3x between
  seeds on the bundled `mlp` recipe (a small uptick where the loss is still flat moves the
  stretch's start), the level-based point by 1.2x (one sweep step; bench/lr_find_stability.py).

`halving_search` is the lecture procedure: start with a large lr and halve it until the loss
over a few hundred steps does not diverge (final smoothed loss finite and below the initial
loss).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from trainlab.data import InMemoryLoader
from trainlab.durable import save_figure
from trainlab.train.loop import NonFiniteLossError, train_step
from trainlab.train.losses import LossFn

__all__ = [
    "HalvingResult",
    "HalvingTry",
    "LrFindResult",
    "halving_search",
    "lr_range_test",
    "lr_sweep",
    "plot_lr_find",
    "smooth_losses",
    "suggest_lrs",
]


def _check_range(start: float, end: float, steps: int) -> None:
    """ValueError with one line naming the argument and what was expected."""
    if not (isinstance(start, int | float) and math.isfinite(start) and start > 0):
        raise ValueError(f"start must be a finite learning rate > 0, got {start!r}")
    if not (isinstance(end, int | float) and math.isfinite(end)):
        raise ValueError(f"end must be a finite learning rate, got {end!r}")
    if not start < end:
        raise ValueError(f"start must be below end (start < end), got start={start} end={end}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 2:
        raise ValueError(f"steps must be an int >= 2, got {steps!r}")


def _check_smoothing(smooth: float, diverge: float) -> None:
    if not 0.0 <= smooth < 1.0:
        raise ValueError(f"smooth must be in [0, 1), got {smooth!r}")
    if not diverge > 1.0:
        raise ValueError(f"diverge must be > 1 (a multiple of the best loss), got {diverge!r}")


def lr_sweep(start: float, end: float, steps: int) -> list[float]:
    """The exponential sweep lr_i = start·(end/start)^(i/(steps−1)), i = 0..steps−1."""
    _check_range(start, end, steps)
    ratio = end / start
    return [start * ratio ** (i / (steps - 1)) for i in range(steps)]


def smooth_losses(losses: Sequence[float], beta: float = 0.98) -> list[float]:
    """Exponential moving average with bias correction (as in fastai's lr_find and Adam):
    avg_i = β·avg_{i−1} + (1−β)·loss_i with avg_{−1} = 0, smoothed_i = avg_i / (1 − β^(i+1))."""
    avg, out = 0.0, []
    for i, loss in enumerate(losses):
        avg = beta * avg + (1.0 - beta) * loss
        out.append(avg / (1.0 - beta ** (i + 1)))
    return out


def _drop_index(s: np.ndarray, start: int, i_min: int, fraction: float) -> int:
    """First index k in [start, i_min] where s has made `fraction` of its fall from s[start]
    to s[i_min]: s[k] <= s[start] − fraction·(s[start] − s[i_min])."""
    level = s[start] - fraction * (s[start] - s[i_min])
    return start + int(np.argmax(s[start : i_min + 1] <= level))


def _steepest(log_lr: np.ndarray, slopes: np.ndarray) -> float:
    """10^(Σ w·log_lr / Σ w) with w = max(0, −slope)²; the steepest point if nothing falls."""
    w = np.clip(-slopes, 0.0, None) ** 2
    if not w.sum() > 0:
        return float(10 ** log_lr[int(np.argmin(slopes))])
    return float(10 ** ((w * log_lr).sum() / w.sum()))


def _window_slopes(x: np.ndarray, y: np.ndarray, half: int) -> np.ndarray:
    """Least-squares slope of y on x over the window [i−half, i+half] (clipped at the ends) at
    every i: a finite difference over a wider stencil, far less sensitive to noise."""
    out = np.empty(len(y))
    for i in range(len(y)):
        lo, hi = max(0, i - half), min(len(y), i + half + 1)
        xs, ys = x[lo:hi] - x[lo:hi].mean(), y[lo:hi]
        out[i] = float((xs * (ys - ys.mean())).sum() / (xs * xs).sum())
    return out


def suggest_lrs(lrs: Sequence[float], smoothed: Sequence[float]) -> dict[str, float]:
    """Suggestions by several rules (see the module docstring): ``steepest``, ``minimum/10``,
    ``valley``. Needs at least two points; with fewer, returns {}."""
    if len(lrs) < 2 or len(lrs) != len(smoothed):
        return {}
    lr = np.asarray(lrs, dtype=np.float64)
    s = np.asarray(smoothed, dtype=np.float64)
    i_min = int(np.argmin(s))
    out: dict[str, float] = {}
    # steepest descent of the smoothed loss on log10 lr, between skip and the minimum: the
    # first points are skipped (as Lightning's skip_begin=10 and fastai's plot do) because
    # there the average holds few batches and its slope is mostly batch-to-batch noise
    grad = _window_slopes(np.log10(lr), s, half=max(1, len(s) // 20))
    skip = min(len(s) // 10, i_min)
    upto = max(i_min, skip + 1) + 1
    out["steepest"] = _steepest(np.log10(lr[skip:upto]), grad[skip:upto])
    out["minimum/10"] = float(lr[_drop_index(s, skip, i_min, 0.95)] / 10.0)
    out["valley"] = float(lr[_drop_index(s, skip, i_min, 0.5)])
    return out


@dataclass
class LrFindResult:
    """What `lr_range_test` measured: the lrs tried, the raw and smoothed losses at each (the
    loss is that of the batch before the step at that lr), why the sweep stopped, and the
    suggestions of every rule."""

    lrs: list[float]
    losses: list[float]
    smoothed: list[float]
    stop_reason: str
    suggestions: dict[str, float] = field(default_factory=dict)

    @property
    def spread(self) -> float:
        """Largest / smallest suggestion (1.0 means the rules agree); nan without suggestions."""
        if not self.suggestions:
            return math.nan
        values = list(self.suggestions.values())
        return max(values) / min(values)

    def describe(self) -> str:
        """Plain lines for a terminal: every rule's suggestion, the spread, the stop reason."""
        lines = [f"lr range test: {len(self.lrs)} steps, {self.stop_reason}"]
        for name, lr in self.suggestions.items():
            lines.append(f"  {name:<11} {lr:.3g}")
        if self.suggestions:
            lines.append(f"  spread      {self.spread:.3g}x (largest / smallest suggestion)")
        else:
            lines.append("  no suggestion: fewer than two steps before the loss diverged")
        return "\n".join(lines)


def _cycle(loader: InMemoryLoader) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    epoch = 0
    while True:
        empty = True
        for batch in loader.epoch(epoch):
            empty = False
            yield batch
        if empty:
            raise ValueError("loader must yield at least one batch per epoch, got none")
        epoch += 1


def _set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def lr_range_test(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: LossFn,
    loader: InMemoryLoader,
    *,
    start: float = 1e-7,
    end: float = 10.0,
    steps: int = 100,
    smooth: float = 0.98,
    diverge: float = 4.0,
) -> LrFindResult:
    """The LR range test (Smith 2017, "Cyclical Learning Rates for Training Neural Networks";
    fastai's `lr_find`): one batch per step at lr_i = start·(end/start)^(i/(steps−1)) for every
    param group, cycling through the loader's epochs; stop when the bias-corrected smoothed loss
    exceeds `diverge` × its best or the loss is not finite. Defaults are fastai's (1e-7 → 10,
    100 steps, β = 0.98, 4×). The model's and optimizer's state dicts, the model's train/eval
    mode and the torch RNG state are restored afterwards (also on error)."""
    _check_range(start, end, steps)
    _check_smoothing(smooth, diverge)
    lrs_planned = lr_sweep(start, end, steps)
    model_state = copy.deepcopy(model.state_dict())
    optim_state = copy.deepcopy(optimizer.state_dict())
    rng_state = torch.get_rng_state()
    was_training = model.training
    lrs: list[float] = []
    losses: list[float] = []
    smoothed: list[float] = []
    stop_reason = f"reached end={end:g}"
    avg, best = 0.0, math.inf
    try:
        model.train()
        batches = _cycle(loader)
        for i, lr in enumerate(lrs_planned):
            x, y = next(batches)
            _set_lr(optimizer, lr)
            try:
                value, _ = train_step(model, optimizer, loss_fn, x, y)
            except NonFiniteLossError as err:
                stop_reason = f"loss became {err.value} at lr {lr:.3g}"
                break
            avg = smooth * avg + (1.0 - smooth) * value
            s = avg / (1.0 - smooth ** (i + 1))
            lrs.append(lr)
            losses.append(value)
            smoothed.append(s)
            if not math.isfinite(s):
                stop_reason = f"smoothed loss became {s} at lr {lr:.3g}"
                break
            if i > 0 and s > diverge * best:
                stop_reason = f"diverged at lr {lr:.3g} (smoothed loss > {diverge:g}x best)"
                break
            best = min(best, s)
    finally:
        model.load_state_dict(model_state)
        optimizer.load_state_dict(optim_state)
        torch.set_rng_state(rng_state)
        model.train(was_training)
    # the point that triggered the stop is kept in the curve but not used by the rules
    upto = len(lrs) - 1 if stop_reason.startswith("diverged") else len(lrs)
    return LrFindResult(
        lrs, losses, smoothed, stop_reason, suggest_lrs(lrs[:upto], smoothed[:upto])
    )


@dataclass(frozen=True)
class HalvingTry:
    """One try of `halving_search`: the lr, the first batch's loss, the final smoothed loss (nan
    or inf when the loss became non-finite), the steps run and whether it diverged."""

    lr: float
    initial_loss: float
    final_loss: float
    steps: int
    diverged: bool


@dataclass
class HalvingResult:
    """The first lr that did not diverge (None if every try did) and the trail of tries."""

    lr: float | None
    trail: list[HalvingTry]

    def describe(self) -> str:
        lines = ["halving search:"]
        for t in self.trail:
            verdict = "diverged" if t.diverged else "ok"
            lines.append(
                f"  lr {t.lr:.3g}: loss {t.initial_loss:.4g} -> {t.final_loss:.4g} "
                f"after {t.steps} steps ({verdict})"
            )
        lines.append(f"  chosen lr: {self.lr:.3g}" if self.lr is not None else "  no stable lr")
        return "\n".join(lines)


def halving_search(
    make_model_and_optimizer: Callable[[float], tuple[nn.Module, torch.optim.Optimizer]],
    loss_fn: LossFn,
    loader: InMemoryLoader,
    lr0: float,
    steps: int = 200,
    *,
    smooth: float = 0.98,
    max_tries: int = 30,
) -> HalvingResult:
    """The lectures' procedure: start large and halve until the loss does not diverge.

    Each try builds a fresh (model, optimizer) with `make_model_and_optimizer(lr)`, trains
    `steps` steps at that constant lr (cycling the loader's epochs) and counts as stable when
    the final bias-corrected smoothed loss is finite and below the first batch's loss. A try
    is cut short once the loss is non-finite. The torch RNG state is restored afterwards.
    Complements the range test of Smith 2017 / fastai's `lr_find` (see `lr_range_test`)."""
    if not (isinstance(lr0, int | float) and math.isfinite(lr0) and lr0 > 0):
        raise ValueError(f"lr0 must be a finite learning rate > 0, got {lr0!r}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an int >= 1, got {steps!r}")
    if isinstance(max_tries, bool) or not isinstance(max_tries, int) or max_tries < 1:
        raise ValueError(f"max_tries must be an int >= 1, got {max_tries!r}")
    _check_smoothing(smooth, 2.0)
    rng_state = torch.get_rng_state()
    trail: list[HalvingTry] = []
    chosen: float | None = None
    try:
        lr = float(lr0)
        for _ in range(max_tries):
            model, optimizer = make_model_and_optimizer(lr)
            _set_lr(optimizer, lr)
            model.train()
            batches = _cycle(loader)
            avg, initial, final, done = 0.0, math.nan, math.nan, 0
            for i in range(steps):
                x, y = next(batches)
                try:
                    value, _ = train_step(model, optimizer, loss_fn, x, y)
                except NonFiniteLossError as err:
                    final = err.value
                    break
                if i == 0:
                    initial = value
                avg = smooth * avg + (1.0 - smooth) * value
                final = avg / (1.0 - smooth ** (i + 1))
                done = i + 1
                if not math.isfinite(final):
                    break
            diverged = not (math.isfinite(final) and done == steps and final < initial)
            trail.append(HalvingTry(lr, initial, final, done, diverged))
            if not diverged:
                chosen = lr
                break
            lr /= 2.0
    finally:
        torch.set_rng_state(rng_state)
    return HalvingResult(chosen, trail)


def plot_lr_find(result: LrFindResult, path: str | Path) -> Path:
    """Save a PNG of the smoothed (and raw, faint) loss against lr on a log axis, with every
    rule's suggestion marked by a vertical line; returns the path."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path = Path(path)
    fig = Figure(figsize=(7, 4.5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    if result.lrs:
        ax.plot(result.lrs, result.losses, color="0.75", lw=0.8, label="loss")
        ax.plot(result.lrs, result.smoothed, color="C0", lw=1.8, label="smoothed loss")
        finite = [v for v in result.smoothed if math.isfinite(v)]
        raw = [v for v in result.losses if math.isfinite(v)]
        if finite:  # keep the divergence spike from flattening the interesting part
            lo, hi = min(finite + raw), max(finite[0], min(finite) * 1.5)  # raw dips shown
            top = max(hi, min(max(finite), 1.5 * hi))  # the divergence runs off the top
            ax.set_ylim(lo - 0.05 * (top - lo), top + 0.05 * (top - lo) + 1e-12)
    ax.set_xscale("log")
    for k, (name, lr) in enumerate(result.suggestions.items()):
        ax.axvline(lr, color=f"C{k + 1}", ls="--", lw=1.2, label=f"{name} {lr:.2g}")
    title = "LR range test"
    if result.suggestions:
        title += f" — suggestions spread {result.spread:.2g}x"
    ax.set_title(title)
    ax.set_xlabel("learning rate")
    ax.set_ylabel("loss")
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path, format="png", dpi=100)
    return path
