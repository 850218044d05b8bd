"""Perturbation policies for `trainlab.optim.sharpness.SAM`: where the second gradient is taken.

A policy is three functions and a flag (like `Transform`, over flat lists of tensors)::

    state = policy.init(params)
    offsets, pending = policy.perturb(grads, state, params, lr)  # grads = g = grad L(w)
    # offsets: the displacement e to add to w before the second gradient evaluation,
    #          or None: no second evaluation this step, the base step descends with g itself
    state = policy.record(descent_grads, pending)  # once per completed step

``perturb`` never changes ``state`` (a skipped step -- e.g. an inf under GradScaler -- keeps the
old state); ``record`` sees the gradient the base step used and advances the step count.
``lr`` is the learning rate of the base optimizer's first param group (or None if it has none).
``sync_first`` says whether the first pass's gradients must be all-reduced under DDP (True when
the policy may descend with them, so that every rank takes the same decision and step).

Policies: `sam_policy` (Foret et al. 2021), `asam_policy` (Kwon et al. 2021), `eg_sam_policy`,
`og_sam_policy`, `ao_sam_policy` (Yu, Zhang & Kwok, ICML 2024, "Improving Sharpness-Aware
Minimization by Lookahead", seed 000) and the gate `adaptive_policy` (Jiang et al. 2023, AE-SAM).
Hyperparameters may be floats or schedules of the 0-indexed step (counted by ``record``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor

from trainlab.names import checked_call, closest_name_error
from trainlab.optim.clip import global_norm
from trainlab.optim.transform import (
    CountState,
    Hyper,
    Params,
    State,
    Updates,
    check_beta,
    check_nonneg,
    value_at,
    zero_count,
)

Offsets = list[Tensor] | None


class SamPolicy(NamedTuple):
    """A SAM perturbation policy (see the module docstring for the contract)."""

    init: Callable[[Params], State]
    perturb: Callable[[Updates, State, Params, float | None], tuple[Offsets, State]]
    record: Callable[[Updates, State], State]
    sync_first: bool = False


class OgState(NamedTuple):
    """State of `og_sam_policy`: step count and the gradient of the previous step's descent."""

    count: Tensor  # int64 scalar, completed steps
    prev: list[Tensor]  # grad L(w~_{t-1}); meaningless while count == 0


class AdaptiveState(NamedTuple):
    """State of `adaptive_policy`: EMA statistics of ||g||^2 and the inner policy's state."""

    count: Tensor  # int64 scalar, completed steps
    mean: Tensor  # float64 scalar, mu: EMA of ||g||^2
    var: Tensor  # float64 scalar, sigma^2: EMA of the squared deviation
    applied: Tensor  # int64 scalar, steps on which the inner (two-pass) policy ran
    last: Tensor  # bool scalar, whether the inner policy ran on the latest step
    inner: State


# ---------------------------------------------------------------- helpers


def _count_init(params: Params) -> CountState:
    return CountState(zero_count())


def _count_record(grads: Updates, state: CountState) -> CountState:
    return CountState(state.count + 1)


def _inv_norm(xs: Sequence[Tensor]) -> float:
    """``1/||xs||`` over all tensors together, and 0 when the norm is 0 (no perturbation)."""
    n = float(global_norm(list(xs)))
    return 1.0 / n if n > 0.0 else 0.0


def _eta(owner: str, eta: Hyper | None, count: Tensor, lr: float | None) -> float:
    """The extrapolation step: ``eta`` at this step, or the base's learning rate if None."""
    if eta is not None:
        return value_at(eta, count)
    if lr is None:
        raise ValueError(
            f"{owner}: eta=None uses the base optimizer's lr, but its param group 0 has no "
            "'lr'; pass eta >= 0"
        )
    return float(lr)


# ---------------------------------------------------------------- SAM and ASAM


def sam_policy(rho: Hyper = 0.05) -> SamPolicy:
    """SAM (Foret, Kleiner, Mobahi & Neyshabur, ICLR 2021), first-order inner maximisation.

    Implements, with ``g = grad L(w)``::

        e = rho * g / ||g||_2              (||.|| over all parameters together; e = 0 if g = 0)
        w <- base_step(w, grad L(w + e))

    ``rho`` = 0.05 is the paper's default for CIFAR with SGD.
    """
    check_nonneg("sam_policy", "rho", rho)

    def perturb(grads: Updates, state: CountState, params: Params, lr: float | None):
        c = value_at(rho, state.count) * _inv_norm(grads)
        return torch._foreach_mul(grads, c), state

    return SamPolicy(_count_init, perturb, _count_record)


