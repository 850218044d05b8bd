"""Per-coordinate adaptive scalings: AdaGrad, RMS (RMSProp), Adadelta, Adam, NAdam.

Each returns the *direction* (no learning rate, no sign flip); chain with `scale_by_lr`.
Where epsilon sits differs between the seeds: torch.optim and CS231n (seed 000) put it outside
the root, ``g / (sqrt(v) + eps)``; Goodfellow et al. (seed 001) put it inside,
``g / sqrt(v + eps)``. The factories take ``eps`` (outside) and ``eps_root`` (inside), as optax.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

from trainlab.optim import fused
from trainlab.optim.elementwise import adam_direction, adam_moments
from trainlab.optim.transform import (
    Hyper,
    Params,
    Transform,
    Updates,
    check_beta,
    check_nonneg,
    current_backend,
    pick,
    value_at,
    zero_count,
)

# ---------------------------------------------------------------- AdaGrad


class AdagradState(NamedTuple):
    """State of `scale_by_adagrad`: step count and the running sum of squared gradients."""

    count: Tensor
    sum_sq: list[Tensor]


def scale_by_adagrad(
    eps: Hyper = 1e-10,
    initial_accumulator_value: float = 0.0,
    lr_decay: Hyper = 0.0,
    eps_root: Hyper = 0.0,
) -> Transform:
    """AdaGrad (Duchi et al. 2011; seed 000 "AdaGrad update", seed 003 eq. 6)::

        r += g^2;   out = g / (sqrt(r + eps_root) + eps) / (1 + t * lr_decay),  t = 0, 1, ...

    ``lr_decay`` is torch.optim.Adagrad's inverse-time decay of the rate.
    """
    for name, h in (("eps", eps), ("initial_accumulator_value", initial_accumulator_value)):
        check_nonneg("scale_by_adagrad", name, h)
    check_nonneg("scale_by_adagrad", "lr_decay", lr_decay)
    check_nonneg("scale_by_adagrad", "eps_root", eps_root)

    def init(params: Params) -> AdagradState:
        acc = [torch.full_like(p, initial_accumulator_value) for p in params]
        return AdagradState(zero_count(), acc)

    def hyper(count: Tensor) -> tuple[float, float, float]:
        decay = 1.0 / (1.0 + int(count) * value_at(lr_decay, count))
        return value_at(eps, count), value_at(eps_root, count), decay

    def ref(grads: Updates, state: AdagradState, params: Params) -> tuple[Updates, AdagradState]:
        e, er, decay = hyper(state.count)
        sums = [r + g * g for g, r in zip(grads, state.sum_sq, strict=True)]
        out = [g / ((r + er).sqrt() + e) * decay for g, r in zip(grads, sums, strict=True)]
        return out, AdagradState(state.count + 1, sums)

    def fast(grads: Updates, state: AdagradState, params: Params) -> tuple[Updates, AdagradState]:
        e, er, decay = hyper(state.count)
        torch._foreach_addcmul_(state.sum_sq, grads, grads)
        denom = torch._foreach_add(state.sum_sq, er) if er else list(state.sum_sq)
        denom = torch._foreach_sqrt(denom)
        torch._foreach_add_(denom, e)
        out = torch._foreach_div(grads, denom)
        if decay != 1.0:
            torch._foreach_mul_(out, decay)
        state.count.add_(1)
        return out, state

    return Transform(init, pick(ref, fast))


# ---------------------------------------------------------------- RMSProp


class RmsState(NamedTuple):
    """State of `scale_by_rms`: count, EMA of g^2, EMA of g (zeros unless centered)."""

    count: Tensor
    sq_avg: list[Tensor]
    grad_avg: list[Tensor]


def scale_by_rms(
    alpha: Hyper = 0.99, eps: Hyper = 1e-8, centered: bool = False, eps_root: Hyper = 0.0
) -> Transform:
    """RMSProp (Hinton 2012; seed 000 "RMSProp", seed 001 "RMSProp (2012)")::

        v = alpha*v + (1-alpha)*g^2;  (centered: m = alpha*m + (1-alpha)*g, v~ = v - m^2)
        out = g / (sqrt(v~ + eps_root) + eps)

    As torch.optim.RMSprop (no bias correction); momentum is ``chain(scale_by_rms, trace)``.
    """
    check_beta("scale_by_rms", "alpha", alpha)
    check_nonneg("scale_by_rms", "eps", eps)
    check_nonneg("scale_by_rms", "eps_root", eps_root)

    def init(params: Params) -> RmsState:
        zeros = [torch.zeros_like(p) for p in params]
        avgs = [torch.zeros_like(p) for p in params] if centered else []
        return RmsState(zero_count(), zeros, avgs)

    def ref(grads: Updates, state: RmsState, params: Params) -> tuple[Updates, RmsState]:
        a, e, er = (value_at(h, state.count) for h in (alpha, eps, eps_root))
        sq = [v * a + g * g * (1 - a) for g, v in zip(grads, state.sq_avg, strict=True)]
        avg = (
            [m * a + g * (1 - a) for g, m in zip(grads, state.grad_avg, strict=True)]
            if centered
            else []
        )
        var = [v - m * m for v, m in zip(sq, avg, strict=True)] if centered else sq
        out = [g / ((v + er).sqrt() + e) for g, v in zip(grads, var, strict=True)]
        return out, RmsState(state.count + 1, sq, avg)

    def fast(grads: Updates, state: RmsState, params: Params) -> tuple[Updates, RmsState]:
        a, e, er = (value_at(h, state.count) for h in (alpha, eps, eps_root))
        torch._foreach_mul_(state.sq_avg, a)
        torch._foreach_addcmul_(state.sq_avg, grads, grads, value=1 - a)
        if centered:
            torch._foreach_lerp_(state.grad_avg, grads, 1 - a)
            denom = torch._foreach_addcmul(state.sq_avg, state.grad_avg, state.grad_avg, value=-1)
        else:
            denom = list(state.sq_avg)
        if er:
            denom = torch._foreach_add(denom, er)
        denom = torch._foreach_sqrt(denom)
        torch._foreach_add_(denom, e)
        state.count.add_(1)
        return torch._foreach_div(grads, denom), state

    return Transform(init, pick(ref, fast))


# ---------------------------------------------------------------- Adadelta


class AdadeltaState(NamedTuple):
    """State of `scale_by_adadelta`: count, EMA of g^2, EMA of squared updates."""

    count: Tensor
    sq_avg: list[Tensor]
    acc_delta: list[Tensor]


def scale_by_adadelta(rho: Hyper = 0.9, eps: Hyper = 1e-6) -> Transform:
    """Adadelta (Zeiler 2012; seed 003 eq. 8)::

    v = rho*v + (1-rho)*g^2;   d = sqrt(u + eps) / sqrt(v + eps) * g;
    u = rho*u + (1-rho)*d^2;   out = d
    """
    check_beta("scale_by_adadelta", "rho", rho)
    check_nonneg("scale_by_adadelta", "eps", eps)

    def init(params: Params) -> AdadeltaState:
        return AdadeltaState(
            zero_count(),
            [torch.zeros_like(p) for p in params],
            [torch.zeros_like(p) for p in params],
        )

    def ref(grads: Updates, state: AdadeltaState, params: Params) -> tuple[Updates, AdadeltaState]:
        r, e = value_at(rho, state.count), value_at(eps, state.count)
        sq = [v * r + g * g * (1 - r) for g, v in zip(grads, state.sq_avg, strict=True)]
        out = [
            (u + e).sqrt() / (v + e).sqrt() * g
            for g, v, u in zip(grads, sq, state.acc_delta, strict=True)
        ]
        acc = [u * r + d * d * (1 - r) for d, u in zip(out, state.acc_delta, strict=True)]
        return out, AdadeltaState(state.count + 1, sq, acc)

    def fast(grads: Updates, state: AdadeltaState, params: Params) -> tuple[Updates, AdadeltaState]:
        r, e = value_at(rho, state.count), value_at(eps, state.count)
        torch._foreach_mul_(state.sq_avg, r)
        torch._foreach_addcmul_(state.sq_avg, grads, grads, value=1 - r)
        std = torch._foreach_sqrt(torch._foreach_add(state.sq_avg, e))
        out = torch._foreach_sqrt(torch._foreach_add(state.acc_delta, e))
        torch._foreach_div_(out, std)
        torch._foreach_mul_(out, grads)
        torch._foreach_mul_(state.acc_delta, r)
        torch._foreach_addcmul_(state.acc_delta, out, out, value=1 - r)
        state.count.add_(1)
        return out, state

    return Transform(init, pick(ref, fast))


# ---------------------------------------------------------------- Adam


class AdamState(NamedTuple):
    """State of `scale_by_adam`: count, first and second moments, max second moment (amsgrad)."""

    count: Tensor
    mu: list[Tensor]
    nu: list[Tensor]
    nu_max: list[Tensor]  # empty unless amsgrad


def check_adam_args(owner: str, b1: Hyper, b2: Hyper, eps: Hyper, eps_root: Hyper) -> None:
    """Validate Adam-family hyperparameters, one line per failure."""
    check_beta(owner, "b1", b1)
    check_beta(owner, "b2", b2)
    check_nonneg(owner, "eps", eps)
    check_nonneg(owner, "eps_root", eps_root)


def bias_corrections(b1: float, b2: float, t: int, on: bool) -> tuple[float, float]:
    """``(1 - b1^t, sqrt(1 - b2^t))`` for 1-indexed step t, or ``(1, 1)`` when off."""
    if not on:
        return 1.0, 1.0
    return 1.0 - b1**t, math.sqrt(1.0 - b2**t)


def scale_by_adam(
    b1: Hyper = 0.9,
    b2: Hyper = 0.999,
    eps: Hyper = 1e-8,
    eps_root: Hyper = 0.0,
    amsgrad: bool = False,
    bias_correction: bool = True,
) -> Transform:
    """Adam (Kingma & Ba 2015; seed 000 "Adam (full form)", seed 001 "Adam (2014)")::

        m = b1*m + (1-b1)*g;  v = b2*v + (1-b2)*g^2;  (amsgrad: v^ = max(v^, v), Reddi et al. 2018)
        out = (m / (1-b1^t)) / (sqrt(v / (1-b2^t) + eps_root) + eps),   t = 1, 2, ...

    ``bias_correction=False`` drops the two ``1 - b^t`` factors (seed 000's "incomplete" Adam).
    The seed's ``alpha_t = alpha*sqrt(1-b2^t)/(1-b1^t)`` form equals this with eps rescaled by
    ``sqrt(1-b2^t)`` (tested). The reference is `adam_moments` + `adam_direction` per tensor;
    the fast path is the bucketed in-place kernel the `adam` alias uses (`fused.adam_kernel`),
    or the reference when ``eps_root`` is nonzero.
    """
    check_adam_args("scale_by_adam", b1, b2, eps, eps_root)

    def init(params: Params) -> AdamState:
        zeros = [[torch.zeros_like(p) for p in params] for _ in range(3 if amsgrad else 2)]
        return AdamState(zero_count(), zeros[0], zeros[1], zeros[2] if amsgrad else [])

    def hyper(count: Tensor) -> tuple[float, ...]:
        a, b, e, er = (value_at(h, count) for h in (b1, b2, eps, eps_root))
        c1, c2 = bias_corrections(a, b, int(count) + 1, bias_correction)
        return a, b, e, er, c1, c2

    def ref(grads: Updates, state: AdamState, params: Params) -> tuple[Updates, AdamState]:
        a, b, e, er, c1, c2 = hyper(state.count)
        moments = [
            adam_moments(g, m, v, a, b) for g, m, v in zip(grads, state.mu, state.nu, strict=True)
        ]
        mu, nu = [m for m, _ in moments], [v for _, v in moments]
        nu_max = (
            [torch.maximum(x, v) for x, v in zip(state.nu_max, nu, strict=True)] if amsgrad else []
        )
        second = nu_max if amsgrad else nu
        out = [adam_direction(m, v, c1, c2, e, er) for m, v in zip(mu, second, strict=True)]
        return out, AdamState(state.count + 1, mu, nu, nu_max)

    if current_backend() == "reference" or callable(eps_root) or float(eps_root) != 0.0:
        return Transform(init, ref)
    cache = fused.PlanCache()

    def step(targets: list[Tensor], grads: Updates, state: AdamState, params: Params) -> AdamState:
        a, b, e, _, c1, c2 = hyper(state.count)
        lists = [state.mu, state.nu, state.nu_max] if amsgrad else [state.mu, state.nu]
        fused.adam_kernel(
            cache.get(params, lists), targets, grads, params, state.mu, state.nu, state.nu_max,
            b1=a, b2=b, eps=e, c1=c1, c2=c2, lr=-1.0,
        )  # fmt: skip
        state.count.add_(1)
        return state

    return fused.fast_transform(init, step)


# ---------------------------------------------------------------- NAdam


class NadamState(NamedTuple):
    """State of `scale_by_nadam`: count, product of the momentum schedule, moments."""

    count: Tensor
    mu_product: Tensor  # float64 scalar, prod_{i<=t} mu_i
    mu: list[Tensor]
    nu: list[Tensor]


def nadam_mu(b1: float, t: int, momentum_decay: float) -> float:
    """Dozat's momentum schedule ``mu_t = b1 * (1 - 0.5 * 0.96^(t * psi))`` (t 1-indexed)."""
    return b1 * (1.0 - 0.5 * 0.96 ** (t * momentum_decay))


def scale_by_nadam(
    b1: Hyper = 0.9, b2: Hyper = 0.999, eps: Hyper = 1e-8, momentum_decay: Hyper = 4e-3
) -> Transform:
    """NAdam: Adam with Nesterov momentum (Dozat 2016; seed 003 "NADAM"), as torch.optim.NAdam::

    m = b1*m + (1-b1)*g;  v = b2*v + (1-b2)*g^2;  d = sqrt(v/(1-b2^t)) + eps
    out = (1-mu_t)/(1-P_t) * g/d + mu_{t+1}/(1-P_t*mu_{t+1}) * m/d,  P_t = prod_{i<=t} mu_i
    """
    check_adam_args("scale_by_nadam", b1, b2, eps, 0.0)
    check_nonneg("scale_by_nadam", "momentum_decay", momentum_decay)

    def init(params: Params) -> NadamState:
        one = torch.ones((), dtype=torch.float64)
        zeros = [[torch.zeros_like(p) for p in params] for _ in range(2)]
        return NadamState(zero_count(), one, zeros[0], zeros[1])

    def hyper(state: NadamState) -> tuple[float, ...]:
        a, b, e, psi = (value_at(h, state.count) for h in (b1, b2, eps, momentum_decay))
        t = int(state.count) + 1
        mu_t, mu_next = nadam_mu(a, t, psi), nadam_mu(a, t + 1, psi)
        prod = float(state.mu_product) * mu_t
        c_g = (1.0 - mu_t) / (1.0 - prod)
        c_m = mu_next / (1.0 - prod * mu_next)
        return a, b, e, math.sqrt(1.0 - b**t), c_g, c_m, mu_t

    def ref(grads: Updates, state: NadamState, params: Params) -> tuple[Updates, NadamState]:
        a, b, e, c2, c_g, c_m, mu_t = hyper(state)
        mu = [m * a + g * (1 - a) for g, m in zip(grads, state.mu, strict=True)]
        nu = [v * b + g * g * (1 - b) for g, v in zip(grads, state.nu, strict=True)]
        out = [
            (g * c_g + m * c_m) / ((v / c2**2).sqrt() + e)
            for g, m, v in zip(grads, mu, nu, strict=True)
        ]
        return out, NadamState(state.count + 1, state.mu_product * mu_t, mu, nu)

    def fast(grads: Updates, state: NadamState, params: Params) -> tuple[Updates, NadamState]:
        a, b, e, c2, c_g, c_m, mu_t = hyper(state)
        torch._foreach_lerp_(state.mu, grads, 1 - a)
        torch._foreach_mul_(state.nu, b)
        torch._foreach_addcmul_(state.nu, grads, grads, value=1 - b)
        denom = torch._foreach_sqrt(state.nu)
        torch._foreach_div_(denom, c2)
        torch._foreach_add_(denom, e)
        num = torch._foreach_mul(grads, c_g)
        torch._foreach_add_(num, state.mu, alpha=c_m)
        torch._foreach_div_(num, denom)
        state.count.add_(1)
        state.mu_product.mul_(mu_t)
        return num, state

    return Transform(init, pick(ref, fast))
