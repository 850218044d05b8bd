"""Compiled whole-list kernels for the big tensors of the `sgd`, `adam` and `adamw` aliases.

At large sizes the step is memory-bound: torch's fused CPU Adam reads ``p, g, m, v`` and writes
``p, m, v`` once, where an eager chain makes several passes (2.6x the fused time at 10M
parameters). Here the whole update of every big tensor is one ``torch.compile``-d function of
the *lists* of flat tensors: Inductor emits one vectorized C++ loop per tensor that does the
moments and the parameter update in a single pass, and the step costs one Python call (a
compiled call has ~0.1 ms of dispatch overhead, so one call per tensor would not pay).

The kernels are the reference math of `trainlab.optim.elementwise` composed as the alias's chain:
nothing about the update rule is written here.

Shapes are static (``dynamic=False``): each parameter layout compiles once (a few seconds;
Inductor's on-disk cache makes later processes faster), and hyperparameters arrive as one small
tensor per step, so schedules and the bias-correction step count never recompile. Any failure
to compile (e.g. no C++ compiler) is reported once and the caller falls back to eager kernels.

Used by `trainlab.optim.fused` for tensors that are their own bucket: always with
``use_backend("compiled")``, and with the default ``"fast"`` backend once those tensors hold at
least `AUTO_MIN` elements (below that the eager kernels are as fast and nothing compiles).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from trainlab.optim import elementwise as ew

AUTO_MIN = 1 << 21  # elements in big tensors from which the "fast" backend compiles (~2M)
RECOMPILE_LIMIT = 64  # distinct parameter layouts per process before dynamo gives up

_compiled: dict[str, Callable[..., Any]] = {}
_broken: list[str] = []  # set once compiling failed: eager from then on


def _get(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    if name not in _compiled:  # lazily: importing torch._dynamo costs time
        import torch._dynamo

        config = torch._dynamo.config
        config.recompile_limit = max(config.recompile_limit, RECOMPILE_LIMIT)
        _compiled[name] = torch.compile(fn, dynamic=False, fullgraph=True)
    return _compiled[name]


def _adam_lists(
    ps: list[Tensor],
    gs: list[Tensor],
    ms: list[Tensor],
    vs: list[Tensor],
    v_hats: list[Tensor],
    h: Tensor,
    ams: bool,
    l2: bool,
    decoupled: bool,
) -> None:
    """``chain(add_l2?, scale_by_adam, add_decayed_weights?, scale_by_lr)`` per tensor, from the
    reference math (`trainlab.optim.elementwise`); ``h = [b1, b2, eps, l2, wd, lr, c1, c2]``."""
    for p, g, m, v, v_hat in zip(ps, gs, ms, vs, v_hats, strict=True):
        if l2:
            g = ew.add_term(g, p, h[3])
        m_new, v_new = ew.adam_moments(g, m, v, h[0], h[1])
        m.copy_(m_new)
        v.copy_(v_new)
        if ams:
            v_new = torch.maximum(v_hat, v_new)
            v_hat.copy_(v_new)
        u = ew.adam_direction(m_new, v_new, h[6], h[7], h[2])
        if decoupled:
            u = ew.add_term(u, p, h[4])
        p.copy_(p + ew.scale_by_rate(u, h[5]))


def _sgd_lists(
    ps: list[Tensor],
    gs: list[Tensor],
    bufs: list[Tensor],
    h: Tensor,
    nesterov: bool,
    l2: bool,
) -> None:
    """``chain(add_l2?, trace, scale_by_lr)`` per tensor, from the reference math;
    ``h = [lr, l2, momentum, dampening]`` (dampening 0 on the first step, as `trace_step` says)."""
    for p, g, buf in zip(ps, gs, bufs, strict=True):
        if l2:
            g = ew.add_term(g, p, h[1])
        out, new = ew.trace_step(g, buf, h[2], h[3], nesterov)
        buf.copy_(new)
        p.copy_(p + ew.scale_by_rate(out, h[0]))


def run(name: str, *args: Any) -> bool:
    """Run kernel ``name`` ("adam" or "sgd"); False (after one warning) if it cannot compile."""
    if _broken:
        return False
    fn = {"adam": _adam_lists, "sgd": _sgd_lists}[name]
    try:
        with torch.no_grad():
            _get(name, fn)(*args)
    except Exception as exc:  # noqa: BLE001 - any compiler failure means: use eager kernels
        _broken.append(name)
        warnings.warn(
            f"trainlab.optim: torch.compile of the {name} step failed ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}); using the eager kernels",
            RuntimeWarning,
            stacklevel=2,
        )
        return False
    return True
