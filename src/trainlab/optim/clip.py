"""Clipping: element-wise by value, and by the global norm of all updates.

``clip_by_global_norm`` follows ``torch.nn.utils.clip_grad_norm_`` exactly: with the L2 norm
``n`` of all updates taken together, every update is multiplied by
``min(1, max_norm / (n + 1e-6))`` (Pascanu et al. 2013).
"""

from __future__ import annotations

import torch
from torch import Tensor

from trainlab.optim.transform import (
    CountState,
    Hyper,
    Params,
    Transform,
    Updates,
    check_nonneg,
    pick,
    value_at,
    zero_count,
)

NORM_EPS = 1e-6  # torch.nn.utils.clip_grad_norm_'s guard


def clip(max_delta: Hyper) -> Transform:
    """Clamp every coordinate to ``[-max_delta, max_delta]`` (clip by value)."""
    check_nonneg("clip", "max_delta", max_delta)

    def init(params: Params) -> CountState:
        return CountState(zero_count())

    def ref(grads: Updates, state: CountState, params: Params) -> tuple[Updates, CountState]:
        c = value_at(max_delta, state.count)
        return [g.clamp(-c, c) for g in grads], CountState(state.count + 1)

    def fast(grads: Updates, state: CountState, params: Params) -> tuple[Updates, CountState]:
        c = value_at(max_delta, state.count)
        out = torch._foreach_clamp_min(grads, -c)
        torch._foreach_clamp_max_(out, c)
        state.count.add_(1)
        return out, state

    return Transform(init, pick(ref, fast))


def global_norm(updates: list[Tensor]) -> Tensor:
    """L2 norm of all tensors taken together (a 0-d tensor)."""
    if not updates:
        return torch.zeros(())
    return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(updates)))


def clip_by_global_norm(max_norm: Hyper) -> Transform:
    """Scale all updates by ``min(1, max_norm / (||u||_2 + 1e-6))`` (as clip_grad_norm_)."""
    check_nonneg("clip_by_global_norm", "max_norm", max_norm)

    def init(params: Params) -> CountState:
        return CountState(zero_count())

    def factor(grads: Updates, count: Tensor) -> Tensor:
        return (value_at(max_norm, count) / (global_norm(grads) + NORM_EPS)).clamp(max=1.0)

    def ref(grads: Updates, state: CountState, params: Params) -> tuple[Updates, CountState]:
        norm = torch.linalg.vector_norm(torch.stack([g.norm() for g in grads]))
        c = (value_at(max_norm, state.count) / (norm + NORM_EPS)).clamp(max=1.0)
        return [g * c.to(g.dtype) for g in grads], CountState(state.count + 1)

    def fast(grads: Updates, state: CountState, params: Params) -> tuple[Updates, CountState]:
        c = factor(grads, state.count)
        state.count.add_(1)
        return torch._foreach_mul(grads, c.to(grads[0].dtype)), state

    return Transform(init, pick(ref, fast))
