"""Sanity checks (CS231n lecture 6): each passes on a healthy model and fails on a broken one."""

from __future__ import annotations

import json
import math
from collections import OrderedDict
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainlab.cli import main
from trainlab.diagnose import Probes
from trainlab.diagnose.checks import (
    batch_independence_check,
    compare_gradients,
    expected_initial_loss,
    gradient_check,
    initial_loss_check,
    overfit_check,
    regularization_check,
    relative_error,
)
from trainlab.run.config import load_recipe
from trainlab.run.recipe_checks import optimizer_weight_decay, unregularized
from trainlab.train.regularizers import WeightPenalty

DIGITS = ["data.name=digits", "model.name=mlp", "model.widths=[32]", "data.batch_size=64"]


def _data(n: int = 40, d: int = 6, classes: int = 4, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g), torch.randint(0, classes, (n,), generator=g)


def _mlp(d: int = 6, classes: int = 4, *extra: nn.Module) -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(d, 16), nn.Tanh(), *extra, nn.Linear(16, classes))


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


class CenterBatch(nn.Module):
    """A bug: subtracts the batch mean, so every example's output depends on the others."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x - x.mean(0)


class _WrongTanh(torch.autograd.Function):
    """tanh with a backward that forgets the square: 1 − y instead of 1 − y²."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        y = torch.tanh(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (y,) = ctx.saved_tensors
        return grad * (1 - y)


