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

from trainlab.optim import fused
from trainlab.optim.elementwise import trace_step
from trainlab.optim.transform import (
    Hyper,
    Params,
    Transform,
    Updates,
    check_beta,
    check_range,
    current_backend,
    value_at,
    zero_count,
)


class TraceState(NamedTuple):
    """State of `trace`: step count and one momentum buffer per parameter."""

    count: Tensor
    trace: list[Tensor]


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
        damp = 0.0 if int(state.count) == 0 else damp  # the buffer starts at g
        pairs = [
            trace_step(g, b, mu, damp, nesterov) for g, b in zip(grads, state.trace, strict=True)
        ]
        return [o for o, _ in pairs], TraceState(state.count + 1, [b for _, b in pairs])

    if current_backend() == "reference":
        return Transform(init, ref)
    cache = fused.PlanCache()

    def step(
        targets: list[Tensor], grads: Updates, state: TraceState, params: Params
    ) -> TraceState:
        count = int(state.count)
        fused.sgd_kernel(
            cache.get(params, [state.trace]), targets, grads, params, state.trace,
            lr=-1.0, l2=0.0, momentum=value_at(momentum, count),
            dampening=value_at(dampening, count), nesterov=nesterov, first=count == 0,
        )  # fmt: skip
        state.count.add_(1)
        return state

    return fused.fast_transform(init, step)
