"""Sanity checks before a long run (CS231n lecture 6, "Babysitting the learning process", the
seed-000 deck; CS231n notes "Neural Networks 3", gradient checks and sanity checks).

Each check takes a model and data, works on a copy (the caller's model, its mode and the torch
RNG are left as they were) and returns a :class:`CheckResult` with the measured number and the
threshold it was held to:

- :func:`initial_loss_check` — the loss at initialization is about what chance predicts
  (log C for a softmax classifier over C classes);
- :func:`gradient_check` — autograd agrees with central finite differences in float64
  (relative error ≤ 1e-7 good, ≥ 1e-2 wrong, in between a warning);
- :func:`overfit_check` — a tiny subset is learned to 100% training accuracy;
- :func:`regularization_check` — the objective rises when the regularization strength rises;
- :func:`batch_independence_check` — example i's loss has zero gradient w.r.t. example j ≠ i.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from trainlab.nn import BatchRenorm1d, BatchRenorm2d
from trainlab.train.loop import NonFiniteLossError, count_correct, train_step
from trainlab.train.losses import LossFn

__all__ = [
    "GRAD_GOOD",
    "GRAD_WRONG",
    "CheckResult",
    "GradEntry",
    "batch_independence_check",
    "compare_gradients",
    "expected_initial_loss",
    "gradient_check",
    "initial_loss_check",
    "overfit_check",
    "regularization_check",
    "relative_error",
    "uses_batch_statistics",
]

Status = Literal["pass", "warn", "fail", "skip"]
GRAD_GOOD = 1e-7  # CS231n: "relative error <= 1e-7 you should be happy"
GRAD_WRONG = 1e-2  # CS231n: "relative error > 1e-2 usually means the gradient is probably wrong"
_BATCH_STAT_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm,
                     BatchRenorm1d, BatchRenorm2d)  # fmt: skip


@dataclass(frozen=True)
class CheckResult:
    """One check's outcome: `measured` is the number held to `threshold` (a phrase such as
    "≤ 1e-7 good, ≥ 1e-2 wrong"); `detail` says how it was measured."""

    name: str
    status: Status
    measured: float | None
    threshold: str
    detail: str = ""

    @property
    def failed(self) -> bool:
        return self.status == "fail"

    def line(self) -> str:
        """One terminal line: status, name, measured number, threshold, detail."""
        value = "—" if self.measured is None else f"{self.measured:.4g}"
        text = f"{self.status.upper():<4}  {self.name:<20} {value:>10}  ({self.threshold})"
        return f"{text}  {self.detail}" if self.detail else text

    def to_dict(self) -> dict[str, object]:
        return {"check": self.name, "status": self.status, "measured": self.measured,
                "threshold": self.threshold, "detail": self.detail}  # fmt: skip


def uses_batch_statistics(model: nn.Module) -> bool:
    """True if `model` holds a BatchNorm / Batch Renorm layer (it mixes the examples of a
    batch in training mode)."""
    return any(isinstance(m, _BATCH_STAT_NORMS) for m in model.modules())


@contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Run the body with the torch RNG seeded, restoring the caller's RNG state on exit."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


# ---- loss at initialization -----------------------------------------------------------------


def expected_initial_loss(loss: str, num_classes: int | None) -> tuple[float | None, str]:
    """The loss a classifier that predicts chance should have, and how it is derived; None
    with the reason when there is no such value. Cross-entropy with uniform predictions is
    log C whatever the label smoothing (the smoothed target still sums to 1); `nll` expects
    log-probabilities, so on raw logits its loss is far from log C and the check rightly fails."""
    if num_classes is None:
        return None, "regression targets: no chance-level loss"
    if loss in ("cross_entropy", "nll"):
        return math.log(num_classes), f"log({num_classes})"
    if loss == "multiclass_hinge":  # CS231n: an SVM with small weights scores ≈ 0 -> C − 1
        return float(num_classes - 1), f"C−1 = {num_classes - 1} (scores ≈ 0)"
    if loss == "logistic":
        return math.log(2.0), "log(2) (score ≈ 0)"
    return None, f"loss '{loss}' has no chance-level value that holds at any init scale"


def initial_loss_check(
    model: nn.Module,
    loss_fn: LossFn,
    x: torch.Tensor,
    y: torch.Tensor,
    expected: float | None,
    *,
    how: str = "",
    tolerance: float = 0.1,
    wrong: float = 0.5,
    seed: int = 0,
) -> CheckResult:
    """The mean loss on (x, y) at the model's current weights against `expected` (e.g. log C;
    CS231n: "make sure the loss is reasonable", 2.3 for 10 classes): pass when it is within
    `tolerance`·expected, fail beyond `wrong`·expected, warn in between (with iid logits of
    std s, cross-entropy is about log C + s²/2, so +50% at C = 10 means s ≈ 1.5: the init
    is too confident). Training mode (as at the first step) on a copy, so BatchNorm's running
    statistics are untouched; the RNG is seeded for dropout."""
    name = "loss at init"
    if expected is None:
        return CheckResult(name, "skip", None, "no expected value", how)
    net = copy.deepcopy(model).train()
    with _seeded(seed), torch.no_grad():
        value = float(loss_fn(net(x), y))
    off = abs(value - expected) / expected if math.isfinite(value) else math.inf
    status: Status = "pass" if off <= tolerance else "warn" if off <= wrong else "fail"
    threshold = (f"expected {how or 'value'} = {expected:.4g}: ±{100 * tolerance:.0f}% good, "
                 f"±{100 * wrong:.0f}% wrong")  # fmt: skip
    return CheckResult(name, status, value, threshold, f"{len(y)} examples, {100 * off:.0f}% off")


# ---- gradient check -------------------------------------------------------------------------


@dataclass(frozen=True)
class GradEntry:
    """One checked coordinate: parameter name, flat index, autograd and numerical gradient,
    and the finite-difference step that gave it."""

    param: str
    index: int
    analytic: float
    numeric: float
    eps: float

    @property
    def rel_error(self) -> float:
        return relative_error(self.analytic, self.numeric)


def relative_error(analytic: float, numeric: float) -> float:
    """|a − n| / max(|a|, |n|) (CS231n "Gradient checks"); 0 when both are exactly 0."""
    scale = max(abs(analytic), abs(numeric))
    return 0.0 if scale == 0.0 else abs(analytic - numeric) / scale


def compare_gradients(
    model: nn.Module,
    loss_fn: LossFn,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    coords: int = 5,
    eps: float = 1e-5,
    seed: int = 0,
) -> list[GradEntry]:
    """Autograd against central differences (f(w+h) − f(w−h)) / 2h on `coords` random
    coordinates of every trainable parameter tensor, on a float64 copy of `model` in eval mode
    (BatchNorm uses its running statistics, dropout and noise layers are off, so the loss is a
    deterministic function of the weights). Floating inputs are cast to float64 too.

    A coordinate whose relative error exceeds 1e-7 at h = `eps` is measured again at h/10 and
    h/100 and keeps the best: a step that crosses a kink (a ReLU or max-pool switching) spoils
    the difference at that h only (CS231n "Kinks in the objective"), while a wrong backward
    disagrees at every h."""
    net = copy.deepcopy(model).double().eval()
    x = x.double() if x.is_floating_point() else x
    y = y.double() if y.is_floating_point() else y
    params = [(n, p) for n, p in net.named_parameters() if p.requires_grad]
    net.zero_grad(set_to_none=True)
    loss_fn(net(x), y).backward()
    gen = torch.Generator().manual_seed(seed)
    entries = []
    with torch.no_grad():
        for name, p in params:
            grad = None if p.grad is None else p.grad.reshape(-1)
            for i in torch.randperm(p.numel(), generator=gen)[:coords].tolist():
                at = tuple(int(k) for k in torch.unravel_index(torch.tensor(i), p.shape))
                analytic = 0.0 if grad is None else float(grad[i])
                entries.append(_best_entry(lambda: float(loss_fn(net(x), y)), p, name, i, at,
                                           analytic, eps))  # fmt: skip
    return entries


def _best_entry(
    f: Callable[[], float],
    w: torch.Tensor,
    name: str,
    i: int,
    at: tuple[int, ...],
    analytic: float,
    eps: float,
) -> GradEntry:
    """The coordinate's entry at step `eps`, or at eps/10, eps/100 if those agree better."""
    best = GradEntry(name, i, analytic, _central_difference(f, w, at, eps), eps)
    for h in (eps / 10, eps / 100):
        if best.rel_error <= GRAD_GOOD:
            break
        entry = GradEntry(name, i, analytic, _central_difference(f, w, at, h), h)
        best = entry if entry.rel_error < best.rel_error else best
    return best


