"""Loss and accuracy at many points θ = Σ_j c_j V_j of weight space, vectorized or one by one.

A surface is a set of coefficient rows c (N, m) over m fixed *vectors* V_j (each a state: a
list of tensors aligned with `names`): a plane around θ is V = (θ, d₁, d₂), c = (1, α, β); an
interpolation is V = (θ_A, θ_B), c = (1 − α, α), so α = 0 and α = 1 give θ_A and θ_B exactly.

Two evaluators, equal up to float rounding (tests: 1e-5):
- `loop`: one point at a time, written into a private copy of the model which is then called
  (the reference tools' method, never on the user's model), over cache-sized pieces of the
  batches (`micro_batch`);
- `vmap`: a chunk of P points at once, `torch.func.vmap` over the stacked states (P, ...).
Which is faster depends on the model and batch (ANCHORS: vmap 5-6x faster for a 2.7k-param
MLP at batch 256, 1.6x slower for a 20k-param CNN on CPU), so `choose` times the loop on the
first points of the surface itself, then vmap unless a point is compute-bound (> 20 ms), and
keeps the faster; the timed points are not evaluated again.

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

from trainlab.nn.norms import BATCH_STAT_NORMS

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


def activation_floats(model: nn.Module, x: Tensor) -> int:
    """Numbers of outputs of all leaf modules for the one example x (1, ...): the activations
    one point and one example hold in flight."""
    total = 0

    def count(module: nn.Module, inputs: tuple, output: Tensor) -> None:
        nonlocal total
        total += output.numel() if isinstance(output, Tensor) else 0

    leaves = [m for m in model.modules() if not list(m.children())]
    handles = [m.register_forward_hook(count) for m in leaves]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return total


def default_chunk(model: nn.Module, batches: Sequence[Batch], budget: int = 2**20) -> int:
    """Points per vmap call: as many as keep P × batch × activations under `budget` floats
    (4 MB in float32, cache-sized: wider chunks measured slower), between 2 and 256."""
    x = max((x for x, _ in batches), key=len)
    per_point = activation_floats(model, x[:1]) * len(x)
    return int(np.clip(budget // max(per_point, 1), 2, 256))


def micro_batch(model: nn.Module, batches: Sequence[Batch], budget: int = 2**24) -> int:
    """Examples per forward call of the loop evaluator: as many as keep the activations of one
    call under `budget` floats (64 MB in float32), a multiple of 8, at least 16. A CNN forward
    over 1000 Fashion-MNIST images at once runs out of cache: measured 2x slower per image
    than in calls of 125-250 (the default CNN gets 117); small models keep their batches."""
    x = max((x for x, _ in batches), key=len)
    per_example = max(activation_floats(model, x[:1]), 1)
    return max(16, budget // per_example // 8 * 8)


def _pieces(batches: Sequence[Batch], size: int | None) -> list[Batch]:
    """The batches cut into pieces of at most `size` examples (None: as they are)."""
    if size is None:
        return list(batches)
    return [(x[i : i + size], y[i : i + size]) for x, y in batches for i in range(0, len(y), size)]


class _OverBatches(nn.Module):
    """`model` run over fixed batches in one call, so that `functional_call` swaps a point's
    tensors in once per point (not once per batch). Returns (Σ_b (n_b / N) ℓ_b, number
    correct): the mean loss over the N examples, exactly ℓ when there is one batch (up to
    float rounding when `micro` cuts the batches into forward calls of that many examples)."""

    def __init__(
        self, model: nn.Module, loss_fn: Callable, batches: list[Batch], micro: int | None = None
    ) -> None:
        super().__init__()
        self.model, self.loss_fn, self.batches = model, loss_fn, _pieces(batches, micro)
        self.classify = bool(batches) and batches[0][1].dtype == torch.int64
        total = sum(len(y) for _, y in batches)
        self.weights = [len(y) / total for _, y in self.batches]

    def forward(self) -> tuple[Tensor, Tensor]:
        loss = correct = torch.zeros((), dtype=torch.float64)
        for (x, y), weight in zip(self.batches, self.weights, strict=True):
            out = self.model(x)
            loss = loss + self.loss_fn(out, y).double() * weight
            if self.classify:
                correct = correct + (out.argmax(-1) == y).sum()
        return loss, correct


def _flatten_state(tensors: Sequence[Tensor], dtype: torch.dtype) -> Tensor:
    return torch.cat([t.detach().reshape(-1).to(dtype) for t in tensors])


class PointEvaluator:
    """Evaluates the loss and accuracy of `model`'s architecture at points Σ_j c_j V_j.

    model: gives the architecture and the buffers not moved by the vectors (copied once; the
      model itself is never modified). vectors: m states aligned with `names`.
    batches: the examples, as (x, y) batches; the loss is the size-weighted mean of `loss_fn`.
    chunk: points per vmap call (default: `default_chunk`).
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
        if bn == "recompute" and any(
            isinstance(m, BATCH_STAT_NORMS) and not isinstance(m, _BN) for m in model.modules()
        ):
            raise ValueError("bn='recompute' re-estimates torch BatchNorm layers only; this model "
                             "has Batch Renorm layers: use bn='eval'")  # fmt: skip
        if not batches:
            raise ValueError("batches must hold at least one (x, y) pair")
        self.names, self.bn = tuple(names), bn
        evaluate, stats = _frozen_copies(model)
        self.total = sum(int(x.shape[0]) for x, _ in batches)
        self.classify = batches[0][1].dtype == torch.int64
        self.chunk = chunk or default_chunk(evaluate, batches)
        self._metrics = _OverBatches(evaluate, loss_fn, list(batches))
        # the loop writes each point into a private copy and calls it, as the reference tools
        # do with the user's model: measured 1.1-1.5x faster than functional_call for a CNN
        # ... in forward calls of `micro_batch` examples (cache-sized)
        private = _frozen_copies(model)[1].eval()
        self.micro = micro_batch(private, batches)
        self._net = _OverBatches(private, loss_fn, list(batches), self.micro)
        targets = dict(self._net.model.named_parameters()) | dict(self._net.model.named_buffers())
        self._targets = [targets[n] for n in self.names]
        self._stats = _OverBatches(stats, lambda out, y: out.sum() * 0, list(stats_batches or []))
        moved = set(self.names)
        self._fixed = {k: b for k, b in evaluate.named_buffers() if k not in moved}
        self._fresh = _fresh_bn_buffers(stats)
        first = vectors[0]
        self._like = [(t.shape, t.dtype, _memory_format(t)) for t in first]
        # V as one (m, N) matrix: a point is c @ V, P points are C @ V (one matmul)
        self._matrix = torch.stack([_flatten_state(v, first[0].dtype) for v in vectors])

    # ---------------------------------------------------------------- building points
    def _split(self, flat: Tensor, lead: tuple[int, ...]) -> dict[str, Tensor]:
        out, start = {}, 0
        for name, (shape, dtype, fmt) in zip(self.names, self._like, strict=True):
            n = shape.numel()
            t = flat[..., start : start + n].reshape(*lead, *shape).to(dtype)
            out[name] = t.contiguous(memory_format=fmt) if not lead else t
            start += n
        return out

    def point(self, c: Sequence[float]) -> dict[str, Tensor]:
        """One state Σ_j c_j V_j by name (exact when c is (1, 0, ...) or (0, 1))."""
        m = self._matrix
        return self._split(torch.as_tensor(c, dtype=m.dtype, device=m.device) @ m, ())

    def stacked_points(self, coeffs: np.ndarray) -> dict[str, Tensor]:
        """P states stacked along a new dim 0 (P, *shape), from one (P, m) @ (m, N) matmul."""
        m = self._matrix
        c = torch.as_tensor(np.asarray(coeffs), dtype=m.dtype, device=m.device)
        return self._split(c @ m, (len(coeffs),))

    # ---------------------------------------------------------------- one state, any batching
    def _recomputed_buffers(self, state: dict[str, Tensor], batched: int | None) -> dict:
        """BatchNorm statistics re-estimated at `state` (P stacked states when `batched`)."""
        fresh = {f"model.{k}": b.clone() for k, b in self._fresh.items()}
        if batched is not None:
            fresh = {k: b.expand(batched, *b.shape).clone() for k, b in fresh.items()}
        # num_batches_tracked is shared by the P points (all see the same batches): unbatched,
        # so BatchNorm's 1/num_batches_tracked factor is a plain number under vmap.
        counters = {f"model.{k}": torch.zeros_like(b) for k, b in self._fixed.items()
                    if k.endswith("num_batches_tracked")}  # fmt: skip
        rest = {f"model.{k}": b for k, b in self._fixed.items()
                if f"model.{k}" not in fresh and f"model.{k}" not in counters}  # fmt: skip

        def run(s: dict, bufs: dict) -> Tensor:
            return functional_call(self._stats, {**rest, **counters, **s, **bufs}, ())[0]

        (run if batched is None else vmap(run, in_dims=(0, 0)))(state, fresh)  # updates `fresh`
        return fresh

    def _evaluate_state(self, state: dict, batched: int | None) -> tuple[Tensor, Tensor]:
        state = {f"model.{k}": t for k, t in state.items()}
        bufs = self._recomputed_buffers(state, batched) if self.bn == "recompute" else {}
        fixed = {f"model.{k}": b for k, b in self._fixed.items()}

        def run(s: dict, b: dict) -> tuple[Tensor, Tensor]:
            return functional_call(self._metrics, {**fixed, **b, **s}, ())

        fn = run if batched is None else vmap(run, in_dims=(0, 0 if bufs else None))
        loss, correct = fn(state, bufs)
        acc = correct / self.total if self.classify else torch.full_like(loss, float("nan"))
        return loss, acc

    # ---------------------------------------------------------------- the two evaluators
    def _write_point(self, c: Sequence[float]) -> None:
        """Copy the point into the private model; re-estimate BatchNorm statistics if asked."""
        for target, t in zip(self._targets, self.point(c).values(), strict=True):
            target.copy_(t)
        if self.bn == "eval":
            return
        net = self._net.model
        bns = [m for m in net.modules() if isinstance(m, _BN) and m.track_running_stats]
        for m in bns:
            m.reset_running_stats()  # momentum None (see _frozen_copies): a plain average
            m.train()
        for x, _ in self._stats.batches:
            net(x)
        for m in bns:
            m.eval()

    @torch.no_grad()
    def loop(self, coeffs: np.ndarray) -> Metrics:
        """Point by point: write the point into a private copy of the model and call it."""
        losses, accs = [], []
        for c in np.asarray(coeffs).tolist():
            self._write_point(c)
            loss, correct = self._net()
            losses.append(float(loss))
            accs.append(float(correct) / self.total if self.classify else float("nan"))
        return Metrics(np.array(losses), np.array(accs))

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


