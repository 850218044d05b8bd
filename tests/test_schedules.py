"""Schedules against torch.optim.lr_scheduler, hand-computed values, and hypothesis properties.

Torch comparisons drive each torch scheduler with a dummy SGD optimizer and read
``param_groups[0]["lr"]`` after each ``step()``; our step ``t`` is the value after ``t`` steps.
For StepLR, MultiStepLR, ExponentialLR, LinearLR, PolynomialLR and CosineAnnealingLR torch's
``step()`` is *recursive* (``lr_t = lr_{t-1} * ratio``), so its value carries ``t`` rounding
errors; we compare to torch's closed form (``_get_closed_form_lr``) at 1e-12 relative and to the
recursive value at 1e-9 (measured error: about 5e-15 over 600 steps). CyclicLR, OneCycleLR and
CosineAnnealingWarmRestarts compute closed forms in ``step()``, compared at 1e-12.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.optim import lr_scheduler as tls

import trainlab.schedules as S

CLOSED = 1e-12
RECURSIVE = 1e-9
STEPS = 600


def run_torch(
    make: Callable[[torch.optim.Optimizer], tls.LRScheduler], steps: int, lr: float = 0.1
) -> tuple[list[float], list[float], list[float]]:
    """(lr after t steps, torch's closed form at t if it has one, momentum after t steps)."""
    param = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))
    opt = torch.optim.SGD([param], lr=lr, momentum=0.9)
    sched = make(opt)
    lrs, closed, momenta = [], [], []
    for t in range(steps):
        if t:
            opt.step()
            sched.step()
        lrs.append(opt.param_groups[0]["lr"])
        momenta.append(opt.param_groups[0]["momentum"])
        if hasattr(sched, "_get_closed_form_lr"):
            closed.append(sched._get_closed_form_lr()[0])
    return lrs, closed, momenta


def assert_close(ours: list[float], theirs: list[float], rtol: float) -> None:
    assert len(ours) == len(theirs)
    for t, (a, b) in enumerate(zip(ours, theirs, strict=True)):
        assert math.isclose(a, b, rel_tol=rtol, abs_tol=0.0), f"step {t}: {a!r} vs torch {b!r}"


def values(schedule: S.Schedule, steps: int = STEPS) -> list[float]:
    return [schedule(t) for t in range(steps)]


RECURSIVE_CASES = {
    "StepLR": (lambda o: tls.StepLR(o, step_size=7, gamma=0.5), S.step_decay(0.1, 7, 0.5)),
    "MultiStepLR": (
        lambda o: tls.MultiStepLR(o, milestones=[10, 50, 200], gamma=0.3),
        S.multistep(0.1, [10, 50, 200], 0.3),
    ),
    "ExponentialLR": (
        lambda o: tls.ExponentialLR(o, gamma=0.99),
        S.exponential(0.1, gamma=0.99),
    ),
    "CosineAnnealingLR": (
        lambda o: tls.CosineAnnealingLR(o, T_max=150, eta_min=0.001),
        S.cosine(0.1, 150, eta_min=0.001, periodic=True),
    ),
    "CosineAnnealingLR-eta0": (
        lambda o: tls.CosineAnnealingLR(o, T_max=250),
        S.cosine(0.1, 250, periodic=True),
    ),
    "PolynomialLR": (
        lambda o: tls.PolynomialLR(o, total_iters=400, power=2.0),
        S.polynomial(0.1, 400, power=2.0),
    ),
    "PolynomialLR-sqrt": (
        lambda o: tls.PolynomialLR(o, total_iters=300, power=0.5),
        S.polynomial(0.1, 300, power=0.5),
    ),
    "LinearLR": (
        lambda o: tls.LinearLR(o, start_factor=0.1, end_factor=0.9, total_iters=300),
        S.linear(0.1, 0.1, 0.9, 300),
    ),
    "LinearLR-decay": (
        lambda o: tls.LinearLR(o, start_factor=1.0, end_factor=0.05, total_iters=450),
        S.linear(0.1, 1.0, 0.05, 450),
    ),
}