def _central_difference(
    f: Callable[[], float], w: torch.Tensor, at: tuple[int, ...], eps: float
) -> float:
    """(f(w + eps·e_at) − f(w − eps·e_at)) / (2·eps), restoring w[at] afterwards (indexing by
    position works for any memory layout, e.g. channels_last convolution weights)."""
    old = float(w[at])
    w[at] = old + eps
    plus = f()
    w[at] = old - eps
    minus = f()
    w[at] = old
    return (plus - minus) / (2 * eps)


def gradient_check(
    model: nn.Module,
    loss_fn: LossFn,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    coords: int = 5,
    eps: float = 1e-5,
    seed: int = 0,
) -> CheckResult:
    """The worst relative error of :func:`compare_gradients`: pass ≤ 1e-7, fail ≥ 1e-2, warn in
    between (CS231n: 1e-4 can be fine for objectives with kinks such as ReLU)."""
    entries = compare_gradients(model, loss_fn, x, y, coords=coords, eps=eps, seed=seed)
    worst = max(entries, key=lambda e: e.rel_error)
    err = worst.rel_error
    status: Status = "pass" if err <= GRAD_GOOD else "fail" if err >= GRAD_WRONG else "warn"
    bn = ", BatchNorm on running statistics" if uses_batch_statistics(model) else ""
    retried = sum(e.eps < eps for e in entries)
    kinks = f"; {retried} re-measured at a smaller step (kinks)" if retried else ""
    detail = (f"{len(entries)} coordinates, {len(y)} examples, float64, eval mode{bn}, "
              f"h={eps:g}{kinks}; worst {worst.param}[{worst.index}]: autograd "
              f"{worst.analytic:.6g} vs numerical {worst.numeric:.6g}")  # fmt: skip
    return CheckResult("gradient check", status, err, "≤ 1e-7 good, ≥ 1e-2 wrong", detail)


