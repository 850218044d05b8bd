"""Schedules that rise again: SGDR warm restarts, cyclical rates, and the one-cycle policy.

All are closed forms of the 0-indexed step; each matches torch's scheduler of the same policy
operation for operation, so their values agree to the last bit or within a few ulps.
"""

from __future__ import annotations

import math
from typing import Literal

from trainlab.schedules._types import Schedule
from trainlab.schedules._validate import (
    check_fraction,
    check_int,
    check_nonneg,
    check_positive,
    check_step,
)

__all__ = ["cyclic", "one_cycle", "one_cycle_momentum", "sgdr"]

CyclicMode = Literal["triangular", "triangular2", "exp_range"]
Anneal = Literal["cos", "linear"]


def _restart_position(step: int, t_0: int, t_mult: int) -> tuple[int, int, int]:
    """Return ``(cycle index, steps since last restart, current cycle length)``.

    Integer arithmetic, as torch's ``CosineAnnealingWarmRestarts.step()`` does; cycles grow
    geometrically for ``t_mult > 1`` so the loop runs O(log step) times.
    """
    if t_mult == 1:
        return step // t_0, step % t_0, t_0
    cycle, t_cur, t_i = 0, step, t_0
    while t_cur >= t_i:
        t_cur -= t_i
        t_i *= t_mult
        cycle += 1
    return cycle, t_cur, t_i


def sgdr(
    lr: float, t_0: int, t_mult: int = 1, eta_min: float = 0.0, cycle_decay: float = 1.0
) -> Schedule:
    """Cosine annealing with warm restarts (Loshchilov & Hutter 2017, SGDR, eq. 5).

    ``lr_t = eta_min + (lr_i - eta_min) * (1 + cos(pi T_cur / T_i)) / 2`` where ``T_cur`` counts
    steps since the last restart, the first cycle lasts ``T_0 = t_0`` steps and each next one
    ``t_mult`` times longer. In cycle ``i`` the peak is
    ``lr_i = eta_min + (lr - eta_min) * cycle_decay ** i`` (the seed 003 figure "exponential decay
    with restarts"); ``cycle_decay=1`` is torch ``CosineAnnealingWarmRestarts``.
    """
    lr = check_nonneg("sgdr", "lr", lr)
    t_0 = check_int("sgdr", "t_0", t_0, minimum=1)
    t_mult = check_int("sgdr", "t_mult", t_mult, minimum=1)
    eta_min = check_nonneg("sgdr", "eta_min", eta_min)
    cycle_decay = check_fraction("sgdr", "cycle_decay", cycle_decay, closed_low=False)

    def schedule(step: int) -> float:
        check_step(step)
        cycle, t_cur, t_i = _restart_position(step, t_0, t_mult)
        # Decay the amplitude above eta_min, so the rate never leaves [eta_min, lr].
        peak = eta_min + (lr - eta_min) * cycle_decay**cycle if cycle_decay != 1.0 else lr
        return eta_min + (peak - eta_min) * (1 + math.cos(math.pi * t_cur / t_i)) / 2

    return schedule


def cyclic(
    base_lr: float,
    max_lr: float,
    step_size_up: int = 2000,
    step_size_down: int | None = None,
    mode: CyclicMode = "triangular",
    gamma: float = 1.0,
) -> Schedule:
    """Cyclical learning rates (Smith 2017, WACV; torch ``CyclicLR`` with the same arguments).

    With ``L = up + down``, ``cycle = floor(1 + t / L)``, ``x = 1 + t / L - cycle`` and the
    triangle ``h = x / r`` for ``x <= r = up / L`` else ``(x - 1) / (r - 1)``:
    ``lr_t = base_lr + (max_lr - base_lr) * h * s`` where the amplitude scale ``s`` is 1
    (``triangular``), ``1 / 2 ** (cycle - 1)`` (``triangular2``: halved every cycle) or
    ``gamma ** t`` (``exp_range``). The rate stays in ``[base_lr, max_lr]``.
    """
    base_lr = check_nonneg("cyclic", "base_lr", base_lr)
    max_lr = check_nonneg("cyclic", "max_lr", max_lr)
    if max_lr < base_lr:
        raise ValueError(f"cyclic: max_lr must be >= base_lr={base_lr}, got {max_lr}")
    check_int("cyclic", "step_size_up", step_size_up, minimum=1)
    if step_size_down is not None:
        check_int("cyclic", "step_size_down", step_size_down, minimum=1)
    up = float(step_size_up)
    down = up if step_size_down is None else float(step_size_down)
    if mode not in ("triangular", "triangular2", "exp_range"):
        raise ValueError(
            f"cyclic: mode must be one of 'triangular', 'triangular2', 'exp_range', got {mode!r}"
        )
    gamma = check_fraction("cyclic", "gamma", gamma, closed_low=False)
    total = up + down
    ratio = up / total

    def schedule(step: int) -> float:
        check_step(step)
        cycle = math.floor(1 + step / total)
        x = 1.0 + step / total - cycle
        height = (max_lr - base_lr) * (x / ratio if x <= ratio else (x - 1) / (ratio - 1))
        if mode == "triangular":
            return base_lr + height * 1.0
        if mode == "triangular2":
            return base_lr + height * 0.5 ** (
                cycle - 1
            )  # = 1 / 2 ** (cycle - 1), exact, no overflow
        return base_lr + height * gamma**step

    return schedule


