"""Plain-language verdicts on a run, each with the numbers that support it.

The rules read what a run leaves behind: the records of ``metrics.jsonl`` (step losses, epoch
train/validation metrics, a ``"nonfinite"`` line if the loss broke) and the probe summary
(:meth:`Probes.summary` or ``probes.json``). They encode the checks of the lectures:

- seed 000 (COMP541 after CS231n lecture 6, "babysitting the learning process"): saturated
  units and dead ReLUs (a unit whose input is always negative gets exactly zero gradient),
  vanishing/exploding gradient flow, the ratio of weight updates to weight magnitudes (healthy
  around 1e-3), and "start with a large learning rate and divide by 2 until the loss does not
  diverge";
- seed 001 (capacity: under- and overfitting): a validation loss that rises while the training
  loss falls, and a training accuracy that stays low.

Thresholds are module constants so a reader can see and change them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "Verdict",
    "find_verdicts",
    "format_verdicts",
]

DEAD_FRACTION = 0.5
"""A ReLU layer is flagged when at least half of its units are dead at the last probe."""
SATURATED_FRACTION = 0.25
"""A tanh/sigmoid layer is flagged when a quarter of its outputs sit in the flat tails."""
VANISHING_RATIO = 1e-3
"""First weight layer's gradient norm below 1e-3 of the last's: vanishing gradients."""
EXPLODING_RATIO = 1e3
"""First weight layer's gradient norm above 1e3 times the last's: exploding gradients."""
EXPLODING_GROWTH = 1e3
"""Or the total gradient norm growing by this factor from the first probe to the last."""
UPDATE_HIGH = 5e-2
"""Median ‖Δw‖/‖w‖ above this (50× the healthy 1e-3) says the learning rate is too high."""
UPDATE_LOW = 1e-5
"""Median ‖Δw‖/‖w‖ below this (1/100 of the healthy 1e-3) says the learning rate is too low."""
HEALTHY_UPDATE = 1e-3
DIVERGE_FACTOR = 3.0
"""A logged training loss above 3× the first one, and still above it at the end: diverged."""
OVERFIT_EPOCHS = 3
"""Validation loss rising for at least this many epochs after its minimum..."""
OVERFIT_RISE = 0.05
"""...by at least 5% of that minimum, while the training loss keeps falling."""
UNDERFIT_ACC = 0.8
"""Final training accuracy below 80%: the model does not fit its own training data."""


@dataclass(frozen=True)
class Verdict:
    """One finding: a short ``code``, a sentence with the numbers, the ``evidence`` behind it
    (plain numbers and names), and what to try."""

    code: str
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)
    advice: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# ------------------------------------------------------------------ helpers


def _finite(values: np.ndarray | None) -> np.ndarray:
    if values is None:
        return np.array([])
    values = np.asarray(values, dtype=np.float64)
    return values[np.isfinite(values)]


def _sci(x: float) -> str:
    """1 significant digit in scientific notation (``3e-1``, ``5e8``), the lectures' way of
    speaking of ratios; ``0`` for zero."""
    if x == 0:
        return "0"
    mantissa, _, exponent = f"{x:.0e}".partition("e")
    return f"{mantissa}e{int(exponent)}"


def weight_params(probes: dict[str, Any]) -> list[str]:
    """Parameters that are weight matrices/kernels of probed layers in registration order:
    names ending in ``weight`` whose layer is not a normalization layer."""
    kinds = {name: layer["kind"] for name, layer in probes["layers"].items()}
    return [
        name
        for name, p in probes["params"].items()
        if name.endswith("weight") and "norm" not in kinds.get(p["layer"], "")
    ]


def _median(values: np.ndarray | None) -> float:
    values = _finite(values)
    return float(np.median(values)) if len(values) else math.nan


# ------------------------------------------------------------------ rules on metrics


def _losses(records: Sequence[dict]) -> list[tuple[int, float]]:
    steps = [(r["step"], r["loss"]) for r in records if r.get("kind") == "step"]
    epochs = [(r["step"], r["train_loss"]) for r in records if r.get("kind") == "epoch"]
    return sorted(steps or epochs)


def diverged(records: Sequence[dict], probes: dict[str, Any] | None) -> list[Verdict]:
    """The loss became NaN/Inf, or grew to ``DIVERGE_FACTOR`` × its first logged value and
    stayed above it."""
    broke = [r for r in records if r.get("kind") == "nonfinite"]
    where = (probes or {}).get("first_nonfinite")
    advice = "lower the learning rate: start large and halve it until the loss does not diverge"
    if broke:
        step, value = broke[0]["step"], broke[0]["value"]
        evidence: dict[str, Any] = {"step": step, "loss": value}
        message = f"learning rate too high: loss diverged at step {step} (loss became {value})"
        if where:
            evidence["first_nonfinite"] = where
            message += f"; first NaN/Inf in the {where['where']} of layer {where['layer']}"
            message += f" at step {where['step']}"
        return [Verdict("diverged", message, evidence, advice)]
    watched = _watched_divergence(records)
    if watched is not None:
        return [Verdict("diverged", watched[0], watched[1], advice)]
    losses = _losses(records)
    if len(losses) < 2:
        return []
    first = losses[0][1]
    above = [(s, v) for s, v in losses[1:] if v > DIVERGE_FACTOR * first]
    if not above or not losses[-1][1] > first:
        return []
    step, value = above[0]
    message = (
        f"learning rate too high: loss diverged at step {step} "
        f"({value:.3g}, {value / first:.1f}× the first logged loss {first:.3g})"
    )
    return [Verdict("diverged", message, {"step": step, "loss": value, "first": first}, advice)]


def _watched_divergence(records: Sequence[dict]) -> tuple[str, dict[str, Any]] | None:
    """From the last ``loss_watch`` line (:class:`~trainlab.diagnose.loss_watch.LossWatch`,
    checkpointed, so it covers a resumed run from its first step): the first step whose loss
    passed its factor × the first step's."""
    watches = [r for r in records if r.get("kind") == "loss_watch"]
    if not watches or watches[-1].get("diverged_step") is None:
        return None
    w = watches[-1]
    message = (
        f"learning rate too high: loss diverged at step {w['diverged_step']} (from "
        f"{w['first_loss']:.3g} at step {w['first_step']} to a peak of {w['peak_loss']:.3g} "
        f"at step {w['peak_step']})"
    )
    keys = ("diverged_step", "first_loss", "peak_loss", "peak_step")
    return message, {k: w[k] for k in keys}