# ---- overfit a tiny subset ------------------------------------------------------------------


def overfit_check(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: LossFn,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    max_steps: int = 300,
    seed: int = 0,
) -> CheckResult:
    """Train `model` (in place: pass a fresh one, with regularization off) full-batch on the
    tiny set (x, y) for at most `max_steps` steps and stop once it is learned: 100% training
    accuracy for class labels, or a loss below 1% of the first for regression (CS231n: "make
    sure that you can overfit a very small portion of the training data")."""
    classify = not y.is_floating_point()
    first, loss, step = math.nan, math.nan, 0
    model.train()
    with _seeded(seed):
        for step in range(1, max_steps + 1):
            try:
                loss, _ = train_step(model, optimizer, loss_fn, x, y)
            except NonFiniteLossError as err:
                loss = err.value
                break
            first = loss if step == 1 else first
            if _learned(model, x, y, loss, first, classify):
                break
    done = _learned(model, x, y, loss, first, classify)
    return _overfit_result(done, model, x, y, loss, first, step, max_steps, classify)


def _train_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return int(count_correct(model(x), y)) / len(y)


def _learned(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss: float, first: float, classify: bool
) -> bool:
    if not math.isfinite(loss):
        return False
    if classify:
        return _train_accuracy(model, x, y) == 1.0
    return loss <= 0.01 * first


