"""Activation functions by name (the lectures' sigmoid, tanh, ReLU family, GELU, SiLU), with
arguments where the slides vary them.

An activation is given by name (``"relu"``) or as a mapping with its arguments:
``{"name": "leaky_relu", "negative_slope": 0.1}`` (seed 000's ``max(0.1x, x)``),
``{"name": "elu", "alpha": 0.5}`` (Clevert et al. 2016), ``{"name": "prelu", "init": 0.25,
"num_parameters": "channels"}`` (He et al. 2015: a learnable slope, one per channel, or one
shared with ``num_parameters: 1``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

from torch import nn

from trainlab.names import checked_call, closest_name_error

ActivationSpec = str | Mapping[str, Any]


def _prelu(
    num_parameters: int | str = "channels", init: float = 0.25, *, channels: int = 1
) -> nn.Module:
    """PReLU with one slope per channel (``"channels"``) or ``num_parameters`` slopes."""
    if num_parameters == "channels":
        num_parameters = channels
    if not isinstance(num_parameters, int) or num_parameters < 1:
        raise ValueError(
            f"prelu num_parameters: expected 'channels' or an int >= 1, got {num_parameters!r}"
        )
    return nn.PReLU(num_parameters, init)


ACTIVATIONS: dict[str, Callable[..., nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "leaky_relu": lambda negative_slope=0.01: nn.LeakyReLU(negative_slope),
    "elu": lambda alpha=1.0: nn.ELU(alpha),
    "prelu": _prelu,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "identity": nn.Identity,
}
NEEDS_CHANNELS = {"prelu"}  # factories that are told the layer's channel (or unit) count


def activation_name(spec: ActivationSpec) -> str:
    """The name of an activation given by name or as a mapping with arguments."""
    return spec if isinstance(spec, str) else str(spec.get("name", ""))


def activation_args(spec: ActivationSpec) -> dict[str, Any]:
    """The arguments of an activation spec (empty for a bare name)."""
    return {} if isinstance(spec, str) else {k: v for k, v in spec.items() if k != "name"}


def make_activation(spec: ActivationSpec, channels: int = 1) -> nn.Module:
    """A fresh activation module for ``spec`` (a name of `ACTIVATIONS`, or a mapping with its
    arguments); ``channels`` sizes per-channel parameters (PReLU). An unknown name or argument
    is one line naming the accepted ones."""
    name = activation_name(spec)
    if name not in ACTIVATIONS:
        raise closest_name_error("activation", name, ACTIVATIONS)
    args = activation_args(spec)
    if name in NEEDS_CHANNELS:
        return checked_call("activation", name, partial(_prelu, channels=channels), args)
    return checked_call("activation", name, ACTIVATIONS[name], args)