def asam_policy(
    rho: Hyper = 0.5, eta: Hyper = 0.01, mask: Sequence[bool] | None = None
) -> SamPolicy:
    """Adaptive SAM (Kwon, Kim, Park & Choi, ICML 2021, eq. 9 with the elementwise operator).

    Implements, with ``g = grad L(w)`` and ``T_w = |w| + eta`` elementwise::

        e = rho * T_w^2 g / ||T_w g||_2
        w <- base_step(w, grad L(w + e))

    ``rho`` = 0.5 and ``eta`` = 0.01 are the paper's CIFAR settings with SGD. ``mask`` (aligned
    with the parameters) chooses which tensors get ``T_w``; the others use ``T_w = 1`` (plain SAM
    scaling). The paper's equations scale every weight (``mask=None``); its public code scales
    only parameters whose name contains "weight", i.e. ``mask=[("weight" in n) for n, _ in
    model.named_parameters()]``.
    """
    check_nonneg("asam_policy", "rho", rho)
    check_nonneg("asam_policy", "eta", eta)
    flags = None if mask is None else [bool(m) for m in mask]

    def perturb(grads: Updates, state: CountState, params: Params, lr: float | None):
        if flags is not None and len(flags) != len(params):
            raise ValueError(f"asam_policy: mask has {len(flags)} entries for {len(params)} params")
        e = value_at(eta, state.count)
        t = [
            p.abs() + e if flags is None or flags[i] else torch.ones_like(p)
            for i, p in enumerate(params)
        ]
        tg = torch._foreach_mul(t, grads)
        c = value_at(rho, state.count) * _inv_norm(tg)
        out = torch._foreach_mul(tg, t)
        torch._foreach_mul_(out, c)
        return out, state

    return SamPolicy(_count_init, perturb, _count_record)


# ---------------------------------------------------------------- lookahead SAM (Yu et al. 2024)


def eg_sam_policy(rho: Hyper = 0.05, eta: Hyper | None = None) -> SamPolicy:
    """EG-SAM, extra-gradient SAM (Yu, Zhang & Kwok, ICML 2024), as far as the public record shows.

    Extrapolates by ``-eta*g`` and perturbs by ``rho*g/||g||`` with the same ``g = grad L(w)``::

        w~ = w + (rho / ||g|| - eta) * g          (rho/||g|| taken as 0 when g = 0)
        w <- base_step(w, grad L(w~))             (two gradient evaluations per step)

    Open choices (the paper publishes no code): ``eta`` is the extrapolation step; the paper ties
    it to the learning rate ``eta_t``, so ``eta=None`` (default) takes the base optimizer's
    current ``param_groups[0]["lr"]`` at every step (it follows torch LR schedulers; with a
    schedule built into the transform that is the rate of the *previous* step, so pass ``eta``
    explicitly then). A float or schedule gives a fixed extrapolation step instead.
    """
    check_nonneg("eg_sam_policy", "rho", rho)
    if eta is not None:
        check_nonneg("eg_sam_policy", "eta", eta)

    def perturb(grads: Updates, state: CountState, params: Params, lr: float | None):
        step = _eta("eg_sam_policy", eta, state.count, lr)
        c = value_at(rho, state.count) * _inv_norm(grads) - step
        return torch._foreach_mul(grads, c), state

    return SamPolicy(_count_init, perturb, _count_record)


def og_sam_policy(rho: Hyper = 0.05, eta: Hyper | None = None) -> SamPolicy:
    """OG-SAM, optimistic-gradient SAM (Yu, Zhang & Kwok, ICML 2024), as far as the record shows.

    As `eg_sam_policy`, but the extrapolation uses the gradient of the previous step's descent,
    ``g^_{t-1} = grad L(w~_{t-1})`` (kept in `OgState.prev`, so it survives ``state_dict``)::

        w~_t = w_t + rho * g_t / ||g_t|| - eta * g^_{t-1}     (g_t = grad L(w_t))
        g^_t = grad L(w~_t);   w_{t+1} = base_step(w_t, g^_t)

    Open choices: at step 0 there is no ``g^_{-1}``; we use ``g_0`` (so step 0 is an EG-SAM
    step). ``eta=None`` takes the base's current lr, as in `eg_sam_policy`. Under
    `adaptive_policy` (AO-SAM) a step without the second pass records the gradient it descended
    with, ``g_t``, as ``g^_t``.
    """
    check_nonneg("og_sam_policy", "rho", rho)
    if eta is not None:
        check_nonneg("og_sam_policy", "eta", eta)

    def init(params: Params) -> OgState:
        return OgState(zero_count(), [torch.zeros_like(p) for p in params])

    def perturb(grads: Updates, state: OgState, params: Params, lr: float | None):
        step = _eta("og_sam_policy", eta, state.count, lr)
        lookahead = grads if int(state.count) == 0 else state.prev
        out = torch._foreach_mul(grads, value_at(rho, state.count) * _inv_norm(grads))
        torch._foreach_add_(out, lookahead, alpha=-step)
        return out, state

    def record(grads: Updates, state: OgState) -> OgState:
        with torch.no_grad():
            torch._foreach_copy_(state.prev, list(grads))
        return OgState(state.count + 1, state.prev)

    return SamPolicy(init, perturb, record)


