"""Curves between two minima in weight space (Garipov et al. 2018, "Loss Surfaces, Mode
Connectivity, and Fast Ensembling of DNNs", NeurIPS; seed 000, "Mode connectivity").

A curve φ_θ(t), t ∈ [0, 1], joins the endpoint weights w1 = φ(0) and w2 = φ(1) through
trainable bends θ (the control points between them):

- "bezier" (eq. 3 for one bend): φ(t) = (1−t)² w1 + 2t(1−t) θ + t² w2; with k bends, the
  Bernstein polynomial of degree k+1 with control points (w1, θ_1, …, θ_k, w2).
- "polychain": straight pieces w1 → θ_1 → … → θ_k → w2, bend i reached at t = i/(k+1).
- "segment": (1−t) w1 + t w2, no bends: the straight line the trained curves beat.

Curve training minimizes E_{t~U(0,1)} L(φ_θ(t)) (eq. 5) by drawing one t per mini-batch and
back-propagating into θ only; the endpoints stay fixed; weight decay acts on φ_θ(t).
BatchNorm running statistics are not on the curve: before evaluating at t they are recomputed
by a pass over training data at φ(t) — without it the curve does not reproduce its endpoints.

Everything is pure over parameter lists (`torch.func.functional_call` on a private copy of the
model); the user's model is never modified. Parameter lists align with `named_parameters()`.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn
from torch.func import functional_call

from trainlab.data import InMemoryLoader, TensorSplit
from trainlab.nn.norms import BATCH_STAT_NORMS
from trainlab.optim import Optimizer, get_optimizer
from trainlab.schedules import cosine

CURVES: tuple[str, ...] = ("bezier", "polychain", "segment")
LossFn = Callable[[Tensor, Tensor], Tensor]


# ---------------------------------------------------------------- the curve φ_θ(t)


def curve_coefficients(kind: str, t: float, num_bends: int) -> list[float]:
    """Weights c_0..c_{k+1} of φ(t) = Σ_i c_i(t) p_i over the control points p = (w1, θ_1, …,
    θ_k, w2), k = `num_bends`. They are ≥ 0 and sum to 1 on [0, 1].

    Bezier: Bernstein basis c_i = C(k+1, i) tⁱ (1−t)^(k+1−i). Polychain: hat functions on
    the knots i/(k+1). Segment: (1−t, t), k must be 0.
    """
    _check_kind(kind, num_bends)
    n = num_bends + 1
    if kind in ("bezier", "segment"):
        return [math.comb(n, i) * t**i * (1 - t) ** (n - i) for i in range(n + 1)]
    piece = min(int(t * n), n - 1)  # t in [piece/n, (piece+1)/n]
    local = t * n - piece
    coeffs = [0.0] * (n + 1)
    coeffs[piece], coeffs[piece + 1] = 1 - local, local
    return coeffs


def _check_kind(kind: str, num_bends: int) -> None:
    if kind not in CURVES:
        raise ValueError(f"curve must be one of {CURVES}, got {kind!r}")
    if kind == "segment" and num_bends != 0:
        raise ValueError(f"a segment has no bends, got num_bends={num_bends}")
    if kind != "segment" and num_bends < 1:
        raise ValueError(f"a {kind} curve needs num_bends >= 1, got {num_bends}")


@dataclass(frozen=True)
class Curve:
    """φ(t) from control points (w1, θ_1, …, θ_k, w2), each a parameter list.

    The endpoints are detached constants; the bends are leaf tensors with requires_grad, the
    only thing curve training changes."""

    kind: str
    points: tuple[list[Tensor], ...]

    @property
    def bends(self) -> list[Tensor]:
        """All trainable tensors: the bends' parameter lists, concatenated."""
        return [p for point in self.points[1:-1] for p in point]

    def at(self, t: float) -> list[Tensor]:
        """φ(t) as a parameter list (differentiable in the bends)."""
        if not 0.0 <= t <= 1.0:
            raise ValueError(f"t must be in [0, 1], got {t}")
        coeffs = curve_coefficients(self.kind, t, len(self.points) - 2)
        live = [(c, point) for c, point in zip(coeffs, self.points, strict=True) if c != 0.0]
        return [sum(c * point[i] for c, point in live) for i in range(len(self.points[0]))]


def make_curve(
    start: Sequence[Tensor], end: Sequence[Tensor], kind: str = "bezier", num_bends: int = 1
) -> Curve:
    """A curve from `start` to `end` with bend i initialized at start + i/(k+1)·(end − start).

    Collinear, evenly spaced control points make both the Bezier curve and the polygonal chain
    equal to the segment, so training starts from the straight line (Garipov et al. 2018)."""
    _check_kind(kind, num_bends)
    start = [p.detach() for p in start]
    end = [p.detach() for p in end]
    if [p.shape for p in start] != [p.shape for p in end]:
        raise ValueError("start and end must be parameter lists of the same shapes")
    pairs = list(zip(start, end, strict=True))
    bends = [
        [(a + (i / (num_bends + 1)) * (b - a)).requires_grad_(True) for a, b in pairs]
        for i in range(1, num_bends + 1)
    ]
    return Curve(kind, (start, *bends, end))


