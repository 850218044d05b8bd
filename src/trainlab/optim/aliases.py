"""Named optimizers with torch.optim's names, defaults and semantics, as chains of primitives.

Each alias is a chain (e.g. ``adamw = chain(scale_by_adam, add_decayed_weights, scale_by_lr)``).
With the ``"fast"`` backend, `sgd`, `adam` and `adamw` replace the chain's update by one fused
foreach pass over the *same state* (so checkpoints are interchangeable); it is tested equal to
the composed chain and to torch.optim. torch's ``weight_decay`` in SGD, Adagrad, RMSprop,
Adadelta, Adam and NAdam is coupled L2 (``add_l2`` before the scaling); AdamW's is decoupled
(``-lr*wd*theta``).

Each alias publishes its constant hyperparameters under torch's param-group keys
(``Transform.hyperparams``: ``momentum``, ``betas``, ``weight_decay``, ...) as `Knob` s the update
reads at step time, so `trainlab.optim.Optimizer` exposes them in ``param_groups`` and every
torch LR scheduler (``OneCycleLR`` cycling momentum or beta1 included) drives them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

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
from trainlab.optim.momentum import TraceState, trace
from trainlab.optim.transform import (
    Hyper,
    Knob,
    Knobs,
    Links,
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
    zero_count,
)


def _is_on(h: Hyper) -> bool:
    """A hyperparameter that may be nonzero (a schedule always counts as on)."""
    return callable(h) or float(h) != 0.0


def _live(h: Hyper, on: bool = True) -> tuple[Hyper, Knob | None]:
    """``(hyperparameter for the math, knob to publish)``. A constant becomes a `Knob` that the
    adapter sets from its param group; the math reads it only if its part is ``on`` (built in),
    else the knob just shows the value and may not change. A schedule stays itself, unpublished
    (the schedule rules)."""
    if callable(h):
        return h, None
    knob = Knob(float(h), settable=on)
    return (knob if on else h), knob


def _published(**knobs: Knob | tuple[Knob | None, ...] | None) -> Knobs:
    """The knobs by torch param-group key, as tuples; keys with a scheduled part are left out."""
    out: Knobs = {}
    for key, k in knobs.items():
        parts = k if isinstance(k, tuple) else (k,)
        if all(isinstance(p, Knob) for p in parts):
            out[key] = parts  # type: ignore[assignment]
    return out


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
    momentum, k_mom = _live(momentum, has_mom)
    dampening, k_damp = _live(dampening, has_mom and not nesterov)
    weight_decay, k_wd = _live(weight_decay, has_wd)
    knobs = _published(momentum=k_mom, dampening=k_damp, weight_decay=k_wd)
    links = Links(
        l2=add_l2(weight_decay) if has_wd else None,
        trace=trace(momentum, dampening, nesterov) if has_mom else None,
        lr=scale_by_lr(lr),
    )
    if current_backend() == "reference":
        return links.chain._replace(hyperparams=knobs)
    cache = fused.PlanCache()
    use_compiled = current_backend() == "compiled"

    def step(targets: list[Tensor], grads: Updates, state: State, params: Params) -> State:
        l2 = _advance_weight(links, state, "l2", weight_decay)
        lr_state = links.state(state, "lr")
        a = lr_value(lr, lr_state)
        tr = links.state(state, "trace") if has_mom else TraceState(zero_count(), [])
        count = int(tr.count)
        fused.sgd_kernel(
            cache.get(params, [tr.trace] if has_mom else []), targets, grads, params, tr.trace,
            lr=a, l2=l2, momentum=value_at(momentum, count),
            dampening=value_at(dampening, count), nesterov=nesterov, first=count == 0,
            compiled=use_compiled,
        )  # fmt: skip
        tr.count.add_(1)
        lr_advance(lr, lr_state, a, inplace=True)
        return state

    return fused.fast_transform(links.chain.init, step)._replace(hyperparams=knobs)


def _advance_weight(links: Links, state: State, name: str, weight: Hyper) -> float:
    """The weight of link ``name`` (an `add_l2` / `add_decayed_weights`) at this step, 0 if the
    chain has no such link; advances that link's count as its own update would."""
    if name not in links:
        return 0.0
    count = links.state(state, name).count
    w = value_at(weight, count)
    count.add_(1)
    return w


