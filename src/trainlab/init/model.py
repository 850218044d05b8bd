"""Apply initializers to a whole model: every Linear/Conv layer, optionally per layer type."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, NamedTuple

import torch
from torch import nn

from trainlab.init._common import compute_fans
from trainlab.init.registry import Initializer, InitSpec, fill_, resolve_initializer

__all__ = ["INIT_LAYER_TYPES", "NORM_LAYER_TYPES", "LayerInit", "init_model", "init_layers"]

INIT_LAYER_TYPES: tuple[type[nn.Module], ...] = (
    nn.Linear,
    nn.Conv1d,
    nn.Conv2d,
    nn.Conv3d,
    nn.ConvTranspose1d,
    nn.ConvTranspose2d,
    nn.ConvTranspose3d,
)
"""Layers ``init_model`` and ``lsuv`` initialize (subclasses included)."""

NORM_LAYER_TYPES: tuple[type[nn.Module], ...] = (
    nn.modules.batchnorm._NormBase,  # BatchNorm*, InstanceNorm*, SyncBatchNorm
    nn.LayerNorm,
    nn.GroupNorm,
    nn.RMSNorm,
    nn.LocalResponseNorm,
)


class LayerInit(NamedTuple):
    """One line of ``init_model``'s report."""

    name: str
    """The layer's name in ``model.named_modules()``."""
    initializer: str
    """The weight's initializer, e.g. ``kaiming_normal(mode='fan_out')``."""
    std: float
    """Standard deviation of the weight after initialization."""
    bias: str
    """The bias's initializer (``-`` when the layer has no bias)."""


def _is_norm(module: nn.Module) -> bool:
    # Our own normalization layers (trainlab.nn) may not subclass torch's: go by name too.
    if isinstance(module, NORM_LAYER_TYPES):
        return True
    w = getattr(module, "weight", None)
    return "Norm" in type(module).__name__ and (not isinstance(w, torch.Tensor) or w.dim() <= 1)


def _type_key(module: nn.Module, keys: Mapping[str, Any]) -> str | None:
    """The first class name in the module's MRO that ``keys`` mentions."""
    for cls in type(module).__mro__:
        if cls.__name__ in keys:
            return cls.__name__
    return None


def init_layers(model: nn.Module) -> Iterator[tuple[str, nn.Module]]:
    """``(name, module)`` of every Linear/Conv layer, in ``named_modules`` order."""
    for name, module in model.named_modules():
        if isinstance(module, INIT_LAYER_TYPES):
            yield name, module


def _split(spec: Any, weight: Initializer, bias: Initializer, field: str) -> tuple[Any, Any]:
    """A per-type value is a weight spec, or ``{"weight": spec, "bias": spec}``."""
    if isinstance(spec, Mapping) and "name" not in spec:
        unknown = set(spec) - {"weight", "bias"}
        if unknown:
            raise ValueError(
                f"{field}: expected an initializer spec or keys 'weight'/'bias', got "
                f"{sorted(unknown)}"
            )
        w = resolve_initializer(spec["weight"], f"{field}.weight") if "weight" in spec else weight
        b = resolve_initializer(spec["bias"], f"{field}.bias") if "bias" in spec else bias
        return w, b
    return resolve_initializer(spec, field), bias


def init_model(
    model: nn.Module,
    weight: InitSpec,
    bias: InitSpec = "zeros",
    *,
    generator: torch.Generator,
    per_type: Mapping[str, InitSpec | Mapping[str, InitSpec]] | None = None,
) -> list[LayerInit]:
    """Re-initialize ``model`` in place and report what was done.

    Every Linear and Conv layer (transposed too) gets ``weight`` for its weight and ``bias``
    for its bias; ``per_type`` overrides them by layer class name, e.g.
    ``{"Conv2d": "kaiming_normal", "Linear": {"weight": "xavier_uniform", "bias": "zeros"}}``.
    A per-type key may also name another module type with a ``weight`` (say ``Embedding``),
    which is then initialized too; a key matching no module in the model is an error. A bias
    initializer receives the layer's ``(fan_in, fan_out)``, so ``torch_default`` biases are
    U(±1/√fan_in) as in torch. Normalization layers get weight 1 and bias 0 (unless named in
    ``per_type``). Other modules and parameters are left alone. Layers are visited in
    ``named_modules`` order, weight before bias, all drawing from ``generator``.

    Returns one :class:`LayerInit` ``(name, initializer, std, bias)`` per touched layer.
    """
    w_default = resolve_initializer(weight, "init.weight")
    b_default = resolve_initializer(bias, "init.bias")
    per = {
        key: _split(spec, w_default, b_default, f"init.per_type.{key}")
        for key, spec in (per_type or {}).items()
    }
    used: set[str] = set()
    report: list[LayerInit] = []
    for name, module in model.named_modules():
        key = _type_key(module, per)
        if key is not None and isinstance(getattr(module, "weight", None), nn.Parameter):
            used.add(key)
            w_init, b_init = per[key]
        elif isinstance(module, INIT_LAYER_TYPES):
            w_init, b_init = w_default, b_default
        elif _is_norm(module):
            report.extend(_init_norm(name, module))
            continue
        else:
            continue
        report.append(_init_layer(name, module, w_init, b_init, generator))
    unused = sorted(set(per) - used)
    if unused:
        present = sorted({type(m).__name__ for m in model.modules() if hasattr(m, "weight")})
        raise ValueError(
            f"init.per_type: {', '.join(unused)} match no layer with a weight; "
            f"types present: {', '.join(present)}"
        )
    return report


def _init_layer(
    name: str, module: nn.Module, w_init: Initializer, b_init: Initializer, gen: torch.Generator
) -> LayerInit:
    w = module.weight
    if isinstance(w, nn.parameter.UninitializedParameter):
        raise ValueError(f"init: layer {name!r} is lazy; run one forward pass before init_model")
    fans = compute_fans(w.shape) if w.dim() >= 2 else None
    fill_(w, w_init, generator=gen)
    b = getattr(module, "bias", None)
    if isinstance(b, torch.Tensor):
        fill_(b, b_init, generator=gen, fans=fans)
    return LayerInit(
        name,
        str(w_init),
        float(w.detach().float().std()) if w.numel() > 1 else 0.0,
        str(b_init) if isinstance(b, torch.Tensor) else "-",
    )


def _init_norm(name: str, module: nn.Module) -> list[LayerInit]:
    w = getattr(module, "weight", None)
    b = getattr(module, "bias", None)
    if not isinstance(w, torch.Tensor) and not isinstance(b, torch.Tensor):
        return []  # affine=False
    with torch.no_grad():
        if isinstance(w, torch.Tensor):
            w.fill_(1.0)
        if isinstance(b, torch.Tensor):
            b.zero_()
    return [LayerInit(name, "ones", 0.0, "zeros" if isinstance(b, torch.Tensor) else "-")]
