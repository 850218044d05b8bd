"""LSUV: layer-sequential unit-variance initialization (Mishkin & Matas 2016).

"All you need is a good init" (ICLR 2016), Algorithm 1: pre-initialize every weight with an
orthogonal matrix (Saxe et al. 2014) and every bias with 0; then, for each Linear/Conv layer
L in forward order, run a batch, take the variance of L's output B_L over all its entries and
rescale W_L ← W_L / √Var(B_L), until |Var(B_L) − 1| < tol or T_max rescalings were made.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from trainlab.init._common import check_generator, check_positive
from trainlab.init.model import init_layers, init_model

__all__ = ["LsuvLayer", "LsuvReport", "lsuv"]


@dataclass(frozen=True)
class LsuvLayer:
    """What LSUV did to one layer."""

    name: str
    iterations: int
    """Rescalings made (0 when the layer was already within tolerance)."""
    initial_variance: float
    """Var of the layer's output after the orthogonal pre-init, before any rescaling."""
    variance: float
    """Var of the layer's output on the LSUV batch at the end."""
    capped: bool
    """True when ``max_iters`` rescalings were made and |variance − 1| was still >= tol."""
    note: str = ""
    """Why the layer was left alone, if it was (not reached by forward, zero variance)."""


@dataclass(frozen=True)
class LsuvReport:
    """Per-layer iterations and final variances, in forward order; ``str()`` is a table."""

    layers: tuple[LsuvLayer, ...]
    tol: float
    max_iters: int

    @property
    def capped(self) -> tuple[str, ...]:
        """Names of the layers that hit the iteration cap."""
        return tuple(layer.name for layer in self.layers if layer.capped)

    def __str__(self) -> str:
        lines = [f"LSUV (tol {self.tol:g}, at most {self.max_iters} iterations per layer)"]
        width = max([len(layer.name) for layer in self.layers] + [5])
        for layer in self.layers:
            status = (
                f"cap of {self.max_iters} iterations reached"
                if layer.capped
                else layer.note or "ok"
            )
            lines.append(
                f"  {layer.name:<{width}}  iters {layer.iterations:>2}  var "
                f"{layer.initial_variance:.4g} -> {layer.variance:.4f}  {status}"
            )
        if self.capped:
            lines.append(f"  cap reached in {len(self.capped)} layer(s): {', '.join(self.capped)}")
        return "\n".join(lines)


class _Stop(Exception):
    """Raised by the hook on the layer being tuned, so the rest of the forward is skipped."""

    def __init__(self, output: torch.Tensor) -> None:
        super().__init__()
        self.output = output


def _forward(model: nn.Module, batch: Any) -> None:
    if isinstance(batch, torch.Tensor):
        model(batch)
    elif isinstance(batch, Mapping):
        model(**batch)
    else:
        model(*batch)


def _output_of(model: nn.Module, layer: nn.Module, batch: Any) -> torch.Tensor | None:
    """The output of ``layer``'s first call in a forward of ``batch`` (None if not called)."""

    def hook(_module: nn.Module, _inputs: Any, output: torch.Tensor) -> None:
        raise _Stop(output)

    handle = layer.register_forward_hook(hook)
    try:
        _forward(model, batch)
    except _Stop as stop:
        return stop.output.detach()
    finally:
        handle.remove()
    return None


def _forward_order(model: nn.Module, batch: Any) -> list[tuple[str, nn.Module]]:
    """Linear/Conv layers in the order a forward of ``batch`` first calls them, then the
    layers it never calls (in ``named_modules`` order)."""
    layers = list(init_layers(model))
    called: list[int] = []
    handles = []
    for index, (_name, layer) in enumerate(layers):

        def hook(_m: nn.Module, _i: Any, _o: Any, index: int = index) -> None:
            if index not in called:
                called.append(index)

        handles.append(layer.register_forward_hook(hook))
    try:
        _forward(model, batch)
    finally:
        for handle in handles:
            handle.remove()
    rest = [i for i in range(len(layers)) if i not in called]
    return [layers[i] for i in called + rest]


def _channel_mean(layer: nn.Module, out: torch.Tensor) -> torch.Tensor:
    """Mean of the output per output feature: last dim for Linear, dim 1 for Conv."""
    dim = out.dim() - 1 if isinstance(layer, nn.Linear) else 1
    other = [d for d in range(out.dim()) if d != dim]
    return out.mean(dim=other)


