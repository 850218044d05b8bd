"""Named optimizers with torch.optim's names, defaults and semantics, as chains of primitives.

Each alias is a chain (e.g. ``adamw = chain(scale_by_adam, add_decayed_weights, scale_by_lr)``).
With the ``"fast"`` backend, `sgd`, `adam` and `adamw` replace the chain's update by one fused
foreach pass over the *same state* (so checkpoints are interchangeable); it is tested equal to
the composed chain and to torch.optim. torch's ``weight_decay`` in SGD, Adagrad, RMSprop,
Adadelta, Adam and NAdam is coupled L2 (``add_l2`` before the scaling); AdamW's is decoupled
(``-lr*wd*theta``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from trainlab.names import checked_call, closest_name_error
from trainlab.optim import fused
from trainlab.optim.adaptive import (
    AdamState,
    bias_corrections,
    scale_by_adadelta,
    scale_by_adagrad,
    scale_by_adam,
    scale_by_nadam,
    scale_by_rms,
)
from trainlab.optim.decay import add_decayed_weights, add_l2
from trainlab.optim.momentum import trace
from trainlab.optim.transform import (
    Hyper,
    Params,
    State,
    Transform,
    Updates,
    chain,
    check_beta,
    check_nonneg,
    current_backend,
    lr_advance,
    lr_value,
    scale_by_lr,
    value_at,
)


def _is_on(h: Hyper) -> bool:
    """A hyperparameter that may be nonzero (a schedule always counts as on)."""
    return callable(h) or float(h) != 0.0


def _check_betas(owner: str, betas: tuple[Hyper, Hyper]) -> None:
    check_beta(owner, "betas[0]", betas[0])
    check_beta(owner, "betas[1]", betas[1])


# ---------------------------------------------------------------- SGD


def sgd(
    lr: Hyper = 1e-3,
    momentum: Hyper = 0.0,
    dampening: Hyper = 0.0,
    nesterov: bool = False,
    weight_decay: Hyper = 0.0,
) -> Transform:
    """torch.optim.SGD: ``chain(add_l2(wd)?, trace(momentum, dampening, nesterov)?, scale_by_lr)``.

    Robbins & Monro 1951; momentum: Polyak 1964 / Sutskever et al. 2013 (seed 000 "SGD+Momentum").
    """
    check_nonneg("sgd", "lr", lr)
    check_beta("sgd", "momentum", momentum)
    check_nonneg("sgd", "weight_decay", weight_decay)
    if nesterov and not _is_on(momentum):
        raise ValueError("sgd: nesterov=True requires momentum > 0 (as in torch.optim.SGD)")
    has_wd, has_mom = _is_on(weight_decay), _is_on(momentum)
    parts = [add_l2(weight_decay)] if has_wd else []
    parts += [trace(momentum, dampening, nesterov)] if has_mom else []
    composed = chain(*parts, scale_by_lr(lr))
    if current_backend() == "reference":
        return composed

    if not has_mom:
        return Transform(composed.init, _plain_sgd_update(lr, weight_decay, has_wd))
    cache = fused.PlanCache()
    use_compiled = current_backend() == "compiled"

    def step(targets: list[Tensor], grads: Updates, state: State, params: Params) -> State:
        l2 = 0.0
        if has_wd:
            l2 = value_at(weight_decay, state[0].count)
            state[0].count.add_(1)
        lr_state, tr = state[-1], state[-2]
        a = lr_value(lr, lr_state)
        count = int(tr.count)
        fused.sgd_kernel(
            cache.get(params, [tr.trace]),
            targets,
            grads,
            params,
            tr.trace,
            lr=a,
            l2=l2,
            momentum=value_at(momentum, count),
            dampening=value_at(dampening, count),
            nesterov=nesterov,
            first=count == 0,
            compiled=use_compiled,
        )
        tr.count.add_(1)
        lr_advance(lr, lr_state, a, inplace=True)
        return state

    return fused.fast_transform(composed.init, step)


def _plain_sgd_update(
    lr: Hyper, weight_decay: Hyper, has_wd: bool
) -> Callable[[Updates, State, Params], tuple[Updates, State]]:
    """SGD without momentum: ``-lr * (g + wd * theta)``, foreach (nothing to fuse)."""

    def update(grads: Updates, state: State, params: Params) -> tuple[Updates, State]:
        d = grads
        if has_wd:
            d = torch._foreach_add(grads, params, alpha=value_at(weight_decay, state[0].count))
            state[0].count.add_(1)
        a = lr_value(lr, state[-1])
        lr_advance(lr, state[-1], a, inplace=True)
        return torch._foreach_mul(d, -a), state

    return update


# ---------------------------------------------------------------- Adam family


def _fast_adam(
    composed: Transform,
    lr: Hyper,
    b1: Hyper,
    b2: Hyper,
    eps: Hyper,
    l2: Hyper,
    decoupled: Hyper,
    amsgrad: bool,
) -> Transform:
    """The fast path of ``chain(add_l2?, scale_by_adam, add_decayed_weights?, scale_by_lr)``: one
    in-place bucketed pass (`fused.adam_kernel`) over the *same state* as the chain.

    Uses ``(m/c1) / (sqrt(v)/c2 + eps) = (c2/c1) * m / (sqrt(v) + eps*c2)`` to save a pass.
    """
    has_l2, has_dec = _is_on(l2), _is_on(decoupled)
    cache = fused.PlanCache()
    use_compiled = current_backend() == "compiled"

    def step(targets: list[Tensor], grads: Updates, state: State, params: Params) -> State:
        l2_t = 0.0
        if has_l2:
            l2_t = value_at(l2, state[0].count)
            state[0].count.add_(1)
        s: AdamState = state[1 if has_l2 else 0]
        count = int(s.count)
        a, b, e = (value_at(h, count) for h in (b1, b2, eps))
        c1, c2 = bias_corrections(a, b, count + 1, True)
        lr_state = state[-1]
        lr_t = lr_value(lr, lr_state)
        decay = 0.0
        if has_dec:
            decay = lr_t * value_at(decoupled, state[-2].count)
            state[-2].count.add_(1)
        lists = [s.mu, s.nu, s.nu_max] if amsgrad else [s.mu, s.nu]
        fused.adam_kernel(
            cache.get(params, lists),
            targets,
            grads,
            params,
            s.mu,
            s.nu,
            s.nu_max,
            b1=a,
            b2=b,
            eps=e * c2,
            l2=l2_t,
            decay=decay,
            step=lr_t * c2 / c1,
            compiled=use_compiled,
        )
        s.count.add_(1)
        lr_advance(lr, lr_state, lr_t, inplace=True)
        return state

    return fused.fast_transform(composed.init, step)


def adam(
    lr: Hyper = 1e-3,
    betas: tuple[Hyper, Hyper] = (0.9, 0.999),
    eps: Hyper = 1e-8,
    weight_decay: Hyper = 0.0,
    amsgrad: bool = False,
) -> Transform:
    """torch.optim.Adam (Kingma & Ba 2015; amsgrad: Reddi et al. 2018); weight_decay is L2:
    ``chain(add_l2(wd)?, scale_by_adam(betas, eps, amsgrad), scale_by_lr(lr))``."""
    check_nonneg("adam", "lr", lr)
    _check_betas("adam", betas)
    check_nonneg("adam", "weight_decay", weight_decay)
    parts = [add_l2(weight_decay)] if _is_on(weight_decay) else []
    composed = chain(
        *parts, scale_by_adam(betas[0], betas[1], eps, amsgrad=amsgrad), scale_by_lr(lr)
    )
    if current_backend() == "reference":
        return composed
    return _fast_adam(composed, lr, betas[0], betas[1], eps, weight_decay, 0.0, amsgrad)


def adamw(
    lr: Hyper = 1e-3,
    betas: tuple[Hyper, Hyper] = (0.9, 0.999),
    eps: Hyper = 1e-8,
    weight_decay: Hyper = 1e-2,
    amsgrad: bool = False,
) -> Transform:
    """torch.optim.AdamW, decoupled weight decay (Loshchilov & Hutter 2019; seed 000 "AdamW"):
    ``chain(scale_by_adam(betas, eps, amsgrad), add_decayed_weights(wd), scale_by_lr(lr))``."""
    check_nonneg("adamw", "lr", lr)
    _check_betas("adamw", betas)
    check_nonneg("adamw", "weight_decay", weight_decay)
    composed = chain(
        scale_by_adam(betas[0], betas[1], eps, amsgrad=amsgrad),
        add_decayed_weights(weight_decay),
        scale_by_lr(lr),
    )
    if current_backend() == "reference":
        return composed
    return _fast_adam(composed, lr, betas[0], betas[1], eps, 0.0, weight_decay, amsgrad)


def nadam(
    lr: Hyper = 2e-3,
    betas: tuple[Hyper, Hyper] = (0.9, 0.999),
    eps: Hyper = 1e-8,
    weight_decay: Hyper = 0.0,
    momentum_decay: Hyper = 4e-3,
    decoupled_weight_decay: bool = False,
) -> Transform:
    """torch.optim.NAdam (Dozat 2016): ``chain(add_l2?, scale_by_nadam, scale_by_lr)``, or with
    ``decoupled_weight_decay`` the decay after the scaling (as AdamW)."""
    check_nonneg("nadam", "lr", lr)
    _check_betas("nadam", betas)
    check_nonneg("nadam", "weight_decay", weight_decay)
    core = scale_by_nadam(betas[0], betas[1], eps, momentum_decay)
    if not _is_on(weight_decay):
        return chain(core, scale_by_lr(lr))
    if decoupled_weight_decay:
        return chain(core, add_decayed_weights(weight_decay), scale_by_lr(lr))
    return chain(add_l2(weight_decay), core, scale_by_lr(lr))


# ---------------------------------------------------------------- other adaptive methods


def adagrad(
    lr: Hyper = 1e-2,
    lr_decay: Hyper = 0.0,
    weight_decay: Hyper = 0.0,
    initial_accumulator_value: float = 0.0,
    eps: Hyper = 1e-10,
) -> Transform:
    """torch.optim.Adagrad (Duchi et al. 2011):
    ``chain(add_l2?, scale_by_adagrad(eps, initial_accumulator_value, lr_decay), scale_by_lr)``."""
    check_nonneg("adagrad", "lr", lr)
    check_nonneg("adagrad", "weight_decay", weight_decay)
    parts = [add_l2(weight_decay)] if _is_on(weight_decay) else []
    core = scale_by_adagrad(eps, initial_accumulator_value, lr_decay)
    return chain(*parts, core, scale_by_lr(lr))


def rmsprop(
    lr: Hyper = 1e-2,
    alpha: Hyper = 0.99,
    eps: Hyper = 1e-8,
    weight_decay: Hyper = 0.0,
    momentum: Hyper = 0.0,
    centered: bool = False,
) -> Transform:
    """torch.optim.RMSprop (Hinton 2012; Graves 2013 for ``centered``):
    ``chain(add_l2?, scale_by_rms(alpha, eps, centered), trace(momentum)?, scale_by_lr)``."""
    check_nonneg("rmsprop", "lr", lr)
    check_nonneg("rmsprop", "weight_decay", weight_decay)
    check_beta("rmsprop", "momentum", momentum)
    parts = [add_l2(weight_decay)] if _is_on(weight_decay) else []
    parts.append(scale_by_rms(alpha, eps, centered))
    parts += [trace(momentum)] if _is_on(momentum) else []
    return chain(*parts, scale_by_lr(lr))


def adadelta(
    lr: Hyper = 1.0, rho: Hyper = 0.9, eps: Hyper = 1e-6, weight_decay: Hyper = 0.0
) -> Transform:
    """torch.optim.Adadelta (Zeiler 2012): ``chain(add_l2?, scale_by_adadelta, scale_by_lr)``."""
    check_nonneg("adadelta", "lr", lr)
    check_nonneg("adadelta", "weight_decay", weight_decay)
    parts = [add_l2(weight_decay)] if _is_on(weight_decay) else []
    return chain(*parts, scale_by_adadelta(rho, eps), scale_by_lr(lr))


# ---------------------------------------------------------------- lookup by name

ALIASES: dict[str, Callable[..., Transform]] = {
    "sgd": sgd,
    "adagrad": adagrad,
    "rmsprop": rmsprop,
    "adadelta": adadelta,
    "adam": adam,
    "adamw": adamw,
    "nadam": nadam,
}


def get_optimizer(name: str, **kwargs: Any) -> Transform:
    """Build the alias ``name`` (case-insensitive) with ``kwargs``; unknown names fail in one line
    naming the closest valid name."""
    key = name.lower()
    if key not in ALIASES:
        raise closest_name_error("optimizer", name, ALIASES)
    return checked_call("optimizer", key, ALIASES[key], kwargs)