# ---------------------------------------------------------------- the adaptive gate


def adaptive_policy(inner: SamPolicy, c: Hyper = 0.0, decay: float = 0.9) -> SamPolicy:
    """Run ``inner`` only where ``||g||^2`` is large (AE-SAM's rule; Jiang, Yang, Zhang & Kwok,
    ICLR 2023, "An Adaptive Policy to Employ Sharpness-Aware Minimization").

    With ``x_t = ||g_t||^2`` over all parameters and EMA statistics of the *past* values::

        step 0:   run inner;                    mu = x_0,  sigma^2 = 0
        step t:   run inner iff x_t > mu + c_t * sigma      (else one pass: base step with g_t)
                  mu <- decay*mu + (1-decay)*x_t;  sigma^2 <- decay*sigma^2 + (1-decay)*(x_t-mu)^2

    (the variance update uses the new ``mu``, as AE-SAM does). Open choices: AE-SAM compares
    ``x_t`` with statistics that already include ``x_t``; we compare with the past values only.
    Step 0 always runs the inner policy and seeds ``mu`` with ``x_0``. ``decay`` = 0.9 is
    AE-SAM's delta; ``c`` (a float or a schedule, e.g. AE-SAM's linear ramp ``c_t``) defaults to
    0 (run the two-pass step when ``||g||^2`` is above its running mean). Steps whose inner
    policy did not run still ``record`` the gradient they descended with in the inner state.
    """
    check_beta("adaptive_policy", "decay", decay)

    def init(params: Params) -> AdaptiveState:
        f64 = torch.float64
        return AdaptiveState(
            zero_count(),
            torch.zeros((), dtype=f64),
            torch.zeros((), dtype=f64),
            zero_count(),
            torch.zeros((), dtype=torch.bool),
            inner.init(params),
        )

    def perturb(grads: Updates, state: AdaptiveState, params: Params, lr: float | None):
        x = float(global_norm(list(grads))) ** 2
        if int(state.count) == 0:
            run, mean, var = True, x, 0.0
        else:
            mean0, var0 = float(state.mean), float(state.var)
            run = x > mean0 + value_at(c, state.count) * var0**0.5
            mean = decay * mean0 + (1.0 - decay) * x
            var = decay * var0 + (1.0 - decay) * (x - mean) ** 2
        offsets, inner_state = (
            inner.perturb(grads, state.inner, params, lr) if run else (None, state.inner)
        )
        pending = AdaptiveState(
            state.count,
            torch.tensor(mean, dtype=torch.float64),
            torch.tensor(var, dtype=torch.float64),
            state.applied + int(run),
            torch.tensor(run),
            inner_state,
        )
        return offsets, pending

    def record(grads: Updates, state: AdaptiveState) -> AdaptiveState:
        return state._replace(count=state.count + 1, inner=inner.record(grads, state.inner))

    return SamPolicy(init, perturb, record, sync_first=True)


def ao_sam_policy(
    rho: Hyper = 0.05, eta: Hyper | None = None, c: Hyper = 0.0, decay: float = 0.9
) -> SamPolicy:
    """AO-SAM (Yu, Zhang & Kwok, ICML 2024): OG-SAM gated by AE-SAM's rule,
    ``adaptive_policy(og_sam_policy(rho, eta), c, decay)``; see both for the equations and the
    open choices. Steps the gate skips cost one gradient evaluation (the closure runs once)."""
    return adaptive_policy(og_sam_policy(rho, eta), c, decay)


# ---------------------------------------------------------------- by name

POLICIES: dict[str, Callable[..., SamPolicy]] = {
    "sam": sam_policy,
    "asam": asam_policy,
    "eg-sam": eg_sam_policy,
    "og-sam": og_sam_policy,
    "ao-sam": ao_sam_policy,
}


def get_policy(name: str, **kwargs: Any) -> SamPolicy:
    """A policy by name (``"sam"``, ``"asam"``, ``"eg-sam"``, ``"og-sam"``, ``"ao-sam"``)."""
    if not isinstance(name, str) or name not in POLICIES:
        raise closest_name_error("SAM policy", name, POLICIES)
    return checked_call("SAM policy", name, POLICIES[name], kwargs)