@pytest.mark.parametrize("name", sorted(RECURSIVE_CASES))
def test_matches_torch_recursive_schedulers(name: str) -> None:
    make, ours = RECURSIVE_CASES[name]
    lrs, closed, _ = run_torch(make, STEPS)
    assert_close(values(ours), closed, CLOSED)
    assert_close(values(ours), lrs, RECURSIVE)


@pytest.mark.parametrize(("t_0", "t_mult", "eta_min"), [(10, 1, 0.0), (10, 2, 0.001), (7, 3, 0.01)])
def test_sgdr_matches_cosine_annealing_warm_restarts(t_0: int, t_mult: int, eta_min: float) -> None:
    lrs, _, _ = run_torch(lambda o: tls.CosineAnnealingWarmRestarts(o, t_0, t_mult, eta_min), STEPS)
    assert_close(values(S.sgdr(0.1, t_0, t_mult, eta_min)), lrs, CLOSED)


@pytest.mark.parametrize("mode", ["triangular", "triangular2", "exp_range"])
@pytest.mark.parametrize(("up", "down"), [(50, None), (30, 70)])
def test_cyclic_matches_cyclic_lr(mode: str, up: int, down: int | None) -> None:
    def make(o: torch.optim.Optimizer) -> tls.LRScheduler:
        return tls.CyclicLR(o, 0.001, 0.1, up, down, mode=mode, gamma=0.995, cycle_momentum=False)

    lrs, _, _ = run_torch(make, STEPS)
    assert_close(values(S.cyclic(0.001, 0.1, up, down, mode=mode, gamma=0.995)), lrs, CLOSED)


@pytest.mark.parametrize("anneal", ["cos", "linear"])
@pytest.mark.parametrize("three_phase", [False, True])
@pytest.mark.parametrize(("total", "pct"), [(500, 0.3), (333, 0.25)])
def test_one_cycle_matches_one_cycle_lr(
    anneal: str, three_phase: bool, total: int, pct: float
) -> None:
    def make(o: torch.optim.Optimizer) -> tls.LRScheduler:
        return tls.OneCycleLR(
            o, max_lr=0.4, total_steps=total, pct_start=pct, anneal_strategy=anneal,
            div_factor=20.0, final_div_factor=300.0, three_phase=three_phase,
        )  # fmt: skip

    lrs, _, momenta = run_torch(make, total)
    ours = S.one_cycle(0.4, total, pct, anneal, 20.0, 300.0, three_phase)
    assert_close(values(ours, total), lrs, CLOSED)
    momentum = S.one_cycle_momentum(total, pct, anneal, 0.85, 0.95, three_phase)
    assert_close(values(momentum, total), momenta, CLOSED)
    assert ours(total + 100) == ours(total - 1)


# Hand-computed values for schedules torch lacks.


def test_exponential_rate_form_by_hand() -> None:
    halving = S.exponential(1.0, k=math.log(2.0))
    assert [halving(t) for t in range(4)] == pytest.approx([1.0, 0.5, 0.25, 0.125], rel=1e-15)
    assert S.exponential(0.1, k=0.1)(10) == pytest.approx(0.1 / math.e, rel=1e-15)
    by_rate, by_factor = S.exponential(0.3, k=0.02), S.exponential(0.3, gamma=math.exp(-0.02))
    assert values(by_rate, 300) == pytest.approx(values(by_factor, 300), rel=1e-12)


def test_inverse_time_by_hand() -> None:
    sched = S.inverse_time(0.1, k=0.5)
    assert [sched(0), sched(2), sched(6), sched(18)] == pytest.approx([0.1, 0.05, 0.025, 0.01])


def test_inverse_sqrt_by_hand() -> None:
    plain = S.inverse_sqrt(1.0)
    assert [plain(0), plain(3), plain(8), plain(99)] == pytest.approx([1.0, 0.5, 1 / 3, 0.1])
    warm = S.inverse_sqrt(2.0, warmup_steps=4)
    expected = [0.5, 1.0, 1.5, 2.0, 2.0 * math.sqrt(4 / 5), 2.0 * 0.5]
    assert [warm(t) for t in (0, 1, 2, 3, 4, 15)] == pytest.approx(expected, rel=1e-15)
    assert values(S.inverse_sqrt(1.0, warmup_steps=1), 50) == values(plain, 50)