def _memory_format(t: Tensor) -> torch.memory_format:
    """channels_last for a 4-D tensor stored that way (conv weights of a channels_last model)."""
    channels_last = t.dim() == 4 and t.is_contiguous(memory_format=torch.channels_last)
    return (
        torch.channels_last if channels_last and not t.is_contiguous() else torch.contiguous_format
    )


@dataclass(frozen=True)
class Choice:
    """Which evaluator `choose` picked, from the seconds per point it measured for each."""

    evaluator: str
    seconds_per_point: dict[str, float]
    indices: np.ndarray  # the points evaluated while timing
    metrics: Metrics  # their values

    def describe(self) -> str:
        times = ", ".join(f"{k} {1e3 * v:.2f} ms/point" for k, v in self.seconds_per_point.items())
        if "vmap" not in self.seconds_per_point and times:
            times += ": compute-bound, vmap not tried"
        return f"{self.evaluator} ({times or 'too few points to time'})"


def _fastest(
    fn: Callable[[np.ndarray], Metrics],
    coeffs: np.ndarray,
    starts: range,
    size: int,
    parts: list[Metrics],
) -> float:
    """Seconds per point of the fastest of several timed calls (the minimum is robust to other
    processes on a shared machine); their metrics are appended to `parts`. On one thread the
    clock is this process's CPU time, which other processes cannot inflate; with several
    threads CPU time would count parallel work twice, so it is wall time."""
    clock = time.process_time if torch.get_num_threads() == 1 else time.perf_counter
    best = float("inf")
    for lo in starts:
        start = clock()
        parts.append(fn(coeffs[lo : lo + size]))
        best = min(best, (clock() - start) / size)
    return best