def _cos_anneal(start: float, end: float, pct: float) -> float:
    return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)


def _linear_anneal(start: float, end: float, pct: float) -> float:
    return (end - start) * pct + start


def _check_one_cycle(total_steps: int, pct_start: float, anneal: str, three_phase: bool) -> None:
    check_int("one_cycle", "total_steps", total_steps, minimum=2)
    check_fraction("one_cycle", "pct_start", pct_start)
    if anneal not in ("cos", "linear"):
        raise ValueError(f"one_cycle: anneal_strategy must be 'cos' or 'linear', got {anneal!r}")
    if not 1 < pct_start * total_steps < total_steps:
        raise ValueError(
            "one_cycle: pct_start * total_steps must lie in (1, total_steps) so every phase "
            f"has a step, got {pct_start} * {total_steps}"
        )
    if three_phase and not 2 * pct_start * total_steps < total_steps + 1:
        raise ValueError(
            f"one_cycle: pct_start must be < (total_steps + 1) / (2 * total_steps) with "
            f"three_phase, got {pct_start}"
        )


def _phased(knots: list[tuple[float, float, float]], total_steps: int, anneal: Anneal) -> Schedule:
    """Anneal through ``(end_step, start_value, end_value)`` phases as torch ``OneCycleLR`` does."""
    interpolate = _cos_anneal if anneal == "cos" else _linear_anneal

    def schedule(step: int) -> float:
        check_step(step)
        step = min(step, total_steps - 1)
        start_step = 0.0
        for i, (end_step, start, end) in enumerate(knots):
            if step <= end_step or i == len(knots) - 1:
                return interpolate(start, end, (step - start_step) / (end_step - start_step))
            start_step = end_step
        raise AssertionError("unreachable: the last phase always matches")

    return schedule


def _phase_ends(total_steps: int, pct_start: float, three_phase: bool) -> list[float]:
    # torch OneCycleLR: the rise ends at step pct*T - 1, the mirrored fall at 2*pct*T - 2.
    rise = float(pct_start * total_steps) - 1
    if three_phase:
        return [rise, float(2 * pct_start * total_steps) - 2, float(total_steps - 1)]
    return [rise, float(total_steps - 1)]


def one_cycle(
    max_lr: float,
    total_steps: int,
    pct_start: float = 0.3,
    anneal_strategy: Anneal = "cos",
    div_factor: float = 25.0,
    final_div_factor: float = 1e4,
    three_phase: bool = False,
) -> Schedule:
    """The 1cycle policy (Smith & Topin 2019, "Super-Convergence"; torch ``OneCycleLR``).

    The rate rises from ``initial = max_lr / div_factor`` to ``max_lr`` by step
    ``pct_start * T - 1``, then anneals (cosine or linear) to ``initial / final_div_factor`` at
    step ``T - 1``. ``three_phase`` falls back to ``initial`` by step ``2 * pct_start * T - 2``
    first, then anneals to the minimum, as in the paper. From step ``T - 1`` on the rate stays
    at its final value (torch raises past step ``T``).
    """
    _check_one_cycle(total_steps, pct_start, anneal_strategy, three_phase)
    max_lr = check_nonneg("one_cycle", "max_lr", max_lr)
    div_factor = check_positive("one_cycle", "div_factor", div_factor)
    final_div_factor = check_positive("one_cycle", "final_div_factor", final_div_factor)
    initial = max_lr / div_factor
    minimum = initial / final_div_factor
    ends = _phase_ends(total_steps, pct_start, three_phase)
    if three_phase:
        values = [(initial, max_lr), (max_lr, initial), (initial, minimum)]
    else:
        values = [(initial, max_lr), (max_lr, minimum)]
    knots = [(end, a, b) for end, (a, b) in zip(ends, values, strict=True)]
    return _phased(knots, total_steps, anneal_strategy)


def one_cycle_momentum(
    total_steps: int,
    pct_start: float = 0.3,
    anneal_strategy: Anneal = "cos",
    base_momentum: float = 0.85,
    max_momentum: float = 0.95,
    three_phase: bool = False,
) -> Schedule:
    """The momentum (or Adam beta1) that 1cycle cycles inversely to the rate (torch ``OneCycleLR``).

    Falls from ``max_momentum`` to ``base_momentum`` while the rate rises, then climbs back;
    pass it as the momentum hyperparameter of a ``trainlab.optim`` transform.
    """
    _check_one_cycle(total_steps, pct_start, anneal_strategy, three_phase)
    lo = check_fraction("one_cycle_momentum", "base_momentum", base_momentum)
    hi = check_fraction("one_cycle_momentum", "max_momentum", max_momentum)
    ends = _phase_ends(total_steps, pct_start, three_phase)
    values = [(hi, lo), (lo, hi), (hi, hi)] if three_phase else [(hi, lo), (lo, hi)]
    knots = [(end, a, b) for end, (a, b) in zip(ends, values, strict=True)]
    return _phased(knots, total_steps, anneal_strategy)
