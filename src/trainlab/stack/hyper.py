"""Per-model hyperparameters for stacked training: the library's update rules, unchanged, run
over parameters whose leading dimension indexes K models, with the learning rate and the weight
decay given per model as (K,) tensors.

An alias such as ``sgd`` or ``adam`` is built with ``lr=1`` and no decay, so its output is
``-f_t * u`` (``f_t`` the shared schedule factor, written into its rate by the optimizer each
step, as for one model). Around it:

    coupled L2 (sgd, adam):   g_k + wd_k * theta_k          before the alias (`per_model_l2`)
    rate and decoupled decay: lr_k * (-f_t u_k - f_t wd_k theta_k)  after it (`per_model_rate`)

which is ``-lr_k f_t (u_k + wd_k theta_k)``: AdamW's step (Loshchilov & Hutter 2019, Alg. 2)
per model. When every model has the same lr and decay the alias is used as it is (its fused
in-place step), so the common case, an ensemble of seeds, pays nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from trainlab.optim.torch_adapter import Optimizer
from trainlab.optim.transform import (
    EmptyState,
    Knob,
    Params,
    State,
    Transform,
    Updates,
    chain,
)

DECOUPLED = frozenset({"adamw"})
"""Aliases whose ``weight_decay`` is decoupled (the rest add it to the gradient, torch's L2)."""


def per_model(values: Tensor, like: Tensor) -> Tensor:
    """``values`` (K,) shaped to broadcast against a stacked tensor ``like`` (K, ...)."""
    return values.to(like.dtype).reshape(-1, *([1] * (like.dim() - 1)))


def per_model_l2(weight_decay: Tensor) -> Transform:
    """Coupled L2 per model: ``g_k + wd_k * theta_k`` (torch's ``weight_decay`` of SGD/Adam)."""

    def init(params: Params) -> EmptyState:
        return EmptyState()

    def update(grads: Updates, state: State, params: Params) -> tuple[Updates, State]:
        return [
            g + per_model(weight_decay, p) * p for g, p in zip(grads, params, strict=True)
        ], state

    return Transform(init, update)


def per_model_rate(lr: Tensor, decoupled: Tensor | None, factor: Knob) -> Transform:
    """``lr_k * (u_k - factor * wd_k * theta_k)`` for updates ``u`` already scaled by ``-factor``
    (an alias built with lr 1): per-model rates, and decoupled decay that follows the shared
    schedule factor as AdamW's does."""

    def init(params: Params) -> EmptyState:
        return EmptyState()

    def update(grads: Updates, state: State, params: Params) -> tuple[Updates, State]:
        out = []
        for u, p in zip(grads, params, strict=True):
            if decoupled is not None:
                u = u - factor.value * per_model(decoupled, p) * p
            out.append(u * per_model(lr, p))
        return out, state

    return Transform(init, update)


def stacked_transform(
    alias: Callable[..., Transform],
    name: str,
    lr: Tensor,
    weight_decay: Tensor,
    factor: Knob,
    **options: float | bool,
) -> tuple[Transform, float]:
    """The update rule ``alias`` (e.g. `trainlab.optim.sgd`, called with ``options``) for K
    stacked models with rates ``lr`` (K,) and decays ``weight_decay`` (K,), and the rate to give
    the optimizer's param group (then multiplied by the schedule factor each step).

    Equal hyperparameters across models: the alias itself with the shared values (its fused
    step). Otherwise the alias at lr 1 without decay, wrapped as the module docstring says."""
    if bool((lr == lr[0]).all()) and bool((weight_decay == weight_decay[0]).all()):
        shared_lr, shared_wd = float(lr[0]), float(weight_decay[0])
        return alias(lr=shared_lr, weight_decay=shared_wd, **options), shared_lr
    decays = bool((weight_decay != 0).any())
    core = alias(lr=1.0, weight_decay=0.0, **options)
    if name in DECOUPLED:
        return chain(core, per_model_rate(lr, weight_decay if decays else None, factor)), 1.0
    links = [per_model_l2(weight_decay)] if decays else []
    return chain(*links, core, per_model_rate(lr, None, factor)), 1.0


@dataclass
class StackedOptimizer:
    """The optimizer over a stack's parameters, the knob its per-model rates read the shared
    schedule factor from, and each model's multiple of the param group's rate (its lr when
    rates differ, 1 when the group's rate is the shared lr itself)."""

    optimizer: torch.optim.Optimizer
    rate: Knob
    multiples: Tensor  # (K,)

    def lr_of(self, k: int) -> float:
        """Model k's learning rate at the group's current rate."""
        return float(self.optimizer.param_groups[0]["lr"]) * float(self.multiples[k])


def stacked_optimizer(
    stack: nn.Module,
    alias: Callable[..., Transform],
    name: str,
    lr: Sequence[float],
    weight_decay: Sequence[float],
    **options: float | bool,
) -> StackedOptimizer:
    """A trainlab `Optimizer` over ``stack``'s parameters running `stacked_transform` with the
    per-model rates ``lr`` and decays ``weight_decay`` (Python floats, kept in float64)."""
    lr, weight_decay = _float64(lr), _float64(weight_decay)
    rate = Knob(1.0)
    transform, group_lr = stacked_transform(alias, name, lr, weight_decay, rate, **options)
    optimizer = Optimizer(stack.parameters(), transform, flat_params=False)
    optimizer.param_groups[0]["lr"] = group_lr
    rate.value = group_lr
    return StackedOptimizer(optimizer, rate, lr.double() / group_lr)


def _float64(values: Sequence[float]) -> Tensor:
    """Per-model values as float64 (a float32 tensor would round 1e-3 to 1.00000005e-3)."""
    if isinstance(values, Tensor):
        return values.detach().to(torch.float64)
    return torch.tensor([float(v) for v in values], dtype=torch.float64)