def _variance(layer: nn.Module, out: torch.Tensor, center: bool) -> float:
    """Var over all entries (population form); with ``center``, around each channel's mean."""
    out = out.double()
    if not center:
        return float(out.var(correction=0))
    mean = _channel_mean(layer, out)
    shape = [1] * out.dim()
    shape[out.dim() - 1 if isinstance(layer, nn.Linear) else 1] = -1
    return float((out - mean.reshape(shape)).pow(2).mean())


def lsuv(
    model: nn.Module,
    batch: Any,
    *,
    generator: torch.Generator,
    tol: float = 0.1,
    max_iters: int = 10,
    center: bool = False,
    gain: float = 1.0,
    pre_init: bool = True,
    train_mode: bool = False,
) -> LsuvReport:
    """Initialize ``model`` in place by LSUV (Mishkin & Matas 2016) and report what it did.

    1. Pre-init: every Linear/Conv weight ``orthogonal(gain)`` drawn from ``generator``, every
       bias 0 (``pre_init=False`` keeps the weights and only zeroes the biases). Norm layers
       are reset to weight 1, bias 0 as in :func:`init_model`.
    2. For each Linear/Conv layer in forward order: forward ``batch`` (stopping right after the
       layer), v = Var(output) over all entries; while |v − 1| >= ``tol`` and fewer than
       ``max_iters`` rescalings were made, W ← W/√v and measure again. A layer that is still
       out of tolerance after ``max_iters`` rescalings is marked ``capped`` in the report.
       With ``center=True`` the bias is also shifted so each output channel has mean 0 on
       the batch (and rescaled with W, keeping it centred), a common LSUV variant.

    ``batch`` is what the model takes: a tensor, a tuple of positional inputs, or a mapping of
    keyword inputs. Everything runs under ``torch.no_grad()`` with temporary forward hooks
    that are removed afterwards. The model runs in eval mode (dropout off, BatchNorm on its
    running statistics) unless ``train_mode=True``; either way each module's train/eval flag
    and all buffers (BatchNorm running statistics) are restored, and torch's global RNG state
    is restored too (dropout in train mode would otherwise consume it).
    """
    check_generator("lsuv", generator)
    tol = check_positive("lsuv", "tol", tol)
    if not isinstance(max_iters, int) or isinstance(max_iters, bool) or max_iters < 1:
        raise ValueError(f"lsuv: max_iters must be an int >= 1, got {max_iters!r}")
    gain = check_positive("lsuv", "gain", gain)
    modes = {module: module.training for module in model.modules()}
    buffers = {name: buf.clone() for name, buf in model.named_buffers()}
    try:
        with torch.no_grad(), torch.random.fork_rng():
            model.train(train_mode)
            if pre_init:
                init_model(model, {"name": "orthogonal", "gain": gain}, generator=generator)
            else:
                for _name, layer in init_layers(model):
                    if isinstance(layer.bias, torch.Tensor):
                        layer.bias.zero_()
            order = _forward_order(model, batch)
            layers = tuple(
                _tune(name, layer, model, batch, tol, max_iters, center) for name, layer in order
            )
    finally:
        for module, mode in modes.items():
            module.training = mode
        with torch.no_grad():
            for name, buf in model.named_buffers():
                if name in buffers:
                    buf.copy_(buffers[name])
    return LsuvReport(layers, tol, max_iters)


def _tune(
    name: str,
    layer: nn.Module,
    model: nn.Module,
    batch: Any,
    tol: float,
    max_iters: int,
    center: bool,
) -> LsuvLayer:
    bias = layer.bias if isinstance(layer.bias, torch.Tensor) else None
    center = center and bias is not None
    out = _output_of(model, layer, batch)
    if out is None:
        return LsuvLayer(name, 0, math.nan, math.nan, False, "not called by forward; left as is")
    var = initial = _variance(layer, out, center)
    iters = 0
    while True:
        mean_ok = not center or float(_channel_mean(layer, out.double()).abs().max()) < tol
        if abs(var - 1.0) < tol and mean_ok:
            return LsuvLayer(name, iters, initial, var, False)
        if iters == max_iters:
            return LsuvLayer(name, iters, initial, var, True)
        if not math.isfinite(var) or var <= 0.0:
            return LsuvLayer(name, iters, initial, var, False, "output variance 0 or not finite")
        scale = 1.0 / math.sqrt(var)
        if center:
            assert bias is not None
            bias.sub_(_channel_mean(layer, out).to(bias.dtype)).mul_(scale)
        layer.weight.mul_(scale)
        iters += 1
        out = _output_of(model, layer, batch)
        assert out is not None  # it was called before and the forward is deterministic
        var = _variance(layer, out, center)
