"""Primitives by name, so a recipe can spell out an explicit chain:

    optimizer:
      lr: 0.001
      chain:
        - {name: clip_by_global_norm, max_norm: 1.0}
        - {name: scale_by_adam, b1: 0.9, b2: 0.999}
        - {name: add_decayed_weights, weight_decay: 0.01}

A chain without `scale_by_lr` gets `scale_by_lr(lr)` appended (the descent step)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from trainlab.names import checked_call, closest_name_error
from trainlab.optim.adaptive import (
    scale_by_adadelta,
    scale_by_adagrad,
    scale_by_adam,
    scale_by_nadam,
    scale_by_rms,
)
from trainlab.optim.clip import clip, clip_by_global_norm
from trainlab.optim.decay import add_decayed_weights, add_l1, add_l2
from trainlab.optim.momentum import trace
from trainlab.optim.transform import Transform, chain, scale, scale_by_lr

PRIMITIVES: dict[str, Callable[..., Transform]] = {
    "scale": scale,
    "scale_by_lr": scale_by_lr,
    "trace": trace,
    "scale_by_adagrad": scale_by_adagrad,
    "scale_by_rms": scale_by_rms,
    "scale_by_adadelta": scale_by_adadelta,
    "scale_by_adam": scale_by_adam,
    "scale_by_nadam": scale_by_nadam,
    "add_l2": add_l2,
    "add_l1": add_l1,
    "add_decayed_weights": add_decayed_weights,
    "clip": clip,
    "clip_by_global_norm": clip_by_global_norm,
}


def get_primitive(name: str, **kwargs: Any) -> Transform:
    """The primitive `name` built with `kwargs`; unknown names or arguments fail in one line."""
    if not isinstance(name, str) or name not in PRIMITIVES:
        raise closest_name_error("transform", name, PRIMITIVES)
    return checked_call("transform", name, PRIMITIVES[name], kwargs)


def chain_from_spec(steps: list[dict[str, Any]], lr: Any) -> Transform:
    """`chain` of the named primitives in `steps`, ending with `scale_by_lr(lr)` if absent."""
    parts = [get_primitive(**step) for step in steps]
    if not any(step["name"] == "scale_by_lr" for step in steps):
        parts.append(scale_by_lr(lr))
    return chain(*parts)
