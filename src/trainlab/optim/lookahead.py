"""Lookahead (Zhang, Lucas, Hinton & Ba 2019, "Lookahead Optimizer: k steps forward, 1 step back").

The inner transform moves the fast weights for ``k`` steps; then the slow weights move a
fraction ``alpha`` towards them and the fast weights restart from there::

    every k-th step:  phi = phi + alpha * (theta_fast - phi);   theta = phi

The slow weights ``phi`` are part of the state (`LookaheadState.slow`), so they are saved by
``state_dict`` and survive a checkpoint (several public implementations lose them).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from trainlab.optim.transform import (
    Params,
    State,
    Transform,
    Updates,
    check_range,
    zero_count,
)


class LookaheadState(NamedTuple):
    """State of `lookahead`: count, slow weights phi, and the inner transform's state."""

    count: Tensor
    slow: list[Tensor]
    inner: State


def lookahead(inner: Transform, k: int = 5, alpha: float = 0.5) -> Transform:
    """Wrap ``inner`` with Lookahead: ``k`` fast steps, then pull back by ``alpha`` in [0, 1]."""
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"lookahead: k={k!r} must be an integer >= 1")
    check_range("lookahead", "alpha", alpha, 0.0, 1.0)

    def init(params: Params) -> LookaheadState:
        return LookaheadState(
            zero_count(), [p.detach().clone() for p in params], inner.init(params)
        )

    def update(grads: Updates, state: LookaheadState, params: Params) -> tuple[Updates, State]:
        updates, inner_state = inner.update(grads, state.inner, params)
        count = state.count + 1
        if int(count) % k != 0:
            return updates, LookaheadState(count, state.slow, inner_state)
        fast = torch._foreach_add(params, updates)
        slow = [s + (f - s) * alpha for s, f in zip(state.slow, fast, strict=True)]
        # The update takes the weights from theta to the new slow weights.
        return torch._foreach_sub(slow, params), LookaheadState(count, slow, inner_state)

    return Transform(init, update)
