"""Every scheduler class of ``torch.optim.lr_scheduler`` drives `trainlab.optim.Optimizer` as it
drives torch.optim: 20 steps of linear least squares, float64, the same weights to atol 1e-12.

``CyclicLR`` and ``OneCycleLR`` cycle momentum (SGD) or beta1 (Adam) here, so this also checks
that the adapter exposes ``group["momentum"]`` / ``group["betas"]`` and reads them every step.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch.optim import lr_scheduler as S

import trainlab.optim as to

STEPS = 20
ATOL = 1e-12

Factory = Callable[[torch.optim.Optimizer], Any]

# Sensible arguments for every scheduler class; a class missing here fails `test_all_covered`.
SCHEDULERS: dict[type, Factory] = {
    S.LambdaLR: lambda o: S.LambdaLR(o, lambda t: 1.0 / (1.0 + 0.3 * t)),
    S.MultiplicativeLR: lambda o: S.MultiplicativeLR(o, lambda t: 0.93),
    S.StepLR: lambda o: S.StepLR(o, step_size=4, gamma=0.5),
    S.MultiStepLR: lambda o: S.MultiStepLR(o, milestones=[3, 8, 15], gamma=0.3),
    S.ConstantLR: lambda o: S.ConstantLR(o, factor=0.4, total_iters=6),
    S.LinearLR: lambda o: S.LinearLR(o, start_factor=0.2, end_factor=1.0, total_iters=10),
    S.ExponentialLR: lambda o: S.ExponentialLR(o, gamma=0.9),
    S.SequentialLR: lambda o: S.SequentialLR(
        o,
        [S.LinearLR(o, start_factor=0.1, total_iters=5), S.ExponentialLR(o, gamma=0.85)],
        milestones=[5],
    ),
    S.PolynomialLR: lambda o: S.PolynomialLR(o, total_iters=15, power=2.0),
    S.CosineAnnealingLR: lambda o: S.CosineAnnealingLR(o, T_max=12, eta_min=1e-3),
    S.ChainedScheduler: lambda o: S.ChainedScheduler(
        [S.ConstantLR(o, factor=0.5, total_iters=4), S.ExponentialLR(o, gamma=0.9)]
    ),
    S.ReduceLROnPlateau: lambda o: S.ReduceLROnPlateau(o, factor=0.5, patience=1, threshold=0.2),
    S.CyclicLR: lambda o: S.CyclicLR(o, base_lr=0.005, max_lr=0.08, step_size_up=4),
    S.OneCycleLR: lambda o: S.OneCycleLR(o, max_lr=0.1, total_steps=STEPS),
    S.CosineAnnealingWarmRestarts: lambda o: S.CosineAnnealingWarmRestarts(
        o, T_0=5, T_mult=2, eta_min=1e-3
    ),
}

# (trainlab alias, torch class, shared kwargs)
OPTIMIZERS = {
    "sgd": (to.sgd, torch.optim.SGD, dict(lr=0.05, momentum=0.9, weight_decay=1e-3)),
    "sgd_nesterov": (to.sgd, torch.optim.SGD, dict(lr=0.05, momentum=0.8, nesterov=True)),
    "adam": (to.adam, torch.optim.Adam, dict(lr=0.05, weight_decay=1e-3)),
    "adamw": (to.adamw, torch.optim.AdamW, dict(lr=0.05, betas=(0.8, 0.99))),
}


def scheduler_classes() -> set[type]:
    """Every public scheduler class torch has (the base classes excluded)."""
    return {
        c
        for name, c in vars(S).items()
        if isinstance(c, type)
        and issubclass(c, S.LRScheduler)
        and c is not S.LRScheduler
        and not name.startswith("_")
    }


def test_all_covered() -> None:
    missing = sorted(c.__name__ for c in scheduler_classes() - set(SCHEDULERS))
    assert not missing, f"schedulers without a test case: {missing}"
    assert len(SCHEDULERS) >= 15


def least_squares() -> tuple[torch.Tensor, torch.Tensor]:
    """Fixed data: y = X w* + noise, X (32, 5), y (32, 2)."""
    g = torch.Generator().manual_seed(7)
    x = torch.randn(32, 5, generator=g, dtype=torch.float64)
    w = torch.randn(5, 2, generator=g, dtype=torch.float64)
    return x, x @ w + 0.1 * torch.randn(32, 2, generator=g, dtype=torch.float64)


def train(make_opt: Callable[[list[torch.Tensor]], torch.optim.Optimizer], factory: Factory):
    x, y = least_squares()
    params = [
        torch.zeros(5, 2, dtype=torch.float64, requires_grad=True),
        torch.full((2,), 0.5, dtype=torch.float64, requires_grad=True),
    ]
    opt = make_opt(params)
    sched = factory(opt)
    for _ in range(STEPS):
        loss = ((x @ params[0] + params[1] - y) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if isinstance(sched, S.ReduceLROnPlateau):
            sched.step(loss.item())
        else:
            sched.step()
    return [p.detach().clone() for p in params], opt.param_groups[0]


@pytest.mark.parametrize("backend", ["fast", "reference"])
@pytest.mark.parametrize("opt_name", list(OPTIMIZERS))
@pytest.mark.parametrize("cls", list(SCHEDULERS), ids=lambda c: c.__name__)
def test_scheduler_drives_like_torch(cls: type, opt_name: str, backend: str) -> None:
    ours, theirs, kwargs = OPTIMIZERS[opt_name]
    with to.use_backend(backend):
        transform = ours(**kwargs)
    got, group = train(lambda ps: to.Optimizer(ps, transform), SCHEDULERS[cls])
    want, torch_group = train(lambda ps: theirs(ps, **kwargs), SCHEDULERS[cls])
    start = torch.zeros(5, 2, dtype=torch.float64)
    assert (want[0] - start).abs().max() > 0.05, "the problem must move the weights"
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, atol=ATOL, rtol=0)
    assert group["lr"] == pytest.approx(torch_group["lr"], abs=1e-15)
    for key in ("momentum", "betas"):
        if key in torch_group:
            assert group[key] == pytest.approx(torch_group[key], abs=1e-15)


def test_momentum_written_by_a_scheduler_changes_the_update() -> None:
    """A group value set from outside is read at the next step (not fixed at build time)."""
    ps = [torch.ones(3, dtype=torch.float64, requires_grad=True)]
    opt = to.Optimizer(ps, to.sgd(0.1, momentum=0.9))
    ref = torch.optim.SGD([torch.ones(3, dtype=torch.float64, requires_grad=True)], 0.1, 0.9)
    for o in (opt, ref):
        for momentum in (0.9, 0.1, 0.5):
            o.param_groups[0]["momentum"] = momentum
            o.param_groups[0]["params"][0].grad = torch.ones(3, dtype=torch.float64)
            o.step()
    torch.testing.assert_close(ps[0], ref.param_groups[0]["params"][0], atol=1e-15, rtol=0)


def test_switched_off_part_refuses_a_new_value() -> None:
    ps = [torch.ones(3, requires_grad=True)]
    opt = to.Optimizer(ps, to.sgd(0.1))
    assert opt.param_groups[0]["momentum"] == 0.0
    opt.param_groups[0]["momentum"] = 0.9
    ps[0].grad = torch.ones(3)
    with pytest.raises(ValueError, match="group 0 momentum was set to 0.9 .* switched off"):
        opt.step()


@pytest.mark.parametrize(
    ("transform", "keys"),
    [
        (to.sgd(0.1, momentum=0.9), {"momentum": 0.9, "dampening": 0.0, "weight_decay": 0.0}),
        (to.adam(0.1), {"betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0}),
        (to.adamw(0.1), {"betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 1e-2}),
        (to.rmsprop(0.1, momentum=0.5), {"alpha": 0.99, "momentum": 0.5}),
        (to.adagrad(0.1), {"lr_decay": 0.0, "eps": 1e-10}),
        (to.adadelta(), {"rho": 0.9, "eps": 1e-6}),
        (to.nadam(), {"betas": (0.9, 0.999), "momentum_decay": 4e-3}),
    ],
)
def test_groups_show_torch_keys(transform: to.Transform, keys: dict[str, Any]) -> None:
    opt = to.Optimizer([torch.ones(2, requires_grad=True)], transform)
    for key, value in keys.items():
        assert opt.param_groups[0][key] == pytest.approx(value)
        assert key in opt.defaults


def test_per_group_transforms_keep_their_own_keys() -> None:
    a, b = torch.ones(2, requires_grad=True), torch.ones(2, requires_grad=True)
    opt = to.Optimizer(
        [{"params": [a], "transform": to.adam(0.1, betas=(0.5, 0.9))},
         {"params": [b], "transform": to.sgd(0.1, momentum=0.7)},
         {"params": [torch.ones(1, requires_grad=True)], "transform": to.adam(0.1)}]
    )  # fmt: skip
    g0, g1, g2 = opt.param_groups
    assert g0["betas"] == (0.5, 0.9) and "momentum" not in g0
    assert g1["momentum"] == 0.7 and "betas" not in g1
    assert g2["betas"] == (0.9, 0.999)


def test_rmsprop_one_cycle_momentum_like_torch() -> None:
    kwargs = dict(lr=0.01, momentum=0.9)
    factory = SCHEDULERS[S.OneCycleLR]
    got, _ = train(lambda ps: to.Optimizer(ps, to.rmsprop(**kwargs)), factory)
    want, _ = train(lambda ps: torch.optim.RMSprop(ps, **kwargs), factory)
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, atol=ATOL, rtol=0)