def test_linear_to_floor_seed_004_example() -> None:
    # Seed 004: eps_0 = 0.01, eps_tau = 0.001, tau = 500; constant after tau.
    sched = S.linear_to_floor(0.01, 0.001, 500)
    got = [sched(t) for t in (0, 100, 250, 499, 500, 10_000)]
    want = [0.01, 0.0082, 0.0055, 0.01 - 0.009 * 499 / 500, 0.001, 0.001]
    assert got == pytest.approx(want, rel=1e-14)


def test_polynomial_end_lr_and_cosine_hold_by_hand() -> None:
    poly = S.polynomial(1.0, 10, power=2.0, end_lr=0.2)
    assert [poly(0), poly(5), poly(10), poly(50)] == pytest.approx([1.0, 0.4, 0.2, 0.2])
    cos = S.cosine(1.0, 100, eta_min=0.1)
    assert [cos(0), cos(50), cos(100), cos(150)] == pytest.approx([1.0, 0.55, 0.1, 0.1])


def test_sgdr_by_hand_with_cycle_decay() -> None:
    sched = S.sgdr(1.0, t_0=2, t_mult=2, cycle_decay=0.5)  # cycles [0,2), [2,6), [6,14)
    got = [sched(t) for t in (0, 1, 2, 3, 4, 6, 14)]
    want = [1.0, 0.5, 0.5, 0.25 * (1 + math.cos(math.pi / 4)), 0.25, 0.25, 0.125]
    assert got == pytest.approx(want, rel=1e-15)


def test_join_by_hand_restarts_each_part() -> None:
    parts = [S.constant(1.0), S.linear_to_floor(1.0, 0.0, 10), S.constant(0.5)]
    sched = S.join(parts, [5, 15])
    got = [sched(t) for t in (0, 4, 5, 10, 14, 15, 100)]
    assert got == pytest.approx([1.0, 1.0, 1.0, 0.5, 0.1, 0.5, 0.5], rel=1e-15)
    assert S.join([S.constant(0.3)], [])(7) == 0.3


def test_warmup_by_hand() -> None:
    shifted = S.warmup(S.cosine(1.0, 10), warmup_steps=4, start_lr=0.2)
    assert [shifted(t) for t in (0, 2, 4, 9, 14)] == pytest.approx([0.2, 0.6, 1.0, 0.5, 0.0])
    fixed = S.warmup(S.constant(0.8), warmup_steps=4, shift=False)
    assert [fixed(t) for t in range(6)] == pytest.approx([0.0, 0.2, 0.4, 0.6, 0.8, 0.8])
    base = S.cosine(1.0, 10)
    assert S.warmup(base, 0) is base


def test_as_schedule() -> None:
    assert S.as_schedule(0.25)(1000) == 0.25
    sched = S.cosine(1.0, 10)
    assert S.as_schedule(sched) is sched


# Hypothesis properties.

lrs = st.floats(1e-6, 10.0)
fracs = st.floats(0.0, 1.0)
steps = st.integers(0, 20_000)
lengths = st.integers(1, 2_000)


def _between(value: float, low: float, high: float) -> bool:
    slack = 1e-12 * max(abs(low), abs(high))
    return low - slack <= value <= high + slack


@given(
    lr=lrs,
    size=lengths,
    gamma=st.floats(1e-3, 1.0),
    marks=st.sets(st.integers(1, 20_000), min_size=1, max_size=8),
    t=steps,
)
def test_step_decays_bounds(lr: float, size: int, gamma: float, marks: set[int], t: int) -> None:
    assert _between(S.step_decay(lr, size, gamma)(t), 0.0, lr)
    assert _between(S.multistep(lr, sorted(marks), gamma)(t), lr * gamma ** len(marks), lr)


