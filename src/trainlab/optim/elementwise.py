"""Reference math of one tensor for the update rules that have a fast path.

The reference transforms (`scale_by_adam`, `trace`) apply these per tensor, and the compiled pass
(`trainlab.optim.compiled`) compiles the very same functions over whole tensor lists, so each
rule is written once as a reference and once as the eager in-place kernel
(`trainlab.optim.fused`). Hyperparameters may be floats or 0-dim tensors (compiled code gets
them as one tensor per step, so schedules never recompile).
"""

from __future__ import annotations

from torch import Tensor

Num = float | Tensor


def adam_moments(g: Tensor, m: Tensor, v: Tensor, b1: Num, b2: Num) -> tuple[Tensor, Tensor]:
    """Reference: Adam's moment updates ``m = b1*m + (1-b1)*g``, ``v = b2*v + (1-b2)*g^2`` for one
    tensor. Hyperparameters may be floats or 0-dim tensors (the compiled pass uses this too)."""
    return m * b1 + g * (1 - b1), v * b2 + g * g * (1 - b2)


def adam_direction(m: Tensor, v: Tensor, c1: Num, c2: Num, eps: Num, eps_root: Num = 0.0) -> Tensor:
    """Reference: ``(m / c1) / (sqrt(v / c2^2 + eps_root) + eps)`` for one tensor, with
    ``c1 = 1 - b1^t`` and ``c2 = sqrt(1 - b2^t)`` (`bias_corrections`). Without ``eps_root``
    it is computed in Kingma & Ba's (2015, Sec. 2) cheaper order ``(c2/c1) * m / (sqrt(v) +
    eps*c2)``, the same value with one division per element instead of three."""
    if isinstance(eps_root, float) and eps_root == 0.0:
        return m * (c2 / c1) / (v.sqrt() + eps * c2)
    return (m / c1) / ((v / c2**2 + eps_root).sqrt() + eps)


def trace_step(g: Tensor, buf: Tensor, mu: Num, damp: Num, nesterov: bool) -> tuple[Tensor, Tensor]:
    """Heavy-ball / Nesterov momentum for one tensor: returns ``(output, new buffer)`` with
    ``b = mu*b + (1-damp)*g`` and output ``b`` or ``g + mu*b``. torch.optim.SGD starts the buffer
    at ``g``: the caller passes the zero initial buffer and ``damp = 0`` on the first step,
    which gives exactly ``g``."""
    new = buf * mu + g * (1 - damp)
    return (g + new * mu if nesterov else new), new


def add_term(g: Tensor, p: Tensor, weight: Num) -> Tensor:
    """``g + weight * p``: coupled L2 before a scaling, or decoupled decay after it."""
    return g + p * weight


def scale_by_rate(u: Tensor, lr: Num) -> Tensor:
    """The descent step ``-lr * u``."""
    return u * -lr
