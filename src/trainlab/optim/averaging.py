"""Averaged weights for evaluation: exponential moving average and Polyak (uniform) averaging.

Seed 000 ("Model Ensembles")::

    x += -learning_rate * dx
    x_test = 0.995*x_test + 0.005*x      # use for test set

``ema_weights(0.995)`` keeps ``x_test`` in its state; put it *last* in a chain (it reads the
final update to know the new weights ``x + u``) and evaluate with `swapped_weights`.
``polyak_weights()`` keeps the running mean of all iterates (Polyak & Juditsky 1992).
Both start from the initial weights: ``avg_0 = x_0``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import NamedTuple

import torch
from torch import Tensor

from trainlab.optim.transform import (
    Hyper,
    Params,
    State,
    Transform,
    Updates,
    check_beta,
    find_states,
    pick,
    value_at,
    zero_count,
)


class AverageState(NamedTuple):
    """State of `ema_weights` / `polyak_weights`: count and the averaged weights."""

    count: Tensor
    avg: list[Tensor]


def _averaging(decay: Hyper | None) -> Transform:
    """EMA with ``decay`` (None: uniform mean ``avg += (x - avg)/(t+1)``). Updates pass through."""

    def init(params: Params) -> AverageState:
        return AverageState(zero_count(), [p.detach().clone() for p in params])

    def weight(count: Tensor) -> float:
        if decay is None:
            return 1.0 / (int(count) + 2)  # avg of x_0..x_{t+1}
        return 1.0 - value_at(decay, count)

    def ref(grads: Updates, state: AverageState, params: Params) -> tuple[Updates, AverageState]:
        w = weight(state.count)
        new = [a + ((p + u) - a) * w for a, p, u in zip(state.avg, params, grads, strict=True)]
        return list(grads), AverageState(state.count + 1, new)

    def fast(grads: Updates, state: AverageState, params: Params) -> tuple[Updates, AverageState]:
        w = weight(state.count)
        torch._foreach_lerp_(state.avg, torch._foreach_add(params, grads), w)
        state.count.add_(1)
        return list(grads), state

    return Transform(init, pick(ref, fast))


def ema_weights(decay: Hyper = 0.995) -> Transform:
    """Exponential moving average of the weights: ``avg = decay*avg + (1-decay)*(x + u)``."""
    check_beta("ema_weights", "decay", decay)
    return _averaging(decay)


def polyak_weights() -> Transform:
    """Uniform running mean of all iterates x_0..x_t (Polyak & Juditsky 1992)."""
    return _averaging(None)


def averaged_params(state: State) -> list[Tensor]:
    """The averaged weights held by the (single) averaging transform inside ``state``."""
    found = find_states(state, AverageState)
    if len(found) != 1:
        raise ValueError(f"averaged_params: expected one averaging state, found {len(found)}")
    return found[0].avg


@contextlib.contextmanager
def swapped_weights(params: Sequence[Tensor], weights: Sequence[Tensor]) -> Iterator[None]:
    """Temporarily copy ``weights`` into ``params`` (e.g. to evaluate with averaged weights).

    The original values are restored on exit, even after an exception::

        with swapped_weights(list(model.parameters()), averaged_params(state)):
            evaluate(model)
    """
    params = list(params)
    if len(params) != len(weights):
        raise ValueError(f"swapped_weights: {len(params)} params but {len(weights)} weights")
    with torch.no_grad():
        saved = [p.detach().clone() for p in params]
        torch._foreach_copy_(params, list(weights))
    try:
        yield
    finally:
        with torch.no_grad():
            torch._foreach_copy_(params, saved)