@given(lr=lrs, k=st.floats(0.0, 10.0), t=steps)
def test_inverse_decays_bounds(lr: float, k: float, t: int) -> None:
    assert _between(S.inverse_time(lr, k)(t), 0.0, lr)
    assert _between(S.exponential(lr, k=k)(t), 0.0, lr)


@given(lr=lrs, w=st.integers(0, 5_000), t=steps)
def test_inverse_sqrt_bounds(lr: float, w: int, t: int) -> None:
    value = S.inverse_sqrt(lr, w)(t)
    assert 0.0 < value <= lr * (1 + 1e-15)


@given(lr=lrs, frac=fracs, total=lengths, power=st.floats(0.1, 5.0), t=steps)
def test_polynomial_cosine_floor_bounds(
    lr: float, frac: float, total: int, power: float, t: int
) -> None:
    low = lr * frac
    assert _between(S.polynomial(lr, total, power, low)(t), low, lr)
    assert _between(S.cosine(lr, total, low)(t), low, lr)
    assert _between(S.cosine(lr, total, low, periodic=True)(t), low, lr)
    assert _between(S.linear_to_floor(lr, low, total)(t), low, lr)
    assert _between(S.sgdr(lr, total, 2, low, cycle_decay=0.7)(t), low, lr)


@given(lr=lrs, a=fracs, b=fracs, total=lengths, t=steps)
def test_linear_bounds(lr: float, a: float, b: float, total: int, t: int) -> None:
    assert _between(S.linear(lr, a, b, total)(t), lr * min(a, b), lr * max(a, b))


@given(
    low=lrs,
    span=st.floats(0.0, 10.0),
    up=lengths,
    down=lengths,
    mode=st.sampled_from(["triangular", "triangular2", "exp_range"]),
    gamma=st.floats(0.9, 1.0),
    t=steps,
)
def test_cyclic_bounds(
    low: float, span: float, up: int, down: int, mode: str, gamma: float, t: int
) -> None:
    high = low + span
    assert _between(S.cyclic(low, high, up, down, mode, gamma)(t), low, high)  # type: ignore[arg-type]


@given(
    max_lr=lrs,
    total=st.integers(10, 5_000),
    pct=st.floats(0.15, 0.45),
    anneal=st.sampled_from(["cos", "linear"]),
    three=st.booleans(),
    t=steps,
)
def test_one_cycle_bounds(
    max_lr: float, total: int, pct: float, anneal: str, three: bool, t: int
) -> None:
    sched = S.one_cycle(max_lr, total, pct, anneal, 25.0, 1e4, three)  # type: ignore[arg-type]
    assert _between(sched(t), max_lr / 25.0 / 1e4, max_lr)


@given(lr=lrs, floor=fracs, tau=lengths, total=lengths, boundary=st.integers(1, 3_000))
def test_join_continuous_where_parts_meet(
    lr: float, floor: float, tau: int, total: int, boundary: int
) -> None:
    first = S.linear_to_floor(lr, lr * floor, tau)
    second = S.cosine(first(boundary), total)  # starts where `first` would have continued
    joined = S.join([first, second], [boundary])
    assert joined(boundary) == first(boundary)
    assert joined(boundary - 1) == first(boundary - 1)
    assert joined(boundary + 3) == second(3)


@given(lr=lrs, total=lengths, w=st.integers(1, 1_000), start=fracs, shift=st.booleans())
def test_warmup_reaches_wrapped_value(
    lr: float, total: int, w: int, start: float, shift: bool
) -> None:
    inner = S.cosine(lr, total)
    sched = S.warmup(inner, w, start_lr=start * lr, shift=shift)
    target = inner(0) if shift else inner(w)
    assert sched(w) == target
    ramp = [sched(t) for t in range(w + 1)]
    lo, hi = min(start * lr, target), max(start * lr, target)
    assert all(_between(v, lo, hi) for v in ramp)
    increasing = target >= start * lr
    pairs = zip(ramp, ramp[1:], strict=False)
    assert all((b >= a) if increasing else (b <= a) for a, b in pairs)


# ReduceLROnPlateau.