def segment(start: Sequence[Tensor], end: Sequence[Tensor]) -> Curve:
    """The straight segment (1−t)·start + t·end."""
    return make_curve(start, end, "segment", 0)


# ---------------------------------------------------------------- the model at φ(t)


@dataclass(frozen=True)
class FunctionalNet:
    """A private copy of a model, called with a parameter list and a buffer dict."""

    net: nn.Module
    names: tuple[str, ...]

    @classmethod
    def of(cls, model: nn.Module) -> FunctionalNet:
        net = copy.deepcopy(model)
        for p in net.parameters():
            p.requires_grad_(False)
        return cls(net, tuple(name for name, _ in model.named_parameters()))

    def buffers(self) -> dict[str, Tensor]:
        """Fresh copies of the model's buffers (running statistics)."""
        return {k: b.clone() for k, b in self.net.named_buffers()}

    def __call__(self, params: Sequence[Tensor], buffers: dict[str, Tensor], x: Tensor) -> Tensor:
        state = {**dict(zip(self.names, params, strict=True)), **buffers}
        return functional_call(self.net, state, (x,))


def _norm_layers(net: nn.Module) -> list[tuple[str, nn.Module]]:
    return [
        (name, m)
        for name, m in net.named_modules()
        if isinstance(m, BATCH_STAT_NORMS) and getattr(m, "track_running_stats", True)
    ]


def has_batchnorm(model: nn.Module) -> bool:
    """Whether the model holds BatchNorm (or Batch Renorm) running statistics."""
    return bool(_norm_layers(model))


@torch.no_grad()
def _recompute(fnet: FunctionalNet, params: Sequence[Tensor], inputs: Iterable[Tensor]) -> dict:
    buffers = fnet.buffers()
    layers = _norm_layers(fnet.net)
    for name, _ in layers:
        buffers[f"{name}.running_mean"].zero_()
        buffers[f"{name}.running_var"].fill_(1.0)
        buffers[f"{name}.num_batches_tracked"].zero_()
    saved = [m.momentum for _, m in layers]
    fnet.net.train()
    seen = 0
    try:
        for x in inputs:
            for _, m in layers:  # example-weighted running average of the batch statistics
                m.momentum = len(x) / (seen + len(x))
            fnet(params, buffers, x)
            seen += len(x)
    finally:
        for (_, m), momentum in zip(layers, saved, strict=True):
            m.momentum = momentum
    return buffers


def recompute_batchnorm(
    model: nn.Module, params: Sequence[Tensor], inputs: Iterable[Tensor]
) -> dict[str, Tensor]:
    """The model's buffers with every BatchNorm layer's running statistics recomputed at weights
    `params` by one training-mode pass over the batches `inputs`.

    Each statistic is the example-weighted mean of the batch statistics (batch means, unbiased
    batch variances): momentum b/(n+b) for a batch of b after n examples, as in Garipov et al.'s
    evaluation; for equal batch sizes this is torch's cumulative average (momentum=None).
    The model is not modified."""
    return _recompute(FunctionalNet.of(model), list(params), inputs)


# ---------------------------------------------------------------- training the bends


@dataclass(frozen=True)
class CurveEpoch:
    """Mean training loss (at the t drawn per batch, without weight decay) of one epoch."""

    epoch: int
    loss: float
    lr: float


def _as_input(x: Tensor, channels_last: bool) -> Tensor:
    if channels_last and x.dim() == 4:
        return x.contiguous(memory_format=torch.channels_last)
    return x


def _l2(params: Sequence[Tensor]) -> Tensor:
    return sum((p * p).sum() for p in params)


def train_curve(
    model: nn.Module,
    curve: Curve,
    loader: InMemoryLoader,
    loss_fn: LossFn,
    *,
    epochs: int,
    lr: float,
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    seed: int = 0,
    channels_last: bool = False,
    on_epoch: Callable[[CurveEpoch], None] | None = None,
) -> list[CurveEpoch]:
    """Fit the curve's bends in place: per mini-batch draw t ~ U(0, 1), take an SGD step (with
    momentum, cosine-annealed lr) on L(φ_θ(t)) + ½·weight_decay·‖φ_θ(t)‖² (Garipov et al. 2018,
    eq. 5; weight decay on w(t)). BatchNorm layers use batch statistics. The model is not
    modified; t is drawn from a generator seeded with `seed`."""
    if epochs < 1 or lr <= 0:
        raise ValueError(f"need epochs >= 1 and lr > 0, got {epochs} and {lr}")
    if not curve.bends:
        raise ValueError("a segment has no bends to train")
    fnet = FunctionalNet.of(model)
    fnet.net.train()
    buffers = fnet.buffers()  # updated by training-mode BatchNorm, then discarded
    optimizer = Optimizer(curve.bends, get_optimizer("sgd", lr=lr, momentum=momentum))
    schedule = cosine(lr, epochs * len(loader))
    gen = torch.Generator().manual_seed(seed)
    history, step = [], 0
    for epoch in range(epochs):
        total, count = 0.0, 0
        for x, y in loader.epoch(epoch):
            optimizer.param_groups[0]["lr"] = schedule(step)
            params = curve.at(float(torch.rand((), generator=gen)))
            loss = loss_fn(fnet(params, buffers, _as_input(x, channels_last)), y)
            objective = loss + 0.5 * weight_decay * _l2(params) if weight_decay else loss
            optimizer.zero_grad(set_to_none=True)
            objective.backward()
            optimizer.step()
            total, count, step = total + loss.item() * len(y), count + len(y), step + 1
        history.append(CurveEpoch(epoch, total / count, schedule(step - 1)))
        if on_epoch is not None:
            on_epoch(history[-1])
    return history


