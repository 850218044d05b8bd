"""Activation functions by name (the lectures' sigmoid, tanh, ReLU family, GELU, SiLU)."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from trainlab.names import closest_name_error

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "leaky_relu": lambda: nn.LeakyReLU(0.01),
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "identity": nn.Identity,
}


def make_activation(name: str) -> nn.Module:
    """A fresh activation module for `name` (one of ACTIVATIONS)."""
    if name not in ACTIVATIONS:
        raise closest_name_error("activation", name, ACTIVATIONS)
    return ACTIVATIONS[name]()