class WrongTanh(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _WrongTanh.apply(x)


# ---- loss at init ---------------------------------------------------------------------------


def test_initial_loss_near_log_c_passes_and_huge_init_fails() -> None:
    x, y = _data(256, classes=10)
    model = _mlp(classes=10)
    expected, how = expected_initial_loss("cross_entropy", 10)
    assert expected == pytest.approx(math.log(10)) and how == "log(10)"
    good = initial_loss_check(model, F.cross_entropy, x, y, expected, how=how)
    assert good.status == "pass" and abs(good.measured - math.log(10)) < 0.1 * math.log(10)
    with torch.no_grad():
        model[-1].weight.mul_(100.0)  # over-confident logits: loss ≫ log C
    bad = initial_loss_check(model, F.cross_entropy, x, y, expected, how=how)
    assert bad.failed and bad.measured > 3 * math.log(10)


def test_expected_initial_loss_per_loss() -> None:
    assert expected_initial_loss("cross_entropy", 3)[0] == pytest.approx(math.log(3))
    assert expected_initial_loss("multiclass_hinge", 10)[0] == 9.0  # CS231n SVM: C − 1
    assert expected_initial_loss("logistic", 2)[0] == pytest.approx(math.log(2))
    assert expected_initial_loss("mse", 10)[0] is None
    assert expected_initial_loss("cross_entropy", None)[0] is None
    skipped = initial_loss_check(_mlp(), F.mse_loss, *_data(), None, how="regression")
    assert skipped.status == "skip" and not skipped.failed


# ---- gradient check -------------------------------------------------------------------------


def test_relative_error_hand_values() -> None:
    assert relative_error(0.0, 0.0) == 0.0
    assert relative_error(1.0, -1.0) == 2.0
    assert relative_error(2.0, 1.0) == 0.5
    assert relative_error(1.0, 1.0 + 1e-8) == pytest.approx(1e-8, rel=1e-6)


def test_gradients_of_linear_least_squares_match_the_hand_formula() -> None:
    """L = mean_n Σ_k (W x_n + b − t_n)_k² / K (F.mse_loss): ∂L/∂W = 2/(N K) Σ_n r_n x_nᵀ."""
    g = torch.Generator().manual_seed(1)
    x, t = torch.randn(5, 3, generator=g), torch.randn(5, 2, generator=g)
    model = nn.Linear(3, 2)
    entries = compare_gradients(model, F.mse_loss, x, t, coords=6)
    w, b = model.weight.detach().double(), model.bias.detach().double()
    r = x.double() @ w.T + b - t.double()
    hand = {
        "weight": (2 / r.numel() * r.T @ x.double()).reshape(-1),
        "bias": 2 / r.numel() * r.sum(0),
    }
    assert len(entries) == 6 + 2
    for e in entries:
        assert e.analytic == pytest.approx(float(hand[e.param][e.index]), rel=1e-12)
        assert e.numeric == pytest.approx(float(hand[e.param][e.index]), rel=1e-8)
        assert e.rel_error < 1e-8


def test_gradient_check_passes_healthy_fails_wrong_backward() -> None:
    x, y = _data(4)
    good = gradient_check(_mlp(), F.cross_entropy, x, y)
    assert good.status == "pass" and good.measured < 1e-7
    torch.manual_seed(0)
    broken = nn.Sequential(nn.Linear(6, 16), WrongTanh(), nn.Linear(16, 4))
    bad = gradient_check(broken, F.cross_entropy, x, y)
    assert bad.failed and bad.measured > 1e-2 and "0." in bad.detail  # the first layer is wrong


def test_kink_crossing_is_remeasured_at_a_smaller_step() -> None:
    """relu(w·1) at w = 3e-6: a step of 1e-5 crosses the kink ((1.3e-5 − 0)/2e-5 = 0.65 instead
    of 1); h = 1e-6 does not, and gives the exact slope."""

    class Kink(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = nn.Parameter(torch.tensor([3e-6]))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.relu(self.w * x)

    (entry,) = compare_gradients(Kink(), lambda o, t: o.sum(), torch.ones(1, 1), torch.zeros(1))
    assert entry.analytic == 1.0 and entry.eps == pytest.approx(1e-6)
    assert entry.numeric == pytest.approx(1.0, rel=1e-8)


# ---- overfit a tiny subset ------------------------------------------------------------------


def test_overfit_reaches_full_accuracy_and_fails_with_lr_zero() -> None:
    x, y = _data(20)
    model = _mlp()
    good = overfit_check(
        model, torch.optim.Adam(model.parameters(), lr=0.01), F.cross_entropy, x, y
    )
    assert good.status == "pass" and good.measured == 1.0 and "at step" in good.detail
    frozen = _mlp()
    opt = torch.optim.SGD(frozen.parameters(), lr=0.0)
    bad = overfit_check(frozen, opt, F.cross_entropy, x, y, max_steps=50)
    assert bad.failed and bad.measured < 1.0 and "after 50 steps" in bad.detail


def test_overfit_regression_needs_loss_below_one_percent() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(20, 6, generator=g)
    t = x[:, :1] * 2.0
    model = nn.Linear(6, 1)
    good = overfit_check(model, torch.optim.SGD(model.parameters(), lr=0.3), F.mse_loss, x, t)
    assert good.status == "pass" and good.measured <= 0.01


# ---- regularization -------------------------------------------------------------------------


def test_regularization_rise_equals_the_l2_term_and_a_detached_penalty_fails() -> None:
    x, y = _data()
    model = _mlp()
    weights = sum(float(p.detach().pow(2).sum()) for p in model.parameters() if p.dim() > 1)

    def l2_at(net: nn.Module, scale: float):
        return WeightPenalty([p for p in net.parameters() if p.dim() > 1], l2=0.01 * scale)

    good = regularization_check(model, F.cross_entropy, x, y, l2_at)
    assert good.status == "pass"
    assert good.measured == pytest.approx(10 * 0.01 / 2 * weights, rel=1e-5)  # λ/2·Σw², λ=0.1

    def ignores_scale(net: nn.Module, scale: float):
        return lambda: torch.zeros(())  # strength never reaches the objective

    assert regularization_check(model, F.cross_entropy, x, y, ignores_scale).failed


# ---- batch independence ---------------------------------------------------------------------


def test_batch_independence_passes_healthy_and_fails_a_mixing_layer() -> None:
    x, y = _data(8)
    good = batch_independence_check(_mlp(6, 4, nn.Dropout(0.5)), F.cross_entropy, x, y)
    assert good.status == "pass" and good.measured == 0.0 and "training mode" in good.detail
    torch.manual_seed(0)
    mixing = nn.Sequential(nn.Linear(6, 16), CenterBatch(), nn.Tanh(), nn.Linear(16, 4))
    bad = batch_independence_check(mixing, F.cross_entropy, x, y)
    assert bad.failed and bad.measured > 0


def test_batchnorm_is_checked_in_eval_mode_and_says_so() -> None:
    x, y = _data(8)
    result = batch_independence_check(_mlp(6, 4, nn.BatchNorm1d(16)), F.cross_entropy, x, y)
    assert result.status == "pass" and "eval mode (BatchNorm" in result.detail


def test_checks_leave_model_mode_and_rng_untouched() -> None:
    x, y = _data(8)
    model = _mlp(6, 4, nn.BatchNorm1d(16), nn.Dropout(0.3)).eval()
    before, rng = _state(model), torch.get_rng_state()
    initial_loss_check(model, F.cross_entropy, x, y, math.log(4))
    gradient_check(model, F.cross_entropy, x[:4], y[:4])
    regularization_check(model, F.cross_entropy, x, y, lambda n, s: None)
    batch_independence_check(model, F.cross_entropy, x, y)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not model.training and torch.equal(torch.get_rng_state(), rng)


# ---- recipes and the command ----------------------------------------------------------------


def test_unregularized_turns_every_regularizer_off() -> None:
    recipe = load_recipe(None, ["model.name=mlp", "model.dropout=0.5", "optimizer.name=adamw",
                                "regularization.l2=0.1", "data.label_noise=0.2"])  # fmt: skip
    assert optimizer_weight_decay(recipe.optimizer) == 0.01  # AdamW's default
    off = unregularized(recipe)
    assert off.model.dropout == 0.0 and off.regularization.l2 == 0.0
    assert off.data.label_noise == 0.0 and optimizer_weight_decay(off.optimizer) == 0.0
    chained = load_recipe(None, ["optimizer.chain=[{name: add_l2, weight_decay: 0.1}]"])
    assert optimizer_weight_decay(chained.optimizer) == 0.1
    assert optimizer_weight_decay(unregularized(chained).optimizer) == 0.0


def _argv(*sets: str) -> list[str]:
    return [a for s in (*DIGITS, *sets) for a in ("--set", s)]


def test_check_command_passes_on_a_healthy_recipe(capsys) -> None:
    assert main(["check", *_argv()]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 5 and all(line.startswith(("PASS", "WARN")) for line in lines)
    assert "expected log(10) = 2.303" in lines[0]


def test_check_command_json_and_exit_4_when_a_check_fails(capsys) -> None:
    assert main(["check", "--json", "--steps", "30", *_argv("optimizer.lr=1e-9")]) == 4
    rows = json.loads(capsys.readouterr().out)
    status = {r["check"]: r["status"] for r in rows}
    assert status["overfit 20 examples"] == "fail" and status["gradient check"] == "pass"


# ---- bad input ------------------------------------------------------------------------------


def test_check_bad_examples_is_one_line(capsys) -> None:
    assert main(["check", "--examples", "1", *_argv()]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "check --examples: expected 2.." in err


@pytest.mark.parametrize("start,end", [("1", "1"), ("1", "0.1")])
def test_lr_find_range_not_increasing_is_one_line(capsys, start: str, end: str) -> None:
    assert main(["lr-find", "--start", start, "--end", end]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "expected 0 < --start < --end" in err


def test_probe_on_unknown_layer_names_the_closest(capsys) -> None:
    model = nn.Sequential(OrderedDict(fc1=nn.Linear(2, 3), act=nn.ReLU(), head=nn.Linear(3, 1)))
    with pytest.raises(ValueError) as err:
        Probes(model, layers=["haed"])
    msg = str(err.value)
    assert "\n" not in msg and "did you mean 'head'?" in msg and "valid: act, fc1, head" in msg


@pytest.mark.skipif(
    not Path("/usr/share/datasets/fashion-mnist").is_dir(),
    reason="real Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)",
)
def test_default_recipe_passes_every_check(capsys):
    """The built-in default recipe passes all five CS231n checks: its zero-initialized output
    layer gives exactly log 10 at init (it was 3.15 and a warning)."""
    from trainlab.cli import main

    assert main(["check"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 5 and all(line.startswith("PASS") for line in lines), lines
    assert lines[0].split()[4] == "2.303"