# ---------------------------------------------------------------- Adam family


def _fast_adam(links: Links, lr: Hyper, betas: tuple[Hyper, Hyper], eps: Hyper, l2: Hyper,
               decoupled: Hyper, amsgrad: bool, bias_correction: bool) -> Transform:  # fmt: skip
    """The fast path of ``chain(add_l2?, scale_by_adam, add_decayed_weights?, scale_by_lr)``: one
    in-place bucketed pass (`fused.adam_kernel`) over the *same state* as the chain."""
    cache = fused.PlanCache()
    use_compiled = current_backend() == "compiled"

    def step(targets: list[Tensor], grads: Updates, state: State, params: Params) -> State:
        l2_t = _advance_weight(links, state, "l2", l2)
        s: AdamState = links.state(state, "adam")
        count = int(s.count)
        a, b, e = (value_at(h, count) for h in (*betas, eps))
        c1, c2 = bias_corrections(a, b, count + 1, bias_correction)
        lr_state = links.state(state, "lr")
        lr_t = lr_value(lr, lr_state)
        wd = _advance_weight(links, state, "decay", decoupled)
        lists = [s.mu, s.nu, s.nu_max] if amsgrad else [s.mu, s.nu]
        fused.adam_kernel(
            cache.get(params, lists), targets, grads, params, s.mu, s.nu, s.nu_max,
            b1=a, b2=b, eps=e, c1=c1, c2=c2, lr=lr_t, l2=l2_t, wd=wd, compiled=use_compiled,
        )  # fmt: skip
        s.count.add_(1)
        lr_advance(lr, lr_state, lr_t, inplace=True)
        return state

    return fused.fast_transform(links.chain.init, step)


def adam(
    lr: Hyper = 1e-3,
    betas: tuple[Hyper, Hyper] = (0.9, 0.999),
    eps: Hyper = 1e-8,
    weight_decay: Hyper = 0.0,
    amsgrad: bool = False,
    bias_correction: bool = True,
) -> Transform:
    """torch.optim.Adam (Kingma & Ba 2015; amsgrad: Reddi et al. 2018); weight_decay is L2:
    ``chain(add_l2(wd)?, scale_by_adam(betas, eps, amsgrad), scale_by_lr(lr))``."""
    return _adam_alias("adam", lr, betas, eps, weight_decay, amsgrad, bias_correction, False)


def adamw(
    lr: Hyper = 1e-3,
    betas: tuple[Hyper, Hyper] = (0.9, 0.999),
    eps: Hyper = 1e-8,
    weight_decay: Hyper = 1e-2,
    amsgrad: bool = False,
    bias_correction: bool = True,
) -> Transform:
    """torch.optim.AdamW, decoupled weight decay (Loshchilov & Hutter 2019; seed 000 "AdamW"):
    ``chain(scale_by_adam(betas, eps, amsgrad), add_decayed_weights(wd), scale_by_lr(lr))``."""
    return _adam_alias("adamw", lr, betas, eps, weight_decay, amsgrad, bias_correction, True)


