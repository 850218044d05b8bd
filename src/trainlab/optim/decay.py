"""Regularization as transforms: coupled L2, L1, and decoupled weight decay.

Where the decay enters the chain is the whole difference (seed 000, "L2 Regularization vs
Weight Decay"; Loshchilov & Hutter 2019):

    adam + L2  = chain(add_l2(wd), scale_by_adam(), scale_by_lr(lr))         # wd*theta in g
    adamw      = chain(scale_by_adam(), add_decayed_weights(wd), scale_by_lr(lr))

Under plain SGD both give ``theta -= lr*(g + wd*theta)``; under Adam they differ (tested).
Note torch's convention: ``add_l2(wd)`` is the gradient of ``wd/2 * |theta|^2`` (the seed writes
``lambda*|w|^2`` with gradient ``2*lambda*w``, i.e. ``wd = 2*lambda``).
"""

from __future__ import annotations

import torch

from trainlab.optim.elementwise import add_term
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


def _add_term(owner: str, weight: Hyper, term: str) -> Transform:
    """``u + weight * f(theta)`` with f the identity (``term="p"``) or sign (``"sign"``)."""
    check_nonneg(owner, "weight_decay", weight)

    def init(params: Params) -> CountState:
        return CountState(zero_count())

    def ref(grads: Updates, state: CountState, params: Params) -> tuple[Updates, CountState]:
        w = value_at(weight, state.count)
        fs = [p.sign() if term == "sign" else p for p in params]
        return [add_term(g, f, w) for g, f in zip(grads, fs, strict=True)], CountState(
            state.count + 1
        )

    def fast(grads: Updates, state: CountState, params: Params) -> tuple[Updates, CountState]:
        w = value_at(weight, state.count)
        state.count.add_(1)
        if w == 0.0:
            return list(grads), state
        fs = torch._foreach_sign(params) if term == "sign" else params
        return torch._foreach_add(grads, fs, alpha=w), state

    return Transform(init, pick(ref, fast))


def add_l2(weight_decay: Hyper) -> Transform:
    """Coupled L2: ``g + wd*theta`` (goes *before* the adaptive scaling; torch's weight_decay)."""
    return _add_term("add_l2", weight_decay, "p")


def add_l1(weight_decay: Hyper) -> Transform:
    """L1 (sub)gradient: ``g + wd*sign(theta)`` (Tibshirani 1996; gradient of ``wd*|theta|_1``)."""
    return _add_term("add_l1", weight_decay, "sign")


def add_decayed_weights(weight_decay: Hyper) -> Transform:
    """Decoupled weight decay: ``u + wd*theta`` *after* the scaling, before ``scale_by_lr(lr)``,
    so the step is ``-lr*(u + wd*theta)`` as in AdamW (Loshchilov & Hutter 2019, Algorithm 2)."""
    return _add_term("add_decayed_weights", weight_decay, "p")