def choose(
    evaluator: PointEvaluator,
    coeffs: np.ndarray,
    loop_points: int = 3,
    compute_bound: float = 0.02,
) -> Choice:
    """Time the two evaluators on the first points of `coeffs` and return the faster, with the
    metrics already computed there (nothing is evaluated twice).

    One point by the loop runs untimed (first-call allocations), then `loop_points` are timed
    one by one (the fastest counts).
    If a point costs more than `compute_bound` seconds, the loop is kept without trying vmap:
    vmap can only save per-call overhead (~1 ms a point), and on CPU its batched convolutions
    are slower (ANCHORS: 1.6x for a 20k-parameter CNN). Otherwise one vmap chunk runs untimed
    (vmap's first call traces and allocates, often ten times a later one) and the faster of
    two more chunks is timed.
    """
    n = len(coeffs)
    if n < 2 + loop_points:
        return Choice("loop", {}, np.arange(n), evaluator.loop(coeffs))
    parts = [evaluator.loop(coeffs[:1])]
    timed = {"loop": _fastest(evaluator.loop, coeffs, range(1, 1 + loop_points), 1, parts)}
    used = 1 + loop_points
    p = min(evaluator.chunk, (n - used) // 3)
    if timed["loop"] < compute_bound and p >= 1:
        parts.append(evaluator.vectorized(coeffs[used : used + p]))
        starts = range(used + p, used + 3 * p, p)
        timed["vmap"] = _fastest(evaluator.vectorized, coeffs, starts, p, parts)
        used += 3 * p
    metrics = Metrics(np.concatenate([m.loss for m in parts]),
                      np.concatenate([m.acc for m in parts]))  # fmt: skip
    return Choice(min(timed, key=timed.get), timed, np.arange(used), metrics)
