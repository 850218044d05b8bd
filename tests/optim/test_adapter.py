"""trainlab.optim.Optimizer: checkpoints, LR schedulers, GradScaler, groups, closures."""

from __future__ import annotations

import copy
import io

import pytest
import torch
from optim_problems import make_data, make_model, rel_err, run_torch_style

import trainlab.optim as to


def _roundtrip(sd: dict) -> dict:
    buf = io.BytesIO()
    torch.save(sd, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


@pytest.mark.parametrize(
    "make",
    [
        lambda: to.adam(0.05, amsgrad=True),
        lambda: to.lookahead(to.adamw(0.05), k=3, alpha=0.5),
        lambda: to.chain(to.clip_by_global_norm(1.0), to.sgd(0.1, momentum=0.9), to.ema_weights()),
        lambda: to.nadam(0.05),
    ],
    ids=["adam", "lookahead-adamw", "clip-sgd-ema", "nadam"],
)
def test_state_dict_round_trip_continues_identically(make) -> None:
    model = make_model()
    opt = to.Optimizer(model.parameters(), make())
    run_torch_style(model, opt, 7)  # 7 steps: mid-way through a Lookahead cycle
    saved = _roundtrip(opt.state_dict())
    twin = copy.deepcopy(model)
    twin_opt = to.Optimizer(twin.parameters(), make())
    twin_opt.load_state_dict(saved)
    a = run_torch_style(model, opt, 8)
    b = run_torch_style(twin, twin_opt, 8)
    assert rel_err(b, a) == 0.0
    fresh = copy.deepcopy(model)  # without loading, the continuation differs
    c = run_torch_style(fresh, to.Optimizer(fresh.parameters(), make()), 8)
    assert rel_err(c, run_torch_style(copy.deepcopy(model), opt, 0)) > 0 or rel_err(c, a) > 0


def test_lookahead_slow_weights_survive_checkpoint() -> None:
    model = make_model()
    opt = to.Optimizer(model.parameters(), to.lookahead(to.sgd(0.1), k=5))
    run_torch_style(model, opt, 2)
    slow = [s.clone() for s in opt.transform_state().slow]
    sd = _roundtrip(opt.state_dict())
    twin = to.Optimizer(copy.deepcopy(model).parameters(), to.lookahead(to.sgd(0.1), k=5))
    twin.load_state_dict(sd)
    for a, b in zip(twin.transform_state().slow, slow, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_load_state_dict_mismatch_is_one_line() -> None:
    model = make_model()
    sd = to.Optimizer(model.parameters(), to.adam()).state_dict()
    other = to.Optimizer(model.parameters(), to.sgd(0.1, momentum=0.9))
    with pytest.raises(ValueError, match=r"^group0\[0\]: expected TraceState, got AdamState$"):
        other.load_state_dict(sd)


def test_step_lr_scheduler_matches_torch() -> None:
    model = make_model()
    model_t = copy.deepcopy(model)
    ours = to.Optimizer(model.parameters(), to.adamw(0.1, weight_decay=0.1))
    theirs = torch.optim.AdamW(model_t.parameters(), lr=0.1, weight_decay=0.1)
    s1 = torch.optim.lr_scheduler.StepLR(ours, step_size=10, gamma=0.3)
    s2 = torch.optim.lr_scheduler.StepLR(theirs, step_size=10, gamma=0.3)
    for _ in range(40):
        a = run_torch_style(model, ours, 1)
        b = run_torch_style(model_t, theirs, 1)
        s1.step()
        s2.step()
    assert ours.param_groups[0]["lr"] == pytest.approx(0.1 * 0.3**4)
    assert rel_err(a, b) <= 1e-12


def test_schedule_lr_is_reported_and_read_only() -> None:
    model = make_model()
    opt = to.Optimizer(model.parameters(), to.sgd(lambda t: 0.1 / (1 + t)))
    run_torch_style(model, opt, 3)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1 / 3)  # rate used by step index 2
    opt.param_groups[0]["lr"] = 1.0
    with pytest.raises(ValueError, match="lr is a schedule"):
        run_torch_style(model, opt, 1)


def test_grad_scaler_steps_like_torch_and_skips_inf() -> None:
    model = make_model(dtype=torch.float32)
    model_t = copy.deepcopy(model)
    x, y = make_data()
    x, y = x.float(), y.float()
    results = []
    for m, opt in [
        (model, to.Optimizer(model.parameters(), to.adam(0.01))),
        (model_t, torch.optim.Adam(model_t.parameters(), lr=0.01)),
    ]:
        scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
        for i in range(20):
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(m(x), y)
            if i == 5:
                loss = loss * float("inf")  # this step must be skipped
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        results.append([p.detach().clone() for p in m.parameters()])
        assert scaler.get_scale() < 2.0**10  # the inf step lowered the scale
    assert rel_err(results[0], results[1]) <= 1e-6


def test_disabled_grad_scaler_path() -> None:
    model = make_model()
    opt = to.Optimizer(model.parameters(), to.sgd(0.1))
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    x, y = make_data()
    before = [p.detach().clone() for p in model.parameters()]
    scaler.scale(torch.nn.functional.mse_loss(model(x), y)).backward()
    scaler.step(opt)
    scaler.update()
    assert rel_err([p.detach() for p in model.parameters()], before) > 0


def test_param_groups_with_own_transforms_and_lr_override() -> None:
    model = torch.nn.Linear(3, 2).double()
    model_t = copy.deepcopy(model)
    ours = to.Optimizer(
        [
            {"params": [model.weight], "transform": to.adamw(0.1, weight_decay=0.1)},
            {"params": [model.bias], "lr": 0.01},
        ],
        to.adam(0.5),
    )
    assert [g["lr"] for g in ours.param_groups] == [0.1, 0.01]
    theirs = [
        torch.optim.AdamW([model_t.weight], lr=0.1, weight_decay=0.1),
        torch.optim.Adam([model_t.bias], lr=0.01),
    ]
    x = torch.randn(8, 3, dtype=torch.float64)
    for _ in range(20):
        for m, opts in [(model, [ours]), (model_t, theirs)]:
            for o in opts:
                o.zero_grad()
            m(x).pow(2).sum().backward()
            for o in opts:
                o.step()
    assert rel_err(list(model.parameters()), list(model_t.parameters())) <= 1e-12


def test_closure_and_zero_grad() -> None:
    model = make_model()
    opt = to.Optimizer(model.parameters(), to.sgd(0.1))
    x, y = make_data()

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        return loss

    first = opt.step(closure)
    second = opt.step(closure)
    assert float(second.detach()) < float(first.detach())
    opt.zero_grad()
    assert all(p.grad is None for p in model.parameters())


def test_missing_transform_is_one_line_error() -> None:
    with pytest.raises(
        TypeError, match=r"^Optimizer: param group 0 needs a Transform, got NoneType$"
    ):
        to.Optimizer(make_model().parameters())
