"""Monotone learning-rate decays: each factory returns ``step -> lr`` with ``step`` 0-indexed.

Step ``t`` is the learning rate used for the ``(t + 1)``-th optimizer update, i.e. the value
torch's schedulers hold in ``param_groups[i]["lr"]`` after ``t`` calls to ``scheduler.step()``.
Where torch has a counterpart, the formula is torch's closed form (``_get_closed_form_lr``).
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Sequence

from trainlab.schedules._types import Schedule
from trainlab.schedules._validate import (
    check_int,
    check_nonneg,
    check_positive,
    check_step,
    check_strictly_increasing,
)

__all__ = [
    "constant",
    "cosine",
    "exponential",
    "inverse_sqrt",
    "inverse_time",
    "linear",
    "linear_to_floor",
    "multistep",
    "polynomial",
    "step_decay",
]


def constant(lr: float) -> Schedule:
    """``lr_t = lr`` for every step."""
    lr = check_nonneg("constant", "lr", lr)

    def schedule(step: int) -> float:
        check_step(step)
        return lr

    return schedule


def step_decay(lr: float, step_size: int, gamma: float = 0.1) -> Schedule:
    """Step decay ``lr_t = lr * gamma ** (t // step_size)`` (torch ``StepLR``).

    The seed 000 slide "step decay: e.g. decay learning rate by half every few epochs" is
    ``gamma=0.5``.
    """
    lr = check_nonneg("step_decay", "lr", lr)
    step_size = check_int("step_decay", "step_size", step_size, minimum=1)
    gamma = check_positive("step_decay", "gamma", gamma)

    def schedule(step: int) -> float:
        check_step(step)
        return lr * gamma ** (step // step_size)

    return schedule


def multistep(lr: float, milestones: Sequence[int], gamma: float = 0.1) -> Schedule:
    """Multi-step decay ``lr_t = lr * gamma ** #{m in milestones : m <= t}`` (``MultiStepLR``).

    ``milestones`` must be strictly increasing; the rate drops *at* each milestone step.
    """
    lr = check_nonneg("multistep", "lr", lr)
    marks = check_strictly_increasing("multistep", "milestones", milestones, minimum=1)
    gamma = check_positive("multistep", "gamma", gamma)

    def schedule(step: int) -> float:
        check_step(step)
        return lr * gamma ** bisect_right(marks, step)

    return schedule


def exponential(lr: float, *, gamma: float | None = None, k: float | None = None) -> Schedule:
    """Exponential decay in either of the seeds' two forms; give exactly one of ``gamma``, ``k``.

    * ``gamma=c``: ``lr_t = lr * c ** t`` (seed 001 "alpha_initial * c^t"; torch ``ExponentialLR``).
    * ``k``: ``lr_t = lr * exp(-k t)`` (seed 000 "alpha = alpha_0 e^{-kt}").

    The forms agree for ``c = exp(-k)``. ``gamma > 1`` (or ``k < 0``) grows the rate, as an LR
    range test does.
    """
    lr = check_nonneg("exponential", "lr", lr)
    if (gamma is None) == (k is None):
        raise ValueError(f"exponential: give exactly one of gamma or k, got gamma={gamma}, k={k}")
    if gamma is not None:
        c = check_positive("exponential", "gamma", gamma)

        def by_factor(step: int) -> float:
            check_step(step)
            return lr * c**step

        return by_factor
    if not isinstance(k, int | float) or not math.isfinite(k):
        raise ValueError(f"exponential: k must be a finite number, got {k!r}")
    rate = float(k)

    def by_rate(step: int) -> float:
        check_step(step)
        return lr * math.exp(-rate * step)

    return by_rate


def _stairs(owner: str, staircase: int) -> int:
    """A staircase width checked: 0 (smooth) or the steps per stair (e.g. per epoch)."""
    return check_int(owner, "staircase", staircase, minimum=0)


def inverse_time(lr: float, k: float, staircase: int = 0) -> Schedule:
    """1/t decay ``lr_t = lr / (1 + k t)`` (seed 000 "1/t decay: alpha = alpha_0 / (1 + kt)").

    Seed 001's ``alpha_initial / t`` (t counted from 1) is ``k = 1`` up to the shift of the origin.
    ``staircase = s > 0`` counts t in whole stairs of s steps, ``t = step // s`` (per epoch when s
    is the steps per epoch, as the slides' per-epoch decay).
    """
    lr = check_nonneg("inverse_time", "lr", lr)
    k = check_nonneg("inverse_time", "k", k)
    stairs = _stairs("inverse_time", staircase)

    def schedule(step: int) -> float:
        check_step(step)
        t = step // stairs if stairs else step
        return lr / (1.0 + k * t)

    return schedule


def inverse_sqrt(lr: float, warmup_steps: int = 0, staircase: int = 0) -> Schedule:
    """Inverse square-root decay with optional linear warm-up, peaking at ``lr``.

    With ``n = t + 1`` and ``w = max(warmup_steps, 1)``:
    ``lr_t = lr * min(n / w, sqrt(w / n))``. Without warm-up this is ``lr / sqrt(t + 1)``, seed
    001's "inverse-square decay alpha_initial / sqrt(t)" with t counted from 1; with warm-up it is
    the Transformer rule (Vaswani et al. 2017, sec. 5.3) normalised so the peak, reached at step
    ``w - 1``, equals ``lr``. ``staircase = s > 0`` counts in whole stairs, ``n = step // s + 1``
    (``warmup_steps`` then counts stairs too).
    """
    lr = check_nonneg("inverse_sqrt", "lr", lr)
    w = max(check_int("inverse_sqrt", "warmup_steps", warmup_steps, minimum=0), 1)
    stairs = _stairs("inverse_sqrt", staircase)

    def schedule(step: int) -> float:
        check_step(step)
        n = (step // stairs if stairs else step) + 1
        return lr * min(n / w, math.sqrt(w / n))

    return schedule


def polynomial(lr: float, total_steps: int, power: float = 1.0, end_lr: float = 0.0) -> Schedule:
    """Polynomial decay ``lr_t = (lr - end_lr) * (1 - min(t, T) / T) ** power + end_lr``.

    ``T = total_steps``; the rate stays at ``end_lr`` from step ``T`` on. With ``end_lr = 0`` this
    is torch ``PolynomialLR(total_iters=T, power=power)``; with ``end_lr`` it is optax's
    ``polynomial_schedule`` (seed 001: "learning rate is multiplied by some polynomial of t").
    """
    lr = check_nonneg("polynomial", "lr", lr)
    total = check_int("polynomial", "total_steps", total_steps, minimum=1)
    power = check_positive("polynomial", "power", power)
    end_lr = check_nonneg("polynomial", "end_lr", end_lr)

    def schedule(step: int) -> float:
        check_step(step)
        return (lr - end_lr) * (1.0 - min(total, step) / total) ** power + end_lr

    return schedule


def linear(
    lr: float, start_factor: float = 1.0 / 3, end_factor: float = 1.0, total_steps: int = 5
) -> Schedule:
    """Linear change of a multiplier (torch ``LinearLR``; same defaults).

    ``lr_t = lr * (s + (e - s) * min(t, T) / T)`` with ``s = start_factor``, ``e = end_factor``,
    ``T = total_steps``. Unlike torch, factors above 1 are allowed.
    """
    lr = check_nonneg("linear", "lr", lr)
    s = check_nonneg("linear", "start_factor", start_factor)
    e = check_nonneg("linear", "end_factor", end_factor)
    total = check_int("linear", "total_steps", total_steps, minimum=1)

    def schedule(step: int) -> float:
        check_step(step)
        return lr * (s + (e - s) * min(total, step) / total)

    return schedule


def linear_to_floor(lr: float, floor_lr: float, tau: int) -> Schedule:
    """Linear decay to a floor at step tau, then constant (Goodfellow et al. 2016, sec. 8.3.1).

    Seed 004, eq. (6): ``eps_k = (1 - a) eps_0 + a eps_tau`` with ``a = k / tau`` for ``k <= tau``
    and ``eps_k = eps_tau`` after; the seed's example is ``eps_0 = 0.01, eps_tau = 0.001,
    tau = 500``. ``floor_lr`` may exceed ``lr`` (a linear ramp), though that is not its use.
    """
    lr = check_nonneg("linear_to_floor", "lr", lr)
    floor_lr = check_nonneg("linear_to_floor", "floor_lr", floor_lr)
    tau = check_int("linear_to_floor", "tau", tau, minimum=1)

    def schedule(step: int) -> float:
        check_step(step)
        if step >= tau:
            return floor_lr
        a = step / tau
        return (1.0 - a) * lr + a * floor_lr

    return schedule


def cosine(lr: float, total_steps: int, eta_min: float = 0.0, periodic: bool = False) -> Schedule:
    """Cosine annealing ``lr_t = eta_min + (lr - eta_min) * (1 + cos(pi t / T)) / 2``.

    Loshchilov & Hutter 2017 (SGDR), eq. (5) without restarts; the closed form of torch
    ``CosineAnnealingLR(T_max=T, eta_min=eta_min)``. After step ``T`` the rate stays at
    ``eta_min``; ``periodic=True`` keeps evaluating the formula instead, so the rate climbs back
    to ``lr`` at ``2T`` as torch's does (use ``sgdr`` for restarts that jump back).
    """
    lr = check_nonneg("cosine", "lr", lr)
    total = check_int("cosine", "total_steps", total_steps, minimum=1)
    eta_min = check_nonneg("cosine", "eta_min", eta_min)

    def schedule(step: int) -> float:
        check_step(step)
        if step >= total and not periodic:
            return eta_min
        return eta_min + (lr - eta_min) * (1 + math.cos(math.pi * step / total)) / 2

    return schedule