@settings(max_examples=150, deadline=None)
@given(
    metrics=st.lists(st.sampled_from([1.0, 0.99, 0.9, 0.8995, 0.5, 0.3, 2.0]), max_size=40),
    patience=st.integers(0, 3),
    cooldown=st.integers(0, 3),
    threshold=st.sampled_from([0.0, 1e-3, 0.1]),
    threshold_mode=st.sampled_from(["rel", "abs"]),
    mode=st.sampled_from(["min", "max"]),
    reduction=st.sampled_from([0.1, 0.5]),
    min_factor=st.sampled_from([0.0, 1e-3, 0.05]),
)
def test_plateau_controller_matches_torch(
    metrics: list[float],
    patience: int,
    cooldown: int,
    threshold: float,
    threshold_mode: str,
    mode: str,
    reduction: float,
    min_factor: float,
) -> None:
    lr0 = 0.4
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr0)
    theirs = tls.ReduceLROnPlateau(
        opt, mode=mode, factor=reduction, patience=patience, threshold=threshold,
        threshold_mode=threshold_mode, cooldown=cooldown, min_lr=lr0 * min_factor, eps=1e-8,
    )  # type: ignore[arg-type]  # fmt: skip
    ours = S.PlateauController(
        reduction, patience, threshold, threshold_mode, mode, cooldown, min_factor, 1e-8 / lr0
    )  # type: ignore[arg-type]
    for metric in metrics:
        theirs.step(metric)
        factor = ours.observe(metric)
        assert math.isclose(lr0 * factor, opt.param_groups[0]["lr"], rel_tol=CLOSED)


def test_plateau_scaled_composes_with_any_schedule() -> None:
    controller = S.PlateauController(reduction=0.5, patience=1)
    sched = S.plateau_scaled(S.cosine(1.0, 100), controller)
    assert sched(50) == pytest.approx(0.5)
    for metric in (1.0, 1.0, 1.0):  # best, bad (1 <= patience), bad (2 > patience): reduce
        controller.observe(metric)
    assert controller.factor == 0.5
    assert sched(50) == pytest.approx(0.25)
    warmed = S.warmup(sched, 10, shift=False)
    assert warmed(5) == pytest.approx(0.5 * sched(10))
    state = controller.state_dict()
    other = S.PlateauController(reduction=0.5, patience=1)
    other.load_state_dict(state)
    assert other.state_dict() == state


# Bridges: LambdaLR, batch size, plots, registry.


def test_to_lambda_lr_sets_schedule_values() -> None:
    first, second = torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(2))
    opt = torch.optim.SGD([{"params": [first]}, {"params": [second], "lr": 7.0}], lr=0.3)
    tls.StepLR(opt, 3)  # leaves initial_lr behind, which LambdaLR would otherwise reuse
    sched = S.warmup(S.cosine(0.1, 50), 5)
    torch_sched = S.to_lambda_lr(opt, sched)
    for t in range(60):
        assert [g["lr"] for g in opt.param_groups] == [sched(t), sched(t)]
        opt.step()
        torch_sched.step()

    halved = [sched, lambda t: 0.5 * sched(t)]
    opt = torch.optim.SGD([{"params": [first]}, {"params": [second]}], lr=0.3)
    S.to_lambda_lr(opt, halved)
    assert [g["lr"] for g in opt.param_groups] == [sched(0), 0.5 * sched(0)]


def test_to_lambda_lr_drives_sgd_updates() -> None:
    param = torch.nn.Parameter(torch.zeros((), dtype=torch.float64))
    opt = torch.optim.SGD([param], lr=123.0)
    sched = S.step_decay(0.5, 2, 0.1)
    torch_sched = S.to_lambda_lr(opt, sched)
    for _ in range(5):
        param.grad = torch.ones((), dtype=torch.float64)
        opt.step()
        torch_sched.step()
    assert param.item() == pytest.approx(-(0.5 + 0.5 + 0.05 + 0.05 + 0.005), rel=1e-15)