def _epochs(records: Sequence[dict]) -> list[dict]:
    return [r for r in records if r.get("kind") == "epoch"]


def overfitting(records: Sequence[dict], probes: dict[str, Any] | None = None) -> list[Verdict]:
    """Validation loss rising for ``OVERFIT_EPOCHS`` epochs after its minimum (by at least
    ``OVERFIT_RISE``) while the training loss falls."""
    epochs = [r for r in _epochs(records) if r.get("val_loss") is not None]
    val = [r["val_loss"] for r in epochs]
    if len(val) < OVERFIT_EPOCHS + 1 or not all(map(math.isfinite, val)):
        return []
    best = int(np.argmin(val))
    rising = len(val) - 1 - best
    last, at_best = epochs[-1], epochs[best]
    risen = last["val_loss"] - at_best["val_loss"]
    falls = last["train_loss"] < at_best["train_loss"]
    if rising < OVERFIT_EPOCHS or risen < OVERFIT_RISE * at_best["val_loss"] or not falls:
        return []
    gap = last["val_loss"] - last["train_loss"]
    message = (
        f"overfitting: validation loss rising for {rising} epochs while training loss falls "
        f"(gap {gap:.2f}; best validation loss {at_best['val_loss']:.3g} at epoch "
        f"{at_best['epoch']}, now {last['val_loss']:.3g})"
    )
    evidence = {
        "epochs_rising": rising,
        "gap": gap,
        "best_epoch": at_best["epoch"],
        "best_val_loss": at_best["val_loss"],
        "val_loss": last["val_loss"],
        "train_loss": last["train_loss"],
    }
    advice = "more data or augmentation, weight decay or dropout, or stop at the best epoch"
    return [Verdict("overfitting", message, evidence, advice)]


