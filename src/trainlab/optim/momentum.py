"""Momentum (heavy ball) and Nesterov momentum as a transform.

Heavy ball (Polyak 1964; seed 000 "SGD+Momentum", CS231n form ``v = rho*v + dx``)::

    b_1 = g_1,   b_t = mu * b_{t-1} + (1 - dampening) * g_t
    out_t = b_t                       (heavy ball)
    out_t = g_t + mu * b_t            (Nesterov, Sutskever et al. 2013 form used by torch.optim)

followed by ``scale_by_lr(lr)``, this is torch.optim.SGD's momentum exactly (including the first
step, where the buffer is the raw gradient, undampened). The seeds' ``v = beta*v - alpha*g``
form is the same with ``v = -alpha * b`` for a constant alpha; Nesterov's change-of-variables form
(seed 000, "Nesterov Momentum") gives iterates ``x~ = x + rho*v`` equal to ours.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from trainlab.optim.transform import (
    Hyper,
    Params,
    Transform,
    Updates,
    check_beta,
    check_range,
    pick,
    value_at,
    zero_count,
)


class TraceState(NamedTuple):
    """State of `trace`: step count and one momentum buffer per parameter."""

    count: Tensor
    trace: list[Tensor]


def _trace_one(
    g: Tensor, buf: Tensor, first: bool, mu: float, damp: float, nesterov: bool
) -> tuple[Tensor, Tensor]:
    """Reference math for one tensor: returns (output, new buffer)."""
    new = g.clone() if first else buf * mu + g * (1.0 - damp)
    out = g + new * mu if nesterov else new
    return out, new


def trace(momentum: Hyper = 0.9, dampening: Hyper = 0.0, nesterov: bool = False) -> Transform:
    """Heavy-ball momentum ``b = mu*b + (1-dampening)*g`` (first step ``b = g``), or Nesterov.

    Matches torch.optim.SGD's buffer semantics; cite Polyak 1964, Sutskever et al. 2013.
    """
    check_beta("trace", "momentum", momentum)
    check_range("trace", "dampening", dampening, 0.0, 1.0)
    if nesterov and (callable(dampening) or float(dampening) != 0.0):
        raise ValueError("trace: nesterov=True requires dampening=0 (as in torch.optim.SGD)")

    def init(params: Params) -> TraceState:
        return TraceState(zero_count(), [torch.zeros_like(p) for p in params])

    def ref(grads: Updates, state: TraceState, params: Params) -> tuple[Updates, TraceState]:
        mu, damp = value_at(momentum, state.count), value_at(dampening, state.count)
        first = int(state.count) == 0
        pairs = [
            _trace_one(g, b, first, mu, damp, nesterov)
            for g, b in zip(grads, state.trace, strict=True)
        ]
        return [o for o, _ in pairs], TraceState(state.count + 1, [b for _, b in pairs])

    def fast(grads: Updates, state: TraceState, params: Params) -> tuple[Updates, TraceState]:
        mu, damp = value_at(momentum, state.count), value_at(dampening, state.count)
        if int(state.count) == 0:
            torch._foreach_copy_(state.trace, grads)
        else:
            torch._foreach_mul_(state.trace, mu)
            torch._foreach_add_(state.trace, grads, alpha=1.0 - damp)
        state.count.add_(1)
        if nesterov:
            return torch._foreach_add(grads, state.trace, alpha=mu), state
        return [b.clone() for b in state.trace], state

    return Transform(init, pick(ref, fast))