def test_batch_size_schedule_by_hand() -> None:
    decay = S.step_decay(0.1, 2, 0.2)  # Smith et al. 2018: 5x batch instead of lr / 5
    sizes = S.batch_size_schedule(128, decay, max_batch=10_000)
    assert [sizes(e) for e in range(8)] == [128, 128, 640, 640, 3200, 3200, 10_000, 10_000]
    lr = S.batch_size_lr(128, decay, max_batch=10_000)
    want = [0.1] * 6 + [0.1 * 0.2**3 * 10_000 / 128] * 2
    assert [lr(e) for e in range(8)] == pytest.approx(want, rel=1e-12)
    uncapped = S.batch_size_schedule(32, S.inverse_time(1.0, 1.0))
    assert [uncapped(e) for e in (0, 1, 9)] == [32, 64, 320]


def test_plot_schedule_writes_png(tmp_path: pytest.TempPathFactory) -> None:
    out = S.plot_schedule(S.one_cycle(0.1, 100), 100, tmp_path / "one_cycle.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    curves = {"cosine": S.cosine(0.1, 50), "sgdr": S.sgdr(0.1, 10, 2)}
    out = S.plot_schedule(curves, 60, tmp_path / "sub" / "both.png", title="x", log_y=True)
    assert out.stat().st_size > 1_000


def test_get_schedule_builds_every_name() -> None:
    assert S.get_schedule("cosine", lr=0.1, total_steps=10)(5) == S.cosine(0.1, 10)(5)
    assert S.get_schedule("triangular2", base_lr=0.0, max_lr=1.0, step_size_up=2)(6) == 0.5
    assert set(S.SCHEDULES) >= {"constant", "step_decay", "multistep", "one_cycle", "sgdr"}


BAD_INPUTS: list[tuple[Callable[[], object], str]] = [
    (lambda: S.get_schedule("cosin"), "did you mean 'cosine'"),
    (lambda: S.get_schedule("onecycle"), "did you mean 'one_cycle'"),
    (lambda: S.get_schedule("cosine", lr=0.1, T_max=5), "accepted: lr, total_steps"),
    (lambda: S.get_schedule("sgdr", lr=0.1), "missing required argument 't_0'"),
    (lambda: S.constant(-0.1), "lr must be a finite number >= 0"),
    (lambda: S.cosine(float("nan"), 10), "lr must be"),
    (lambda: S.step_decay(0.1, 10, gamma=0.0), "gamma must be a finite number > 0"),
    (lambda: S.step_decay(0.1, 0), "step_size must be an int >= 1"),
    (lambda: S.multistep(0.1, []), "milestones must be a non-empty strictly increasing"),
    (lambda: S.multistep(0.1, [30, 10]), "milestones must be"),
    (lambda: S.exponential(0.1), "give exactly one of gamma or k"),
    (lambda: S.exponential(0.1, gamma=0.9, k=0.1), "give exactly one of gamma or k"),
    (lambda: S.polynomial(0.1, 0), "total_steps must be an int >= 1"),
    (lambda: S.cyclic(0.1, 0.01), "max_lr must be >= base_lr"),
    (lambda: S.cyclic(0.01, 0.1, mode="triangle"), "mode must be one of"),  # type: ignore[arg-type]
    (lambda: S.cyclic(0.01, 0.1, gamma=1.5), "gamma must be in (0, 1]"),
    (lambda: S.one_cycle(0.1, 100, pct_start=0.005), "pct_start * total_steps must lie in"),
    (lambda: S.one_cycle(0.1, 100, anneal_strategy="cosine"), "anneal_strategy"),  # type: ignore[arg-type]
    (lambda: S.sgdr(0.1, 10, t_mult=0), "t_mult must be an int >= 1"),
    (lambda: S.join([S.constant(1.0), S.constant(0.5)], []), "boundaries must have"),
    (lambda: S.join([S.constant(1.0), S.constant(0.5)], [0]), "boundaries must be"),
    (lambda: S.warmup(S.constant(1.0), -1), "warmup_steps must be an int >= 0"),
    (lambda: S.PlateauController(reduction=1.0), "reduction must be in (0, 1)"),
    (lambda: S.PlateauController(mode="low"), "mode must be 'min' or 'max'"),  # type: ignore[arg-type]
    (lambda: S.cosine(0.1, 10)(-1), "step must be >= 0"),
    (lambda: S.batch_size_schedule(128, S.constant(0.1), max_batch=64), "max_batch must be"),
    (lambda: S.to_lambda_lr(torch.optim.SGD([torch.zeros(1)]), [S.constant(1.0)] * 2), "one per"),
]


@pytest.mark.parametrize(("call", "needle"), BAD_INPUTS)
def test_bad_input_fails_with_one_line(call: Callable[[], object], needle: str) -> None:
    with pytest.raises(ValueError) as info:
        call()
    message = str(info.value)
    assert needle in message
    assert "\n" not in message


# Learning-rate and momentum schedules are different kinds; a recipe's one_cycle cycles momentum.


def test_momentum_schedules_are_not_learning_rate_schedules() -> None:
    from trainlab.run.config import RecipeError, validate_recipe

    assert "one_cycle_momentum" not in S.SCHEDULES
    assert set(S.MOMENTUM_SCHEDULES) == {"one_cycle_momentum"}
    with pytest.raises(ValueError, match="is a momentum schedule, not a learning-rate schedule"):
        S.get_schedule("one_cycle_momentum", total_steps=10)
    with pytest.raises(RecipeError, match="unknown schedule 'one_cycle_momentum'"):
        validate_recipe({"schedule": {"name": "one_cycle_momentum"}})
    m = S.get_momentum_schedule("one_cycle_momentum", total_steps=10)
    assert m(0) == 0.95 and min(m(t) for t in range(10)) == pytest.approx(0.85)


def _linear_net() -> torch.nn.Module:
    torch.manual_seed(3)
    return torch.nn.Linear(5, 2).double()


def _recipe_vs_one_cycle_lr(optimizer: dict, schedule: dict, torch_opt, torch_kwargs: dict):
    """Run a recipe's optimizer + schedules (as the loop does: group lr = schedule(t), the
    momentum inside the optimizer) beside torch's optimizer + OneCycleLR; compare every step."""
    from trainlab.run.builders import build_momentum_schedule, build_optimizer, build_schedule
    from trainlab.run.config import validate_recipe

    total = 40
    recipe = validate_recipe({"optimizer": optimizer, "schedule": schedule})
    kw = recipe.schedule.kwargs()
    lr = build_schedule(recipe.schedule.name, kw, recipe.optimizer.lr, total)
    momentum = build_momentum_schedule(recipe.schedule.name, kw, total)
    net, ref = _linear_net(), _linear_net()
    ours = build_optimizer(recipe.optimizer, net, momentum)
    theirs = torch_opt(ref.parameters(), lr=recipe.optimizer.lr, **torch_kwargs)
    cycle = kw.get("cycle_momentum", True)
    extra = {k: kw[k] for k in ("pct_start", "base_momentum", "max_momentum") if k in kw}
    sched = tls.OneCycleLR(theirs, recipe.optimizer.lr, total_steps=total, cycle_momentum=cycle,
                           **extra)  # fmt: skip
    g = torch.Generator().manual_seed(4)
    x = torch.randn(64, 5, generator=g, dtype=torch.float64)
    y = torch.randn(64, 2, generator=g, dtype=torch.float64)
    key = "betas" if "betas" in theirs.param_groups[0] else "momentum"
    seen = []
    for t in range(total):
        group = theirs.param_groups[0]
        want_m = group[key][0] if key == "betas" else group[key]
        seen.append(want_m)
        assert lr(t) == pytest.approx(group["lr"], rel=1e-13, abs=1e-17)
        if momentum is not None:
            assert momentum(t) == pytest.approx(want_m, abs=1e-14)
        for grp in ours.param_groups:
            grp["lr"] = lr(t)
        for net_, opt in ((net, ours), (ref, theirs)):
            opt.zero_grad()
            ((net_(x) - y) ** 2).mean().backward()
            opt.step()
        sched.step()
        for p, q in zip(net.parameters(), ref.parameters(), strict=True):
            torch.testing.assert_close(p, q, atol=1e-12, rtol=0)
    return seen


@pytest.mark.parametrize(
    ("optimizer", "torch_opt", "torch_kwargs"),
    [
        ({"name": "sgd", "lr": 0.1}, torch.optim.SGD, {}),  # torch too turns momentum on
        ({"name": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": True}, torch.optim.SGD,
         {"momentum": 0.9, "nesterov": True}),
        ({"name": "adam", "lr": 0.01}, torch.optim.Adam, {}),
        ({"name": "adamw", "lr": 0.01, "betas": [0.9, 0.99]}, torch.optim.AdamW,
         {"betas": (0.9, 0.99)}),
    ],
    ids=["sgd", "sgd-nesterov", "adam", "adamw"],
)  # fmt: skip
def test_recipe_one_cycle_cycles_momentum_like_one_cycle_lr(optimizer, torch_opt, torch_kwargs):
    seen = _recipe_vs_one_cycle_lr(optimizer, {"name": "one_cycle"}, torch_opt, torch_kwargs)
    assert seen[0] == 0.95 and min(seen) == pytest.approx(0.85) and seen[-1] == 0.95


def test_recipe_one_cycle_momentum_bounds_are_options() -> None:
    schedule = {"name": "one_cycle", "pct_start": 0.25, "base_momentum": 0.7,
                "max_momentum": 0.9}  # fmt: skip
    seen = _recipe_vs_one_cycle_lr(
        {"name": "sgd", "lr": 0.05, "momentum": 0.5}, schedule, torch.optim.SGD, {"momentum": 0.5}
    )
    assert seen[0] == 0.9 and min(seen) == pytest.approx(0.7)


def test_recipe_cycle_momentum_false_keeps_it_constant() -> None:
    schedule = {"name": "one_cycle", "cycle_momentum": False}
    seen = _recipe_vs_one_cycle_lr(
        {"name": "sgd", "lr": 0.1, "momentum": 0.9}, schedule, torch.optim.SGD, {"momentum": 0.9}
    )
    assert set(seen) == {0.9}
    seen = _recipe_vs_one_cycle_lr({"name": "adam", "lr": 0.01}, schedule, torch.optim.Adam, {})
    assert set(seen) == {0.9}


@pytest.mark.parametrize(
    ("optimizer", "schedule", "needle"),
    [
        ({"name": "adagrad"}, {"name": "one_cycle"}, "adagrad has no momentum or beta1"),
        ({"name": "torch.SGD", "momentum": 0.9}, {"name": "one_cycle"}, "torch.SGD cannot follow"),
        ({"name": "sgd"}, {"name": "cosine", "cycle_momentum": True}, "only one_cycle cycles"),
        ({"name": "sgd"}, {"name": "one_cycle", "cycle_momentum": "yes"}, "expected true or false"),
        ({"name": "sgd"}, {"name": "one_cycle", "max_momentum": 1.5}, "max_momentum"),
    ],
)
def test_recipe_momentum_cycle_errors_are_one_line(optimizer, schedule, needle) -> None:
    from trainlab.run.builders import build_momentum_schedule, build_optimizer
    from trainlab.run.config import RecipeError, validate_recipe

    recipe = validate_recipe({"optimizer": optimizer, "schedule": schedule})
    with pytest.raises(RecipeError) as info:
        kw = recipe.schedule.kwargs()
        momentum = build_momentum_schedule(recipe.schedule.name, kw, 100)
        build_optimizer(recipe.optimizer, _linear_net(), momentum)
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_recipe_without_momentum_cycle_builds_adagrad_and_torch_optimizers() -> None:
    from trainlab.run.builders import build_momentum_schedule, build_optimizer
    from trainlab.run.config import validate_recipe

    for name in ("adagrad", "torch.SGD"):
        recipe = validate_recipe(
            {
                "optimizer": {"name": name},
                "schedule": {"name": "one_cycle", "cycle_momentum": False},
            }
        )
        momentum = build_momentum_schedule(recipe.schedule.name, recipe.schedule.kwargs(), 100)
        assert momentum is None
        build_optimizer(recipe.optimizer, _linear_net(), momentum)