def _adam_alias(owner: str, lr: Hyper, betas: tuple[Hyper, Hyper], eps: Hyper,
                weight_decay: Hyper, amsgrad: bool, bias_correction: bool,
                decoupled: bool) -> Transform:  # fmt: skip
    """`adam` (coupled L2, only when nonzero) or `adamw` (decoupled decay, always a link).
    ``bias_correction=False`` is the slides' "incomplete" Adam (no ``1 - b^t`` factors)."""
    check_nonneg(owner, "lr", lr)
    _check_betas(owner, betas)
    check_nonneg(owner, "weight_decay", weight_decay)
    has_wd = _is_on(weight_decay)
    (b1, k1), (b2, k2), (eps, k_eps) = _live(betas[0]), _live(betas[1]), _live(eps)
    weight_decay, k_wd = _live(weight_decay, has_wd)
    knobs = _published(betas=(k1, k2), eps=k_eps, weight_decay=k_wd)
    links = Links(
        l2=add_l2(weight_decay) if has_wd and not decoupled else None,
        adam=scale_by_adam(b1, b2, eps, amsgrad=amsgrad, bias_correction=bias_correction),
        decay=add_decayed_weights(weight_decay) if decoupled else None,
        lr=scale_by_lr(lr),
    )
    if current_backend() == "reference":
        return links.chain._replace(hyperparams=knobs)
    l2, wd = (0.0, weight_decay) if decoupled else (weight_decay, 0.0)
    fast = _fast_adam(links, lr, (b1, b2), eps, l2, wd, amsgrad, bias_correction)
    return fast._replace(hyperparams=knobs)


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
    has_wd = _is_on(weight_decay)
    (b1, k1), (b2, k2), (eps, k_eps) = _live(betas[0]), _live(betas[1]), _live(eps)
    momentum_decay, k_psi = _live(momentum_decay)
    weight_decay, k_wd = _live(weight_decay, has_wd)
    knobs = _published(betas=(k1, k2), eps=k_eps, weight_decay=k_wd, momentum_decay=k_psi)
    core = scale_by_nadam(b1, b2, eps, momentum_decay)
    if not has_wd:
        return chain(core, scale_by_lr(lr))._replace(hyperparams=knobs)
    if decoupled_weight_decay:
        composed = chain(core, add_decayed_weights(weight_decay), scale_by_lr(lr))
    else:
        composed = chain(add_l2(weight_decay), core, scale_by_lr(lr))
    return composed._replace(hyperparams=knobs)


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
    has_wd = _is_on(weight_decay)
    (lr_decay, k_decay), (eps, k_eps) = _live(lr_decay), _live(eps)
    weight_decay, k_wd = _live(weight_decay, has_wd)
    knobs = _published(lr_decay=k_decay, eps=k_eps, weight_decay=k_wd)
    parts = [add_l2(weight_decay)] if has_wd else []
    core = scale_by_adagrad(eps, initial_accumulator_value, lr_decay)
    return chain(*parts, core, scale_by_lr(lr))._replace(hyperparams=knobs)


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
    has_wd, has_mom = _is_on(weight_decay), _is_on(momentum)
    (alpha, k_alpha), (eps, k_eps) = _live(alpha), _live(eps)
    weight_decay, k_wd = _live(weight_decay, has_wd)
    momentum, k_mom = _live(momentum, has_mom)
    knobs = _published(alpha=k_alpha, eps=k_eps, weight_decay=k_wd, momentum=k_mom)
    parts = [add_l2(weight_decay)] if has_wd else []
    parts.append(scale_by_rms(alpha, eps, centered))
    parts += [trace(momentum)] if has_mom else []
    return chain(*parts, scale_by_lr(lr))._replace(hyperparams=knobs)


def adadelta(
    lr: Hyper = 1.0, rho: Hyper = 0.9, eps: Hyper = 1e-6, weight_decay: Hyper = 0.0
) -> Transform:
    """torch.optim.Adadelta (Zeiler 2012): ``chain(add_l2?, scale_by_adadelta, scale_by_lr)``."""
    check_nonneg("adadelta", "lr", lr)
    check_nonneg("adadelta", "weight_decay", weight_decay)
    has_wd = _is_on(weight_decay)
    (rho, k_rho), (eps, k_eps) = _live(rho), _live(eps)
    weight_decay, k_wd = _live(weight_decay, has_wd)
    knobs = _published(rho=k_rho, eps=k_eps, weight_decay=k_wd)
    parts = [add_l2(weight_decay)] if has_wd else []
    return chain(*parts, scale_by_adadelta(rho, eps), scale_by_lr(lr))._replace(hyperparams=knobs)


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
