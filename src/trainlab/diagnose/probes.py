"""Probes: per-layer activation and per-parameter gradient/update statistics at an interval.

What CS231n (lecture 6, "Training Neural Networks I", the seed-000 deck) teaches to watch while
babysitting a run: per-layer activation mean, std and histogram (activations collapsing to zero
or saturating at ±1), dead ReLUs, saturated tanh/sigmoid units, gradient norms, the ratio of
the applied update to the weights (``‖Δw‖/‖w‖``, healthy around 1e-3), weight norms, and where
a NaN or Inf first appears.

Cost. Histograms on every step can cost several times the step (ANCHORS.md), so a probe runs on
step 1 and every ``every``-th step (default 50). Forward hooks are registered only around probe
steps: :class:`Probes` arms them in ``on_step_end`` of the step *before* a probe step and removes
them after it, so other steps run with no hooks at all. Weights are snapshotted before a probe
step only, to measure the update the optimizer actually applied (after momentum, weight decay,
clipping...). The only per-step work is an optional finiteness check of the gradient norms (one
fused norm and one host read), on by default so the first non-finite gradient is found at the
step it appears. Measured by ``bench/probes.py`` on the Fashion-MNIST CNN (CPU): a probe step
costs ~1.25 steps, other steps are unchanged, a whole epoch 0.99-1.07× (target ≤ 1.10).

Memory. Per-probe summaries go into a :class:`~trainlab.diagnose.buffer.SeriesBuffer` of fixed
capacity that thins itself (fastai's ``ActivationStats`` grows without bound); histograms have
fixed bins whose range is fixed per layer at its first probe; the dead-ReLU window holds ``W``
boolean vectors per ReLU layer.

Gradient-side statistics are read from the parameters after the step (DESIGN.md: gradient-side
diagnostics observe updates); activation-side ones come from forward hooks that are removed on
exit (``with Probes(...)``, ``on_fit_end`` or :meth:`Probes.close`).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from trainlab.diagnose.buffer import SeriesBuffer
from trainlab.names import closest_name_error
from trainlab.train.callbacks import Hooks
from trainlab.train.records import StepRecord

__all__ = [
    "SATURATION",
    "Probes",
    "default_layers",
    "find_nonfinite",
    "layer_kind",
    "nice_ceil",
]

SATURATION = 0.99
"""A tanh output with ``|y| > 0.99`` or a sigmoid output below 0.01 or above 0.99 is saturated:
its local gradient (1 − y² or y(1 − y)) is below 0.02, so it passes almost no gradient back."""

_RELU = (nn.ReLU, nn.ReLU6)


def layer_kind(module: nn.Module) -> str:
    """``"relu"``, ``"tanh"``, ``"sigmoid"`` or the lower-case class name (e.g. ``"linear"``)."""
    if isinstance(module, _RELU):
        return "relu"
    if isinstance(module, nn.Tanh):
        return "tanh"
    if isinstance(module, nn.Sigmoid):
        return "sigmoid"
    return type(module).__name__.lower()


def _is_activation(module: nn.Module) -> bool:
    return type(module).__module__ == "torch.nn.modules.activation"


def default_layers(model: nn.Module) -> list[str]:
    """Leaf modules that have parameters of their own or are torch activations, in registration
    order: Linear/Conv/norm layers and ReLU/Tanh/..., not Flatten, Dropout or pooling."""
    names = []
    for name, module in model.named_modules():
        leaf = name and not any(True for _ in module.children())
        if leaf and (_is_activation(module) or any(True for _ in module.parameters(False))):
            names.append(name)
    return names


def nice_ceil(value: float) -> float:
    """The smallest of 1, 2, 5 × 10^k that is ≥ ``value`` (1.0 for 0 or a non-finite value)."""
    if not math.isfinite(value) or value <= 0:
        return 1.0
    exp = math.floor(math.log10(value))
    for mantissa in (1.0, 2.0, 5.0, 10.0):
        candidate = mantissa * 10.0**exp
        if candidate >= value * (1 - 1e-12):
            return candidate
    return 10.0 ** (exp + 1)  # pragma: no cover


def _coprime_stride(n: int, at_least: int) -> int:
    """The smallest prime ``s >= at_least`` that does not divide ``n``."""
    s = max(at_least, 2)
    while n % s == 0 or any(s % d == 0 for d in range(2, math.isqrt(s) + 1)):
        s += 1
    return s


def find_nonfinite(model: nn.Module, *inputs: Any) -> str | None:
    """Run ``model(*inputs)`` without gradients and return the name of the first module (in
    execution order) whose output contains a NaN or Inf, or None. Use it on the batch of a
    ``NonFiniteLossError``; hooks are removed afterwards."""
    found: list[str] = []

    def hook(name: str):
        def fn(module: nn.Module, args: Any, output: Any) -> None:
            tensor = isinstance(output, torch.Tensor) and output.is_floating_point()
            if not found and tensor and not bool(torch.isfinite(output).all()):
                found.append(name)

        return fn

    handles = [
        m.register_forward_hook(hook(n))
        for n, m in model.named_modules()
        if n and not any(True for _ in m.children())
    ]
    try:
        with torch.no_grad():
            model(*inputs)
    finally:
        for h in handles:
            h.remove()
    return found[0] if found else None


class Probes(Hooks):
    """Statistics of ``model`` at step 1 and every ``every``-th step, as a ``fit`` callback.

    >>> probes = Probes(model, every=50)
    >>> with probes:
    ...     fit(model, loader, opt, loss_fn, epochs=3, callbacks=[probes])
    >>> report = probes.summary()

    In a hand-written loop, wrap each step: ``with probes.step(t): loss.backward(); opt.step()``
    (``t`` 1-based; non-probe steps cost nothing). Per probed layer (``layers``: module names,
    default :func:`default_layers`): activation mean, std (population, as ``np.std``), a histogram
    of ``bins`` fixed bins (range fixed at the layer's first probe: (−1, 1) for tanh, (0, 1) for
    sigmoid, (0, R) for ReLU and (−R, R) otherwise with R = :func:`nice_ceil` of the largest
    |activation|, unless ``hist_range`` is given; values outside are counted in the edge bins),
    for ReLU layers the fraction of dead units (a unit is a feature of a Linear output or a
    channel of a conv output; dead = never positive over the last ``dead_window`` probed
    batches), and for tanh/sigmoid the fraction of saturated outputs (:data:`SATURATION`). Per
    parameter tensor: gradient norm, weight norm after the step and ``‖w_after − w_before‖ /
    ‖w_before‖``. Also the first layer and step where a NaN or Inf appears (see
    :attr:`nonfinite` and :attr:`first_nonfinite`).

    Cost on a probe step is bounded per layer: the NaN/Inf check and the dead-unit test read
    every output, while mean, std, histogram and saturation are computed on an evenly strided
    subset of about ``sample_size`` entries (default 65536; exact on layers no larger).

    Hooks record the first forward of a probe step only (SAM's second pass is ignored) and only
    with gradients enabled, so validation passes between epochs are not counted. A layer name
    that is not a module of ``model`` raises a one-line ValueError listing the valid names.
    """

    def __init__(
        self,
        model: nn.Module,
        every: int = 50,
        layers: Sequence[str] | None = None,
        *,
        bins: int = 40,
        hist_range: tuple[float, float] | None = None,
        capacity: int = 256,
        dead_window: int = 5,
        check_every_step: bool = True,
        sample_size: int = 65536,
    ) -> None:
        checks = ("every", every), ("bins", bins), ("dead_window", dead_window)
        for what, value in (*checks, ("sample_size", sample_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"Probes: {what} must be an int >= 1, got {value!r}")
        if hist_range is not None and not hist_range[0] < hist_range[1]:
            raise ValueError(
                f"Probes: hist_range must be (low, high), low < high; got {hist_range}"
            )
        modules = dict(model.named_modules())
        del modules[""]
        names = default_layers(model) if layers is None else list(layers)
        for name in names:
            if name not in modules:
                raise closest_name_error("layer", name, modules)
        self.model = model
        self.every = every
        self.bins = bins
        self.hist_range = hist_range
        self.dead_window = dead_window
        self.sample_size = sample_size
        self.check_every_step = check_every_step
        self.layers = names
        self.kinds = {name: layer_kind(modules[name]) for name in names}
        # Hooked on probe steps: the probed layers for statistics, and every leaf module for
        # the NaN/Inf check alone (so the first non-finite output is found in any layer).
        leaves = [n for n, m in modules.items() if not any(True for _ in m.children())]
        self._watched = {n: modules[n] for n in dict.fromkeys([*leaves, *names])}
        self._params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        self.buffer = SeriesBuffer(capacity)
        self._ranges: dict[str, tuple[float, float]] = {}
        self._hist_total = {name: np.zeros(bins) for name in names}
        self._alive: dict[str, deque[torch.Tensor]] = {
            name: deque(maxlen=dead_window) for name in names if self.kinds[name] == "relu"
        }
        self._handles: list[RemovableHandle] = []
        self._armed_step: int | None = None
        self._snapshot: list[torch.Tensor] | None = None
        self._pending: dict[str, dict[str, torch.Tensor]] = {}
        self._probe_next: int | None = None
        self.probes = 0
        self.listeners: list[Callable[[int, dict[str, Any], dict[str, np.ndarray]], None]] = []
        """Called with (step, row, histogram edges by layer) after each probe (e.g. TensorBoard)."""
        self.nonfinite: dict[str, dict[str, Any] | None] = {"activation": None, "gradient": None}
        """The first NaN/Inf seen in each place, as ``{"where", "layer", "step"}`` (plus
        ``"parameter"`` for a gradient), or None. Activations are checked on probe steps (and on
        the step after a first non-finite gradient), in every leaf module, in execution order;
        gradients on every step when ``check_every_step`` (else on probe steps). For a gradient
        the parameter reported is the last one in registration order with a non-finite
        gradient: backward runs from the output, so in a sequential model that is the nearest
        to where it started (when the forward was finite; otherwise the activation is the
        origin)."""

    # ------------------------------------------------------------------ schedule and hooks

    def is_probe_step(self, step: int) -> bool:
        """Whether 1-based ``step`` is probed: step 1 and every multiple of ``every``."""
        return step == 1 or step % self.every == 0

    def arm(self, step: int) -> None:
        """Before 1-based ``step``: register the forward hooks and snapshot the weights."""
        self.disarm()
        self._armed_step = step
        self._pending = {}
        for name, module in self._watched.items():
            self._handles.append(module.register_forward_hook(self._hook(name)))
        with torch.no_grad():
            self._snapshot = [p.detach().clone() for _, p in self._params]

    def disarm(self) -> None:
        """Remove every hook and drop the snapshot."""
        for handle in self._handles:
            handle.remove()
        self._handles, self._armed_step, self._snapshot = [], None, None

    def close(self) -> None:
        """Remove hooks (also done by ``on_fit_end`` and on leaving ``with``)."""
        self._note_pending_nonfinite()
        self.disarm()

    def __enter__(self) -> Probes:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def step(self, step: int) -> Iterator[None]:
        """Wrap 1-based training step ``step`` of a hand-written loop (forward, backward and
        optimizer step inside). Does nothing unless it is a probe step; hooks are removed on
        exit, also when the body raises."""
        probe = self.is_probe_step(step) or self._probe_next == step
        if probe:
            self.arm(step)
        try:
            yield
        except BaseException:
            self.close()
            raise
        self._after(step, probe)

    def _after(self, step: int, probed: bool) -> None:
        """Collect a probe step, or check the gradients of another; after a first non-finite
        gradient, ask for the next step to be probed so its forward shows where activations
        break."""
        seen_before = self.nonfinite["gradient"] is not None
        if probed:
            self.collect(step)
        elif self.check_every_step:
            self._check_gradients(step)
        if not seen_before and self.nonfinite["gradient"] is not None:
            self._probe_next = step + 1

    # ------------------------------------------------------------------ fit() callback

    def on_fit_start(self, total_steps: int, start_step: int) -> None:
        if self.is_probe_step(start_step + 1):
            self.arm(start_step + 1)

    def on_step_end(self, record: StepRecord) -> None:
        self._after(record.step, self._armed_step == record.step)
        nxt = record.step + 1
        if self.is_probe_step(nxt) or self._probe_next == nxt:
            self.arm(nxt)

    def on_fit_end(self, history: list[dict]) -> None:
        self.close()

    # ------------------------------------------------------------------ measuring

    def _hook(self, name: str):
        def hook(module: nn.Module, args: Any, output: Any) -> None:
            if name in self._pending or not isinstance(output, torch.Tensor):
                return
            if not torch.is_grad_enabled():  # evaluation / inference passes are not training
                return
            if not output.is_floating_point():
                return
            if name in self.kinds:
                self._pending[name] = self._measure(name, output.detach())
            else:
                norm = torch.linalg.vector_norm(output.detach().float())
                self._pending[name] = {"finite": torch.isfinite(norm)}

        # Under torch.compile (train.compile) the hook runs eagerly between compiled pieces
        # instead of being traced into a graph recompiled for every layer name.
        return torch._dynamo.disable(hook)

    def _measure(self, name: str, x: torch.Tensor) -> dict[str, torch.Tensor]:
        x = x.float()
        # Over every entry: the NaN/Inf check (a non-finite entry makes the norm non-finite;
        # so does a float32 overflow past 3e38, which is as much a blow-up) and dead units.
        out = {"finite": torch.isfinite(torch.linalg.vector_norm(x))}
        kind = self.kinds[name]
        if kind == "relu":
            units = x.reshape(x.shape[0], x.shape[1], -1) if x.dim() >= 2 else x.reshape(1, 1, -1)
            out["alive"] = units.amax(dim=(0, 2)) > 0
        # Over an evenly spread subset (everything on small layers): the rest.
        sub = self._subset(x)
        n = sub.numel()
        if n == 0:
            std = mean = x.new_tensor(math.nan)
        else:
            std, mean = torch.std_mean(sub, correction=0)
        lo, hi = self._range(name, x)
        out["mean"], out["std"] = mean, std
        out["hist"] = torch.histc(sub.clamp(lo, hi), self.bins, lo, hi)
        if kind == "tanh":
            out["saturated"] = torch.count_nonzero(sub.abs() > SATURATION) / max(n, 1)
        elif kind == "sigmoid":
            far = (sub - 0.5).abs() > SATURATION - 0.5
            out["saturated"] = torch.count_nonzero(far) / max(n, 1)
        return out

    def _subset(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` itself when it has at most ``sample_size`` entries, else every s-th entry of
        its storage order, with s the smallest prime ≥ numel / sample_size that does not
        divide numel: coprime to every period of the layout (width, plane, example), so the
        entries are spread evenly over examples, channels and positions. A large layer then
        costs a fixed amount to summarise."""
        n = x.numel()
        if n <= self.sample_size:
            return x
        if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last):
            flat = x.permute(0, 2, 3, 1).reshape(-1)  # a view in channels_last storage order
        else:
            flat = x.reshape(-1)
        return flat[:: _coprime_stride(n, -(-n // self.sample_size))].contiguous()

    def _range(self, name: str, x: torch.Tensor) -> tuple[float, float]:
        if name not in self._ranges:
            kind = self.kinds[name]
            if self.hist_range is not None:
                rng = (float(self.hist_range[0]), float(self.hist_range[1]))
            elif kind == "tanh":
                rng = (-1.0, 1.0)
            elif kind == "sigmoid":
                rng = (0.0, 1.0)
            else:
                top = float(x.abs().amax()) if x.numel() else 0.0
                if not math.isfinite(top):  # ignore NaN/Inf entries
                    top = float(torch.nan_to_num(x.abs(), nan=0.0, posinf=0.0).amax())
                top = nice_ceil(top)
                rng = (0.0, top) if kind == "relu" else (-top, top)
            self._ranges[name] = rng
        return self._ranges[name]

    def _note_pending_nonfinite(self) -> None:
        """Record the first hooked layer (in execution order) whose output was not finite."""
        if self.nonfinite["activation"] is not None or self._armed_step is None:
            return
        for name, stats in self._pending.items():
            if not bool(stats["finite"]):
                self.nonfinite["activation"] = {
                    "where": "activation",
                    "layer": name,
                    "step": self._armed_step,
                }
                return

    def _check_gradients(self, step: int) -> None:
        if self.nonfinite["gradient"] is not None:
            return
        grads = [p.grad for _, p in self._params if p.grad is not None]
        if not grads:
            return
        norms = torch.stack(torch._foreach_norm(grads))
        if bool(torch.isfinite(norms).all()):
            return
        self._note_gradient(step, norms.tolist())

    def _note_gradient(self, step: int, norms: list[float]) -> None:
        names = [n for n, p in self._params if p.grad is not None]
        bad = [n for n, v in zip(names, norms, strict=True) if not math.isfinite(v)]
        if bad and self.nonfinite["gradient"] is None:
            param = bad[-1]
            self.nonfinite["gradient"] = {
                "where": "gradient",
                "layer": param.rpartition(".")[0],
                "parameter": param,
                "step": step,
            }

    def collect(self, step: int) -> None:
        """After probe step ``step``: turn what the hooks saw and the parameters into one row of
        the buffer, then remove the hooks."""
        self._note_pending_nonfinite()
        row: dict[str, Any] = {}
        pending = self._pending
        names = [n for n in self.layers if n in pending and "mean" in pending[n]]
        scalars: list[torch.Tensor] = []
        for name in names:
            stats = pending[name]
            scalars += [stats["mean"], stats["std"]]
            alive = stats.get("alive")
            if alive is not None:
                window = self._alive[name]
                window.append(alive)
                scalars.append(1.0 - torch.stack(list(window)).any(dim=0).float().mean())
            if "saturated" in stats:
                scalars.append(stats["saturated"])
        with torch.no_grad():
            params = [p.detach() for _, p in self._params]
            has_grad = [p.grad is not None for _, p in self._params]
            grads = [p.grad for _, p in self._params if p.grad is not None]
            grad_norms = torch._foreach_norm(grads) if grads else []
            weight_norms = torch._foreach_norm(params) if params else []
            if self._snapshot is not None and params:
                before = torch._foreach_norm(self._snapshot)
                deltas = torch._foreach_norm(torch._foreach_sub(params, self._snapshot))
                ratios = [d / b for d, b in zip(deltas, before, strict=True)]
            else:
                ratios = [torch.tensor(math.nan)] * len(params)
        scalars += [*grad_norms, *weight_norms, *ratios]
        values = torch.stack([torch.as_tensor(s, dtype=torch.float32).cpu() for s in scalars])
        flat = iter(values.tolist())
        hists = torch.stack([pending[n]["hist"] for n in names]).cpu().numpy() if names else []
        for i, name in enumerate(names):
            row[f"{name}/mean"], row[f"{name}/std"] = next(flat), next(flat)
            if "alive" in pending[name]:
                row[f"{name}/dead_fraction"] = next(flat)
            if "saturated" in pending[name]:
                row[f"{name}/saturated_fraction"] = next(flat)
            row[f"{name}/hist"] = hists[i]
            self._hist_total[name] += hists[i]
        grad_values = iter([next(flat) for _ in grad_norms])
        for (pname, _), has in zip(self._params, has_grad, strict=True):
            row[f"{pname}/grad_norm"] = next(grad_values) if has else math.nan
        for pname, _ in self._params:
            row[f"{pname}/weight_norm"] = next(flat)
        for pname, _ in self._params:
            row[f"{pname}/update_ratio"] = next(flat)
        if self.nonfinite["gradient"] is None:
            norms = [row[f"{n}/grad_norm"] for n, p in self._params if p.grad is not None]
            if not all(math.isfinite(v) for v in norms):
                self._note_gradient(step, norms)
        self.buffer.append(step, row)
        for listen in self.listeners:
            listen(step, row, self.hist_edges())
        self.probes += 1
        self._pending = {}
        self.disarm()

    # ------------------------------------------------------------------ results

    def hist_edges(self) -> dict[str, np.ndarray]:
        """Each probed layer's histogram bin edges (fixed at its first probe)."""
        return {name: np.linspace(*self._ranges[name], self.bins + 1) for name in self._ranges}

    @property
    def first_nonfinite(self) -> dict[str, Any] | None:
        """The earlier of ``nonfinite["activation"]`` and ``nonfinite["gradient"]`` (on the
        same step the activation, as the forward pass comes first), or None."""
        seen = [v for v in (self.nonfinite["activation"], self.nonfinite["gradient"]) if v]
        return dict(min(seen, key=lambda v: v["step"])) if seen else None

    def summary(self) -> dict[str, Any]:
        """Everything measured, as plain dicts, lists and numpy arrays (aligned with ``steps``).

        ``{"every", "probes", "stride", "steps", "layers": {name: {"kind", "mean", "std",
        "hist" (probes × bins), "edges" (bins + 1), "hist_total" (bins), "dead_fraction",
        "saturated_fraction"}}, "params": {name: {"layer", "grad_norm", "weight_norm",
        "update_ratio"}}, "first_nonfinite", "nonfinite"}``. ``dead_fraction`` is None except
        for ReLU layers and ``saturated_fraction`` None except for tanh/sigmoid; ``stride`` is
        how many probes each kept row stands for after thinning (the last probe is always
        kept).
        """
        self._note_pending_nonfinite()
        buf = self.buffer
        keys = set(buf.keys())

        def col(key: str) -> np.ndarray | None:
            return buf.column(key) if key in keys else None

        layers = {}
        for name in self.layers:
            lo, hi = self._ranges.get(name, (math.nan, math.nan))
            layers[name] = {
                "kind": self.kinds[name],
                "mean": col(f"{name}/mean"),
                "std": col(f"{name}/std"),
                "hist": col(f"{name}/hist"),
                "edges": np.linspace(lo, hi, self.bins + 1),
                "hist_total": self._hist_total[name].copy(),
                "dead_fraction": col(f"{name}/dead_fraction"),
                "saturated_fraction": col(f"{name}/saturated_fraction"),
            }
        params = {
            name: {
                "layer": name.rpartition(".")[0],
                "grad_norm": col(f"{name}/grad_norm"),
                "weight_norm": col(f"{name}/weight_norm"),
                "update_ratio": col(f"{name}/update_ratio"),
            }
            for name, _ in self._params
        }
        return {
            "every": self.every,
            "probes": self.probes,
            "stride": buf.stride,
            "steps": buf.steps(),
            "layers": layers,
            "params": params,
            "first_nonfinite": self.first_nonfinite,
            "nonfinite": {k: None if v is None else dict(v) for k, v in self.nonfinite.items()},
        }
