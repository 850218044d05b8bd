"""Backend ``"compiled"``: the elementwise math of the fused aliases as ``torch.compile``-d passes.

Opt in with ``with trainlab.optim.use_backend("compiled"): t = adamw(...)``. The kernels work on
one flat (1-D) tensor at a time, compiled with dynamic shapes, so one compilation (a few seconds
on first use, per flag combination and dtype) serves every tensor size and every model; the
bucketing of `trainlab.optim.fused` keeps the number of calls small (one per big tensor and one
per bucket of small ones). Hyperparameters arrive as one small tensor per step, so schedules and
the bias-correction step count never trigger a recompilation. A tensor that cannot be viewed
flat together with its state (different memory layouts) takes the eager path.

Adam's update is one pass reading ``p, g, m, v`` and writing ``p, m, v`` — the memory traffic of
torch's fused CPU kernel — where the eager path needs several passes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

_compiled: dict[str, Callable[..., Any]] = {}


def _get(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    if name not in _compiled:  # lazily: importing torch._dynamo costs time
        _compiled[name] = torch.compile(fn, dynamic=True, fullgraph=True)
    return _compiled[name]


def _moments(g: Tensor, m: Tensor, v: Tensor, v_hat: Tensor, h: Tensor, ams: bool) -> tuple:
    """``h = [1-b1, b2, 1-b2, eps, l2, decay, step]``; returns the new m and the denominator."""
    m_new = m + (g - m) * h[0]  # lerp, as the eager path
    v_new = v * h[1] + g * g * h[2]
    m.copy_(m_new)
    v.copy_(v_new)
    if ams:
        v_new = torch.maximum(v_hat, v_new)
        v_hat.copy_(v_new)
    return m_new, v_new.sqrt() + h[3]


def _adam_param(
    p: Tensor, g: Tensor, m: Tensor, v: Tensor, v_hat: Tensor, h: Tensor, ams: bool, l2: bool
) -> None:
    if l2:
        g = g + h[4] * p
    m_new, denom = _moments(g, m, v, v_hat, h, ams)
    p.copy_(p - h[5] * p - h[6] * m_new / denom)


def _adam_direction(
    g: Tensor, m: Tensor, v: Tensor, v_hat: Tensor, out: Tensor, h: Tensor, ams: bool
) -> None:
    m_new, denom = _moments(g, m, v, v_hat, h, ams)
    out.copy_(m_new / denom)


def adam_param(
    p: Tensor, g: Tensor, m: Tensor, v: Tensor, v_hat: Tensor, h: Tensor, ams: bool, l2: bool
) -> None:
    """One Adam step into the flat parameter ``p`` (moments updated in place)."""
    _get("adam_param", _adam_param)(p, g, m, v, v_hat, h, ams, l2)


def adam_direction(
    g: Tensor, m: Tensor, v: Tensor, v_hat: Tensor, out: Tensor, h: Tensor, ams: bool
) -> None:
    """Update the moments and write ``m / (sqrt(v_hat) + eps)`` into ``out`` (all flat)."""
    _get("adam_direction", _adam_direction)(g, m, v, v_hat, out, h, ams)