def _overfit_result(
    done: bool,
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    loss: float,
    first: float,
    step: int,
    max_steps: int,
    classify: bool,
) -> CheckResult:
    when = f"at step {step}" if done else f"after {step} steps"
    detail = f"{len(y)} examples, loss {first:.4g} -> {loss:.4g} {when}, regularization off"
    name = f"overfit {len(y)} examples"
    status: Status = "pass" if done else "fail"
    if classify:
        acc = _train_accuracy(model, x, y) if math.isfinite(loss) else 0.0
        return CheckResult(name, status, acc, f"train accuracy 1 within {max_steps} steps", detail)
    ratio = loss / first if first else math.nan
    return CheckResult(name, status, ratio, f"loss/first ≤ 0.01 within {max_steps} steps", detail)


# ---- regularization raises the loss ---------------------------------------------------------


def regularization_check(
    model: nn.Module,
    loss_fn: LossFn,
    x: torch.Tensor,
    y: torch.Tensor,
    penalty_at: Callable[[nn.Module, float], Callable[[], torch.Tensor] | None],
    *,
    factor: float = 10.0,
    what: str = "regularization",
    seed: int = 0,
) -> CheckResult:
    """The objective loss + penalty at the current weights with every regularization strength
    multiplied by 0 and by `factor` (`penalty_at(model, scale)` builds the penalty on the given
    model): it must rise (CS231n: "crank up regularization — loss went up, good"). Same copy,
    same seeded RNG for both, training mode (activity penalties are measured on training
    forwards)."""
    values = []
    for scale in (0.0, factor):
        net = copy.deepcopy(model).train()
        penalty = penalty_at(net, scale)
        with _seeded(seed), torch.no_grad():
            objective = loss_fn(net(x), y)
            if penalty is not None:
                objective = objective + penalty()
        values.append(float(objective))
    rise = values[1] - values[0]
    ok = math.isfinite(rise) and rise > 0
    detail = f"loss {values[0]:.4g} with {what} ×0, {values[1]:.4g} with ×{factor:g}"
    return CheckResult("regularization", "pass" if ok else "fail", rise, "rise > 0", detail)


# ---- batch independence ---------------------------------------------------------------------


def _redraw_zero_weights(net: nn.Module, seed: int) -> int:
    """Give the all-zero weight matrices of `net` (a copy) small random values: a zero output
    layer cuts every path from the inputs and would leave the check nothing to look at."""
    g = torch.Generator().manual_seed(seed)
    count = 0
    with torch.no_grad():
        for p in net.parameters():
            if p.dim() >= 2 and not p.any():
                p.copy_(0.01 * torch.randn(p.shape, generator=g, dtype=p.dtype))
                count += 1
    return count


def batch_independence_check(
    model: nn.Module,
    loss_fn: LossFn,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    seed: int = 0,
) -> CheckResult:
    """For each example i of the batch, the gradient of its loss w.r.t. every other input
    x_j (j ≠ i) must be exactly zero: autograd gives exact zeros where no path exists, so any
    non-zero value means the model mixes examples (a reshape or a reduction over the wrong
    dimension). Training mode with a seeded RNG, except that a model with BatchNorm — which
    mixes the batch by design — is checked in eval mode, and the result says so."""
    batch_norm = uses_batch_statistics(model)
    net = copy.deepcopy(model).train(not batch_norm)
    redrawn = _redraw_zero_weights(net, seed)
    x = x.detach().clone().requires_grad_(True)
    cross, own = 0.0, 0.0
    for i in range(len(y)):
        with _seeded(seed):
            outputs = net(x)
        (grad,) = torch.autograd.grad(loss_fn(outputs[i : i + 1], y[i : i + 1]), x)
        others = torch.cat([grad[:i], grad[i + 1 :]])
        cross = max(cross, float(others.abs().max()))
        own = max(own, float(grad[i].abs().max()))
    mode = "eval mode (BatchNorm mixes the batch by design)" if batch_norm else "training mode"
    detail = f"{len(y)} examples, {mode}; largest own-input gradient {own:.3g}"
    if redrawn:
        detail += f"; {redrawn} all-zero weight matrices (e.g. a zero head) redrawn for the check"
    status: Status = "fail" if cross != 0.0 else "pass" if own > 0 else "warn"
    if status == "warn":
        detail += " (all zero: the check says nothing)"
    return CheckResult("batch independence", status, cross, "max |∂L_i/∂x_j|, j ≠ i, = 0", detail)
