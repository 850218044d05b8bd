"""Loss and accuracy at many points θ = Σ_j c_j V_j of weight space, vectorized or one by one.

A surface is a set of coefficient rows c (N, m) over m fixed *vectors* V_j (each a state: a
list of tensors aligned with `names`): a plane around θ is V = (θ, d₁, d₂), c = (1, α, β); an
interpolation is V = (θ_A, θ_B), c = (1 − α, α), so α = 0 and α = 1 give θ_A and θ_B exactly.

Two evaluators, equal up to float rounding (tests: 1e-5):
- `loop`: one point at a time through `functional_call` (the reference tools' method, without
  writing into a model);
- `vmap`: a chunk of P points at once, `torch.func.vmap` over the stacked states (P, ...).
Which is faster depends on the model and batch (ANCHORS: vmap 5-6x faster for a 2.7k-param
MLP at batch 256, 1.6x slower for a 20k-param CNN on CPU), so `choose` times both on the first
points of the surface itself and keeps the faster; those timed points are not evaluated twice.

BatchNorm (Li et al. 2018 discuss both; Garipov et al. 2018 recompute): "eval" uses the running
statistics (the model's, or moved along the vectors when they include them); "recompute"
re-estimates them at each point over `stats_batches` (a cumulative average, momentum None)
before evaluating in eval mode.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import Tensor, nn
from torch.func import functional_call, vmap

Batch = tuple[Tensor, Tensor]
BNMode = Literal["eval", "recompute"]
BN_MODES: tuple[str, ...] = ("eval", "recompute")
EVALUATORS: tuple[str, ...] = ("auto", "vmap", "loop")
_BN = nn.modules.batchnorm._BatchNorm


@dataclass(frozen=True)
class Metrics:
    """Mean loss and accuracy (NaN for regression targets) at each of N points, float64."""

    loss: np.ndarray
    acc: np.ndarray


def _frozen_copies(model: nn.Module) -> tuple[nn.Module, nn.Module]:
    """Two deep copies in eval mode, gradients off: one to evaluate, one whose BatchNorm layers
    are in training mode with momentum None (cumulative average) to re-estimate statistics."""
    evaluate = copy.deepcopy(model).eval().requires_grad_(False)
    stats = copy.deepcopy(evaluate)
    for module in stats.modules():
        if isinstance(module, _BN):
            module.train()
            module.momentum = None
    return evaluate, stats


def _fresh_bn_buffers(model: nn.Module) -> dict[str, Tensor]:
    """Reset BatchNorm statistics: running mean 0, running variance 1."""
    out = {}
    for prefix, module in model.named_modules():
        if isinstance(module, _BN) and module.track_running_stats:
            out[f"{prefix}.running_mean"] = torch.zeros_like(module.running_mean)
            out[f"{prefix}.running_var"] = torch.ones_like(module.running_var)
    return out


class PointEvaluator:
    """Evaluates the loss and accuracy of `model`'s architecture at points Σ_j c_j V_j.

    model: gives the architecture and the buffers not moved by the vectors (copied once; the
      model itself is never modified). vectors: m states aligned with `names`.
    batches: the examples, as (x, y) batches; the loss is the size-weighted mean of `loss_fn`.
    chunk: points per vmap call; default keeps P × batch size ≤ 4096 examples in flight.
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn: Callable[[Tensor, Tensor], Tensor],
        batches: Sequence[Batch],
        names: Sequence[str],
        vectors: Sequence[Sequence[Tensor]],
        *,
        bn: BNMode = "eval",
        stats_batches: Sequence[Batch] | None = None,
        chunk: int | None = None,
    ) -> None:
        if bn not in BN_MODES:
            raise ValueError(f"bn must be one of {BN_MODES}, got {bn!r}")
        if bn == "recompute" and not stats_batches:
            raise ValueError("bn='recompute' needs stats_batches (training examples)")
        if not batches:
            raise ValueError("batches must hold at least one (x, y) pair")
        self.names, self.loss_fn, self.bn = tuple(names), loss_fn, bn
        self.batches, self.stats_batches = list(batches), list(stats_batches or [])
        self.vectors = [list(v) for v in vectors]
        self.model, self.stats_model = _frozen_copies(model)
        moved = set(self.names)
        self.fixed = {k: b for k, b in self.model.named_buffers() if k not in moved}
        self.total = sum(int(x.shape[0]) for x, _ in self.batches)
        self.classify = self.batches[0][1].dtype == torch.int64
        biggest = max(int(x.shape[0]) for x, _ in self.batches)
        self.chunk = chunk or int(np.clip(4096 // biggest, 2, 32))
        # (m, numel) per tensor, for building P points with one matmul each
        self._stacked = [torch.stack([v[t].reshape(-1) for v in self.vectors])
                         for t in range(len(self.names))]  # fmt: skip

    # ---------------------------------------------------------------- building points
    def point(self, c: Sequence[float]) -> dict[str, Tensor]:
        """One state Σ_j c_j V_j (exact when c is (1, 0, ...) or (0, 1)), by name."""
        out = {}
        for t, name in enumerate(self.names):
            acc = self.vectors[0][t] * c[0]
            for j in range(1, len(c)):
                acc = acc + self.vectors[j][t] * c[j]
            out[name] = acc
        return out

    def stacked_points(self, coeffs: np.ndarray) -> dict[str, Tensor]:
        """P states stacked along a new dim 0: tensor t is (coeffs @ V_t) reshaped."""
        out = {}
        for t, name in enumerate(self.names):
            v = self._stacked[t]
            c = torch.as_tensor(coeffs, dtype=v.dtype, device=v.device)
            out[name] = (c @ v).reshape(len(coeffs), *self.vectors[0][t].shape)
        return out

    # ---------------------------------------------------------------- one state, any batching
    def _recomputed_buffers(self, state: dict[str, Tensor], batched: int | None) -> dict:
        """BatchNorm statistics re-estimated at `state` (P stacked states when `batched`)."""
        fresh = _fresh_bn_buffers(self.stats_model)
        if batched is not None:
            fresh = {k: b.expand(batched, *b.shape).clone() for k, b in fresh.items()}
        # num_batches_tracked is shared by the P points (all see the same batches): unbatched,
        # so BatchNorm's 1/num_batches_tracked factor is a plain number under vmap.
        counters = {k: torch.zeros_like(b) for k, b in self.fixed.items()
                    if k.endswith("num_batches_tracked")}  # fmt: skip
        rest = {k: b for k, b in self.fixed.items() if k not in fresh and k not in counters}

        def run(s: dict, bufs: dict, x: Tensor) -> Tensor:
            return functional_call(self.stats_model, {**rest, **counters, **s, **bufs}, (x,))

        step = run if batched is None else vmap(run, in_dims=(0, 0, None))
        for x, _ in self.stats_batches:
            step(state, fresh, x)  # BatchNorm updates `fresh` in place
        return fresh

    def _metrics_fn(self) -> Callable:
        def one(state: dict, bufs: dict, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
            out = functional_call(self.model, {**self.fixed, **bufs, **state}, (x,))
            loss = self.loss_fn(out, y)
            correct = (out.argmax(-1) == y).sum() if self.classify else torch.zeros(())
            return loss, correct.to(loss.dtype)

        return one

    def _evaluate_state(self, state: dict, batched: int | None) -> tuple[Tensor, Tensor]:
        bufs = self._recomputed_buffers(state, batched) if self.bn == "recompute" else {}
        fn = self._metrics_fn()
        if batched is not None:
            fn = vmap(fn, in_dims=(0, 0 if bufs else None, None, None))
        loss_sum = correct = 0.0
        for x, y in self.batches:
            loss, right = fn(state, bufs, x, y)
            loss_sum = loss_sum + loss.double() * x.shape[0]
            correct = correct + right.double()
        acc = correct / self.total if self.classify else torch.full_like(loss_sum, float("nan"))
        return loss_sum / self.total, acc

    # ---------------------------------------------------------------- the two evaluators
    @torch.no_grad()
    def loop(self, coeffs: np.ndarray) -> Metrics:
        """Point by point: functional_call once per point and batch."""
        rows = [self._evaluate_state(self.point(c), None) for c in np.asarray(coeffs).tolist()]
        return Metrics(np.array([float(r[0]) for r in rows]), np.array([float(r[1]) for r in rows]))

    @torch.no_grad()
    def vectorized(self, coeffs: np.ndarray) -> Metrics:
        """Chunks of `self.chunk` points per call of the vmapped model."""
        losses, accs = [], []
        for lo in range(0, len(coeffs), self.chunk):
            part = np.asarray(coeffs[lo : lo + self.chunk])
            loss, acc = self._evaluate_state(self.stacked_points(part), len(part))
            losses.append(loss.cpu().numpy())
            accs.append(acc.cpu().numpy())
        return Metrics(np.concatenate(losses), np.concatenate(accs))

    def by_name(self, name: str) -> Callable[[np.ndarray], Metrics]:
        """The evaluator called `name` ("vmap" or "loop")."""
        return {"vmap": self.vectorized, "loop": self.loop}[name]


@dataclass(frozen=True)
class Choice:
    """Which evaluator `choose` picked, from the seconds per point it measured for each."""

    evaluator: str
    seconds_per_point: dict[str, float]
    indices: np.ndarray  # the points evaluated while timing
    metrics: Metrics  # their values

    def describe(self) -> str:
        times = ", ".join(f"{k} {1e3 * v:.2f} ms/point" for k, v in self.seconds_per_point.items())
        return f"{self.evaluator} ({times})"


def choose(evaluator: PointEvaluator, coeffs: np.ndarray) -> Choice:
    """Time the two evaluators on the first points of `coeffs` and return the faster, with the
    metrics already computed there (nothing is evaluated twice).

    One vmap chunk runs first untimed (vmap's first call traces and allocates, often ten times
    a later one), then one vmap chunk and as many points one by one are timed.
    """
    n = len(coeffs)
    p = min(evaluator.chunk, n // 3)
    if p < 1:
        return Choice("loop", {}, np.arange(n), evaluator.loop(coeffs))
    parts = [evaluator.vectorized(coeffs[:p])]
    timed = {}
    for name, lo in (("vmap", p), ("loop", 2 * p)):
        start = time.perf_counter()
        parts.append(evaluator.by_name(name)(coeffs[lo : lo + p]))
        timed[name] = (time.perf_counter() - start) / p
    metrics = Metrics(np.concatenate([m.loss for m in parts]),
                      np.concatenate([m.acc for m in parts]))  # fmt: skip
    return Choice(min(timed, key=timed.get), timed, np.arange(3 * p), metrics)