def underfitting(records: Sequence[dict], probes: dict[str, Any] | None = None) -> list[Verdict]:
    """Final training accuracy below ``UNDERFIT_ACC`` (classification only)."""
    epochs = [r for r in _epochs(records) if r.get("train_acc") is not None]
    if not epochs:
        return []
    last = epochs[-1]
    acc = last["train_acc"]
    if not math.isfinite(acc) or acc >= UNDERFIT_ACC:
        return []
    message = f"underfitting: training accuracy {acc:.0%} after {last['epoch']} epochs"
    evidence = {"train_acc": acc, "epochs": last["epoch"], "train_loss": last["train_loss"]}
    if last.get("val_acc") is not None:
        evidence["val_acc"] = last["val_acc"]
    advice = "train longer, raise the learning rate, or use a larger model"
    return [Verdict("underfitting", message, evidence, advice)]


# ------------------------------------------------------------------ rules on probes


def dead_relus(records: Sequence[dict], probes: dict[str, Any] | None) -> list[Verdict]:
    """ReLU layers with at least ``DEAD_FRACTION`` of their units never positive over the probe
    window at the last probe; "since" is the first probe from which it stayed that high."""
    found = []
    for name, layer in (probes or {}).get("layers", {}).items():
        dead = layer.get("dead_fraction")
        if dead is None or not len(_finite(dead)):
            continue
        ok = np.nan_to_num(dead, nan=0.0) >= DEAD_FRACTION
        if not ok[-1]:
            continue
        start = len(ok) - int(np.argmin(ok[::-1])) if not ok.all() else 0
        since = int(probes["steps"][start])
        message = f"layer {name}: {dead[-1]:.0%} of ReLUs dead since step {since}"
        evidence = {"layer": name, "dead_fraction": float(dead[-1]), "since_step": since}
        advice = "use He initialization, a lower learning rate, or a leaky ReLU"
        found.append(Verdict("dead_relu", message, evidence, advice))
    return found


def saturated(records: Sequence[dict], probes: dict[str, Any] | None) -> list[Verdict]:
    """tanh/sigmoid layers whose median saturated fraction over the last 5 probes is at least
    ``SATURATED_FRACTION``."""
    found = []
    for name, layer in (probes or {}).get("layers", {}).items():
        frac = _median(None if layer.get("saturated_fraction") is None
                       else layer["saturated_fraction"][-5:])  # fmt: skip
        if not frac >= SATURATED_FRACTION:
            continue
        kind = layer["kind"]
        message = f"layer {name}: {frac:.0%} of {kind} units saturated (local gradient < 0.02)"
        evidence = {"layer": name, "kind": kind, "saturated_fraction": frac}
        advice = "use Xavier initialization for tanh/sigmoid, normalization, or ReLU"
        found.append(Verdict("saturated", message, evidence, advice))
    return found


def gradient_flow(records: Sequence[dict], probes: dict[str, Any] | None) -> list[Verdict]:
    """Compare the median gradient norm of the first weight layer with the last's (vanishing
    below ``VANISHING_RATIO``, exploding above ``EXPLODING_RATIO``); also flag a total gradient
    norm that grows by ``EXPLODING_GROWTH`` over the run."""
    if not probes:
        return []
    weights = [n for n in weight_params(probes) if probes["params"][n]["grad_norm"] is not None]
    if len(weights) < 2:
        return []
    grads = {n: np.asarray(probes["params"][n]["grad_norm"], dtype=float) for n in weights}
    first, last = weights[0], weights[-1]
    g_first, g_last = _median(grads[first]), _median(grads[last])
    lay_first, lay_last = probes["params"][first]["layer"], probes["params"][last]["layer"]
    evidence = {"first": first, "last": last, "grad_first": g_first, "grad_last": g_last}
    if g_last > 0 and math.isfinite(g_first):
        ratio = g_first / g_last
        evidence["ratio"] = ratio
        where = f"layer {lay_first} gradient norm is {_sci(ratio)} of layer {lay_last}'s"
        if ratio < VANISHING_RATIO:
            advice = "use ReLU with He initialization, normalization layers or skip connections"
            return [Verdict("vanishing_gradients", f"vanishing gradients: {where}", evidence,
                            advice)]  # fmt: skip
        if ratio > EXPLODING_RATIO:
            advice = "use a smaller initialization, normalization, or gradient clipping"
            return [Verdict("exploding_gradients", f"exploding gradients: {where}", evidence,
                            advice)]  # fmt: skip
    return _growing_gradients(probes, grads)


