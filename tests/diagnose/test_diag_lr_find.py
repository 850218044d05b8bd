"""Tests of the LR range test (Smith 2017; fastai's lr_find) and the halving search."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainlab.data import InMemoryLoader, TensorSplit
from trainlab.diagnose.lr_find import (
    halving_search,
    lr_range_test,
    lr_sweep,
    plot_lr_find,
    smooth_losses,
    suggest_lrs,
)

N, D = 1024, 8


def _problem() -> tuple[torch.Tensor, torch.Tensor, float]:
    """Linear regression with anisotropic features; returns X, y and the SGD stability bound
    2/λ_max of the Hessian of F.mse_loss (mean of squares, so H = 2·X̃ᵀX̃/N, X̃ = [X, 1])."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(N, D, generator=g) * torch.linspace(0.5, 2.0, D)
    y = x @ torch.randn(D, 1, generator=g) + 0.1 * torch.randn(N, 1, generator=g)
    xt = torch.cat([x, torch.ones(N, 1)], 1).double()
    lam_max = torch.linalg.eigvalsh(2 * xt.T @ xt / N).max().item()
    return x, y, 2.0 / lam_max


def _make(lr: float) -> tuple[nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(1)
    model = nn.Linear(D, 1)
    return model, torch.optim.SGD(model.parameters(), lr=lr)


def _loader(x: torch.Tensor, y: torch.Tensor, seed: int) -> InMemoryLoader:
    return InMemoryLoader(TensorSplit(x, y), 128, seed=seed)


def test_bound_matches_autograd_hessian() -> None:
    x, y, bound = _problem()
    xd, yd = x.double(), y.double()

    def loss(theta: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(xd @ theta[:D, None] + theta[D], yd)

    h = torch.autograd.functional.hessian(loss, torch.zeros(D + 1, dtype=torch.float64))
    assert bound == pytest.approx(2.0 / torch.linalg.eigvalsh(h).max().item(), rel=1e-9)


def test_sweep_is_the_geometric_sequence() -> None:
    lrs = lr_sweep(1e-7, 10.0, 100)
    assert lrs == [1e-7 * (10.0 / 1e-7) ** (i / 99) for i in range(100)]
    assert lrs[0] == 1e-7 and lrs[-1] == pytest.approx(10.0, rel=1e-12)
    x, y, _ = _problem()
    model, opt = _make(1e-3)
    seen: list[float] = []

    class Spy(torch.optim.SGD):
        def step(self, closure=None):  # type: ignore[no-untyped-def, override]
            seen.extend(group["lr"] for group in self.param_groups)
            return super().step(closure)

    opt = Spy([{"params": [model.weight]}, {"params": [model.bias]}], lr=0.5)
    result = lr_range_test(model, opt, F.mse_loss, _loader(x, y, 0), start=1e-6, end=1e-3, steps=20)
    expected = lr_sweep(1e-6, 1e-3, 20)
    assert result.lrs == expected
    assert seen == [lr for lr in expected for _ in range(2)]  # every param group, every step
    assert result.stop_reason.startswith("reached end")
    assert [g["lr"] for g in opt.param_groups] == [0.5, 0.5]


def test_smoothing_matches_hand_computation() -> None:
    beta = 0.9
    losses = [4.0, 2.0, 3.0, 1.0]
    avg0 = 0.1 * 4.0
    avg1 = 0.9 * avg0 + 0.1 * 2.0
    avg2 = 0.9 * avg1 + 0.1 * 3.0
    avg3 = 0.9 * avg2 + 0.1 * 1.0
    hand = [avg0 / (1 - 0.9), avg1 / (1 - 0.81), avg2 / (1 - 0.729), avg3 / (1 - 0.6561)]
    assert smooth_losses(losses, beta) == pytest.approx(hand, rel=1e-12)
    assert smooth_losses(losses, beta)[0] == pytest.approx(4.0)  # bias correction
    assert smooth_losses([2.5] * 7, 0.98) == pytest.approx([2.5] * 7)


def test_range_test_smoothing_equals_pure_function() -> None:
    x, y, _ = _problem()
    model, opt = _make(1e-3)
    r = lr_range_test(model, opt, F.mse_loss, _loader(x, y, 0), start=1e-4, end=1e-2, steps=30)
    assert r.smoothed == pytest.approx(smooth_losses(r.losses, 0.98), rel=1e-12)


def test_stops_at_divergence_and_suggestions_below_stability_bound() -> None:
    x, y, bound = _problem()
    model, opt = _make(1e-3)
    r = lr_range_test(model, opt, F.mse_loss, _loader(x, y, 0), start=1e-3, end=10.0)
    assert len(r.lrs) < 100 and r.stop_reason.startswith("diverged")
    assert r.smoothed[-1] > 4.0 * min(r.smoothed[:-1])
    assert all(s <= 4.0 * min(r.smoothed[: i + 1]) for i, s in enumerate(r.smoothed[:-1]))
    assert bound < r.lrs[-1] < 10 * bound  # diverges only past 2/λ_max
    assert set(r.suggestions) == {"steepest", "minimum/10", "valley"}
    for name, lr in r.suggestions.items():
        assert 1e-3 < lr < bound, name
    assert r.spread == pytest.approx(max(r.suggestions.values()) / min(r.suggestions.values()))
    assert "steepest" in r.describe() and "spread" in r.describe()


def test_non_finite_loss_stops_the_sweep() -> None:
    x, y, _ = _problem()
    model, opt = _make(1e-3)
    r = lr_range_test(
        model, opt, F.mse_loss, _loader(x, y, 0), start=1e-3, end=1e6, steps=60, diverge=math.inf
    )
    assert r.stop_reason.startswith(("loss became", "smoothed loss became"))
    assert len(r.lrs) < 60


def test_restoration_is_bit_identical() -> None:
    x, y, _ = _problem()
    torch.manual_seed(3)
    model = nn.Sequential(nn.Linear(D, 16), nn.Tanh(), nn.Dropout(0.1), nn.Linear(16, 1))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for xb, yb in _loader(x, y, 5).epoch(0):  # give Adam some state first
        opt.zero_grad()
        F.mse_loss(model(xb), yb).backward()
        opt.step()
    model.eval()
    before_model = copy.deepcopy(model.state_dict())
    before_opt = copy.deepcopy(opt.state_dict())
    rng = torch.get_rng_state()
    lr_range_test(model, opt, F.mse_loss, _loader(x, y, 0), start=1e-5, end=10.0, steps=50)
    assert not model.training
    assert torch.equal(torch.get_rng_state(), rng)
    after_model = model.state_dict()
    assert after_model.keys() == before_model.keys()
    assert all(torch.equal(after_model[k], before_model[k]) for k in before_model)
    after_opt = opt.state_dict()
    assert after_opt["param_groups"] == before_opt["param_groups"]
    assert after_opt["state"].keys() == before_opt["state"].keys()
    for k, st in before_opt["state"].items():
        for name, value in st.items():
            got = after_opt["state"][k][name]
            assert torch.equal(got, value) if torch.is_tensor(value) else got == value


# Spread (max/min) of each rule's suggestion over loader seeds 0-7, measured: steepest 1.22,
# minimum/10 1.32, valley 1.00. The sweep's grid steps by (1e4)^(1/99) = 1.097, so each bound
# is the measured spread plus one grid step.
SEED_SPREAD = {"steepest": 1.22 * 1.1, "minimum/10": 1.32 * 1.1, "valley": 1.1}


def test_suggestions_stable_across_loader_seeds() -> None:
    x, y, bound = _problem()
    runs = []
    for seed in range(8):
        model, opt = _make(1e-3)
        runs.append(
            lr_range_test(model, opt, F.mse_loss, _loader(x, y, seed), start=1e-3).suggestions
        )
    assert set(runs[0]) == set(SEED_SPREAD)
    for name, limit in SEED_SPREAD.items():
        values = [r[name] for r in runs]
        assert max(values) / min(values) < limit, (name, values)
        assert max(values) < bound, (name, values)  # every suggestion is below 2/λ_max


def test_halving_search_finds_stable_lr_below_bound() -> None:
    x, y, bound = _problem()
    h = halving_search(_make, F.mse_loss, _loader(x, y, 0), lr0=10.0, steps=200)
    assert h.lr is not None and bound / 2 < h.lr < bound
    assert [t.lr for t in h.trail] == [10.0 / 2**k for k in range(len(h.trail))]
    assert all(t.diverged for t in h.trail[:-1]) and not h.trail[-1].diverged
    last = h.trail[-1]
    assert math.isfinite(last.final_loss) and last.final_loss < last.initial_loss
    other = halving_search(_make, F.mse_loss, _loader(x, y, 7), lr0=10.0, steps=200)
    assert other.lr == h.lr
    assert "chosen lr" in h.describe()


def test_plot_writes_png(tmp_path) -> None:  # type: ignore[no-untyped-def]
    x, y, _ = _problem()
    model, opt = _make(1e-3)
    r = lr_range_test(model, opt, F.mse_loss, _loader(x, y, 0), start=1e-3)
    path = plot_lr_find(r, tmp_path / "lr.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_suggest_lrs_simple_curve() -> None:
    lrs = lr_sweep(1e-3, 1.0, 31)
    curve = [10.0] * 10 + [10.0 - k for k in range(1, 10)] + [0.5] + [1.0 + k for k in range(11)]
    s = suggest_lrs(lrs, curve)
    assert s["minimum/10"] == pytest.approx(lrs[19] / 10)
    # from skip = 3 (loss 10) to the minimum 0.5: half the fall is level 5.25, first met at 14
    assert s["valley"] == lrs[14]
    assert lrs[10] <= s["steepest"] <= lrs[19]
    assert suggest_lrs(lrs[:1], curve[:1]) == {}


@pytest.mark.parametrize(
    ("kwargs", "word"),
    [
        ({"start": 1.0, "end": 1.0}, "start must be below end"),
        ({"start": 10.0, "end": 1.0}, "start must be below end"),
        ({"start": 0.0}, "start must be"),
        ({"start": -1e-3}, "start must be"),
        ({"steps": 1}, "steps must be"),
        ({"smooth": 1.0}, "smooth must be"),
    ],
)
def test_bad_input_is_one_line(kwargs: dict, word: str) -> None:
    x, y, _ = _problem()
    model, opt = _make(1e-3)
    with pytest.raises(ValueError) as err:
        lr_range_test(model, opt, F.mse_loss, _loader(x, y, 0), **kwargs)
    message = str(err.value)
    assert message.startswith(word) and "\n" not in message


def test_halving_bad_input_is_one_line() -> None:
    x, y, _ = _problem()
    with pytest.raises(ValueError, match=r"^lr0 must be") as err:
        halving_search(_make, F.mse_loss, _loader(x, y, 0), lr0=0.0)
    assert "\n" not in str(err.value)