# ---------------------------------------------------------------- evaluation along t


@dataclass(frozen=True)
class CurveProfile:
    """Train loss/error and test loss/error (errors as fractions) at each t of a curve."""

    t: np.ndarray
    train_loss: np.ndarray
    train_error: np.ndarray
    test_loss: np.ndarray
    test_error: np.ndarray

    def arrays(self, prefix: str = "") -> dict[str, np.ndarray]:
        """The five arrays by name (with `prefix`), e.g. for `np.savez`."""
        names = ("t", "train_loss", "train_error", "test_loss", "test_error")
        return {prefix + n: getattr(self, n) for n in names}

    def worst(self) -> dict[str, float]:
        """Largest train loss and test error along t, where the test error peaks, and the
        endpoints' values."""
        i = int(np.argmax(self.test_error))
        return {
            "max_train_loss": float(self.train_loss.max()),
            "max_test_error": float(self.test_error[i]),
            "t_max_test_error": float(self.t[i]),
            "start_test_error": float(self.test_error[0]),
            "end_test_error": float(self.test_error[-1]),
            "start_train_loss": float(self.train_loss[0]),
            "end_train_loss": float(self.train_loss[-1]),
        }


@torch.no_grad()
def _evaluate(
    fnet: FunctionalNet,
    params: Sequence[Tensor],
    buffers: dict[str, Tensor],
    split: TensorSplit,
    loss_fn: LossFn,
    batch_size: int,
    channels_last: bool,
) -> tuple[float, float]:
    """(mean loss, error) over `split` in eval mode; error is NaN for regression targets."""
    fnet.net.eval()
    loss_sum, correct = 0.0, 0
    for lo in range(0, len(split), batch_size):
        x, y = split.x[lo : lo + batch_size], split.y[lo : lo + batch_size]
        out = fnet(params, buffers, _as_input(x, channels_last))
        loss_sum += float(loss_fn(out, y)) * len(y)
        if y.dtype == torch.int64:
            correct += int((out.argmax(dim=1) == y).sum())
    error = 1 - correct / len(split) if split.y.dtype == torch.int64 else math.nan
    return loss_sum / len(split), error


def evaluation_points(points: int) -> np.ndarray:
    """`points` evenly spaced t in [0, 1], ends included (61 in Garipov et al. 2018)."""
    if points < 2:
        raise ValueError(f"points must be >= 2, got {points}")
    return np.linspace(0.0, 1.0, points)


def evaluate_curve(
    model: nn.Module,
    curve: Curve,
    *,
    train: TensorSplit,
    test: TensorSplit,
    loss_fn: LossFn,
    points: int = 61,
    bn_inputs: TensorSplit | None = None,
    batch_size: int = 1000,
    channels_last: bool = False,
    on_point: Callable[[int, float, tuple[float, ...]], None] | None = None,
) -> CurveProfile:
    """Train loss/error on `train` and test loss/error on `test` at `points` evenly spaced t.

    At each t, BatchNorm running statistics are first recomputed over `bn_inputs` (default:
    `train`) in batches of 128 (`recompute_batchnorm`); models without BatchNorm keep their
    buffers. `on_point(i, t, (train_loss, train_error, test_loss, test_error))` reports
    progress. The model is not modified."""
    fnet = FunctionalNet.of(model)
    bn_split = train if bn_inputs is None else bn_inputs
    recompute = has_batchnorm(fnet.net)
    ts = evaluation_points(points)
    rows = []
    for i, t in enumerate(ts):
        with torch.no_grad():
            params = [p.detach() for p in curve.at(float(t))]
        buffers = fnet.buffers()
        if recompute:
            batches = (_as_input(x, channels_last) for x in bn_split.x.split(128))
            buffers = _recompute(fnet, params, batches)
        train_m = _evaluate(fnet, params, buffers, train, loss_fn, batch_size, channels_last)
        test_m = _evaluate(fnet, params, buffers, test, loss_fn, batch_size, channels_last)
        rows.append((*train_m, *test_m))
        if on_point is not None:
            on_point(i, float(t), rows[-1])
    cols = np.asarray(rows, dtype=np.float64).T
    return CurveProfile(ts, cols[0], cols[1], cols[2], cols[3])