def _growing_gradients(probes: dict[str, Any], grads: dict[str, np.ndarray]) -> list[Verdict]:
    total = np.sqrt(sum(np.nan_to_num(g, nan=0.0) ** 2 for g in grads.values()))
    if len(total) < 2 or not total[0] > 0:
        return []
    peak = int(np.argmax(np.where(np.isfinite(total), total, np.inf)))
    growth = total[peak] / total[0]
    if not growth >= EXPLODING_GROWTH:
        return []
    step = int(probes["steps"][peak])
    message = (
        f"exploding gradients: gradient norm grew from {total[0]:.2g} at step "
        f"{int(probes['steps'][0])} to {total[peak]:.2g} at step {step} (×{_sci(growth)})"
    )
    evidence = {"grad_norm_first": float(total[0]), "grad_norm_peak": float(total[peak]),
                "step": step}  # fmt: skip
    advice = "lower the learning rate or clip the gradient norm"
    return [Verdict("exploding_gradients", message, evidence, advice)]


def update_ratios(records: Sequence[dict], probes: dict[str, Any] | None) -> list[Verdict]:
    """The weight tensor whose median ‖Δw‖/‖w‖ is furthest from 1e-3, if above
    ``UPDATE_HIGH`` or below ``UPDATE_LOW``."""
    if not probes:
        return []
    ratios = {n: _median(probes["params"][n]["update_ratio"]) for n in weight_params(probes)}
    ratios = {n: r for n, r in ratios.items() if math.isfinite(r) and r > 0}
    if not ratios:
        return []
    worst = max(ratios, key=lambda n: abs(math.log10(ratios[n] / HEALTHY_UPDATE)))
    r, layer = ratios[worst], probes["params"][worst]["layer"]
    evidence = {"parameter": worst, "layer": layer, "update_ratio": r, "healthy": HEALTHY_UPDATE}
    text = f"update/weight ratio {_sci(r)} in layer {layer} (healthy ~1e-3)"
    if r > UPDATE_HIGH:
        return [Verdict("update_ratio_high", f"{text}: learning rate too high", evidence,
                        "lower the learning rate")]  # fmt: skip
    if r < UPDATE_LOW:
        return [Verdict("update_ratio_low", f"{text}: learning rate too low", evidence,
                        "raise the learning rate")]  # fmt: skip
    return []


Rule = Callable[[Sequence[dict], "dict[str, Any] | None"], list[Verdict]]
RULES: tuple[Rule, ...] = (
    diverged,
    gradient_flow,
    dead_relus,
    saturated,
    update_ratios,
    overfitting,
    underfitting,
)
"""Every rule, in the order their verdicts are listed."""


def find_verdicts(records: Sequence[dict], probes: dict[str, Any] | None = None) -> list[Verdict]:
    """Every verdict the rules find in a run's metrics records and probe summary (None when
    the run had no probes: only the metric rules can speak then)."""
    return [v for rule in RULES for v in rule(records, probes)]


def format_verdicts(verdicts: Sequence[Verdict]) -> str:
    """Lines for a terminal: each message, then what to try."""
    if not verdicts:
        return "verdicts: no problem found in the curves and probes"
    lines = ["verdicts:"]
    for v in verdicts:
        lines.append(f"  - {v.message}")
        if v.advice:
            lines.append(f"    try: {v.advice}")
    return "\n".join(lines)
