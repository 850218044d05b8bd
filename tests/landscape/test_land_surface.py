"""Surfaces: closed forms on a quadratic, exact interpolation ends, vmap == loop, BatchNorm
recomputation, resuming from a partial .npz, and the user's model left untouched."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from land_cases import F64, data, spectrum_matrix, tiny_mlp
from torch import Tensor, nn

from trainlab.landscape.directions import plane_directions, state_names, state_of
from trainlab.landscape.evaluate import PointEvaluator, choose
from trainlab.landscape.surface import (
    SplitData,
    grid_axis,
    interpolation_surface,
    line_surface,
    load_surface,
    plane_surface,
)

EVALUATORS = ["loop", "vmap"]


class Quadratic(nn.Module):
    """Outputs its parameter for every example: with `half_quadratic` as the loss, L(θ) = ½θᵀAθ."""

    def __init__(self, theta: Tensor) -> None:
        super().__init__()
        self.theta = nn.Parameter(theta.clone())

    def forward(self, x: Tensor) -> Tensor:
        return self.theta.expand(x.shape[0], -1)


def quadratic_case() -> tuple[nn.Module, Tensor, callable]:
    a, _ = spectrum_matrix([4.0, 2.0, 1.0, 0.5, 0.1, 0.01])
    model = Quadratic(torch.randn(6, generator=torch.Generator().manual_seed(4), dtype=F64))

    def half_quadratic(out: Tensor, y: Tensor) -> Tensor:
        return 0.5 * torch.einsum("bi,ij,bj->b", out, a, out).mean()

    return model, a, half_quadratic


def small_conv() -> nn.Module:
    torch.manual_seed(1)
    model = nn.Sequential(
        nn.Conv2d(1, 3, 3, padding=1), nn.BatchNorm2d(3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(3 * 4 * 4, 4),
    )  # fmt: skip
    with torch.no_grad():
        model[1].running_mean.uniform_(-0.3, 0.3)
        model[1].running_var.uniform_(0.5, 2.0)
    return model


def images(n: int = 20, seed: int = 5) -> tuple[Tensor, Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, 1, 8, 8, generator=gen), torch.randint(0, 4, (n,), generator=gen)


def snapshot(model: nn.Module) -> dict:
    return {"state": copy.deepcopy(model.state_dict(keep_vars=False)), "training": model.training,
            "grads": [p.grad for p in model.parameters()]}  # fmt: skip


def assert_untouched(model: nn.Module, before: dict) -> None:
    for k, v in model.state_dict().items():
        assert torch.equal(v, before["state"][k]) and v.dtype == before["state"][k].dtype, k
    assert model.training == before["training"]
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize("evaluator", EVALUATORS)
def test_plane_on_a_quadratic_equals_the_closed_form(evaluator: str) -> None:
    model, a, loss = quadratic_case()
    theta = model.theta.detach()
    gen = torch.Generator().manual_seed(0)
    d1, d2 = plane_directions([theta], gen, normalization="none")
    axis = grid_axis(-1.0, 1.0, 5)
    x = torch.zeros(3, 1, dtype=F64)
    y = torch.zeros(3, 1, dtype=F64)
    s = plane_surface(model, loss, {"q": SplitData([(x, y)])}, (d1, d2), axis, evaluator=evaluator)
    for j, beta in enumerate(axis):
        for i, alpha in enumerate(axis):
            w = theta + alpha * d1[0] + beta * d2[0]
            assert s.loss["q"][j, i] == pytest.approx(float(0.5 * w @ a @ w), rel=1e-12)
    assert np.isnan(s.acc["q"]).all()  # regression targets: no accuracy


def test_line_on_a_quadratic_is_a_parabola() -> None:
    model, a, loss = quadratic_case()
    theta = model.theta.detach()
    d = torch.randn(6, dtype=F64, generator=torch.Generator().manual_seed(9))
    alphas = np.array([-2.0, -0.5, 0.0, 1.0, 3.0])
    x = torch.zeros(2, 1, dtype=F64)
    s = line_surface(model, loss, {"q": SplitData([(x, x)])}, [d], alphas)
    want = [float(0.5 * (theta + t * d) @ a @ (theta + t * d)) for t in alphas]
    np.testing.assert_allclose(s.loss["q"], want, rtol=1e-12)


def model_loss(model: nn.Module, x: Tensor, y: Tensor) -> float:
    net = copy.deepcopy(model).eval()
    with torch.no_grad():
        return float(F.cross_entropy(net(x), y).double())


@pytest.mark.parametrize("evaluator", EVALUATORS)
def test_interpolation_reproduces_both_ends_exactly(evaluator: str) -> None:
    model_a = tiny_mlp()
    model_b = copy.deepcopy(model_a)
    with torch.no_grad():
        for t in [*model_b.parameters(), model_b[1].running_mean]:
            t.add_(0.3 * torch.randn_like(t))
    x, y = data()
    alphas = np.array([-0.5, 0.0, 0.25, 1.0, 1.5])  # also outside [0, 1]
    s = interpolation_surface(model_a, model_b, F.cross_entropy, {"train": SplitData([(x, y)])},
                              alphas, evaluator=evaluator)  # fmt: skip
    assert s.loss["train"][1] == model_loss(model_a, x, y)
    assert s.loss["train"][3] == model_loss(model_b, x, y)


def test_interpolation_rejects_different_architectures() -> None:
    x, y = data()
    other = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 3)).double()
    with pytest.raises(ValueError, match="different architectures"):
        interpolation_surface(tiny_mlp(), other, F.cross_entropy,
                              {"t": SplitData([(x, y)])}, np.array([0.0, 1.0]))  # fmt: skip


@pytest.mark.parametrize("bn", ["eval", "recompute"])
def test_vectorized_and_point_by_point_surfaces_agree(bn: str) -> None:
    model = small_conv()
    x, y = images()
    names = state_names(model)
    theta = state_of(model, names)
    d1, d2 = plane_directions(theta, torch.Generator().manual_seed(0))
    stats = [(x[:10], y[:10]), (x[10:], y[10:])]
    ev = PointEvaluator(model, F.cross_entropy, [(x[:8], y[:8]), (x[8:], y[8:])], names,
                        [theta, d1, d2], bn=bn, stats_batches=stats, chunk=4)  # fmt: skip
    axis = np.linspace(-1, 1, 4)
    coeffs = np.array([[1.0, a, b] for b in axis for a in axis])
    loop, vec = ev.loop(coeffs), ev.vectorized(coeffs)
    np.testing.assert_allclose(vec.loss, loop.loss, atol=1e-5, rtol=0)
    np.testing.assert_allclose(vec.acc, loop.acc, atol=1e-12)
    picked = choose(ev, coeffs)  # the timing probe returns values of the points it measured
    np.testing.assert_allclose(picked.metrics.loss, loop.loss[picked.indices], atol=1e-5)


def test_recompute_matches_statistics_re_estimated_by_hand() -> None:
    model = small_conv()
    x, y = images()
    names = state_names(model)
    theta = state_of(model, names)
    d1, d2 = plane_directions(theta, torch.Generator().manual_seed(1))
    stats = [(x[:10], y[:10]), (x[10:], y[10:])]
    ev = PointEvaluator(model, F.cross_entropy, [(x, y)], names, [theta, d1, d2],
                        bn="recompute", stats_batches=stats)  # fmt: skip
    got = ev.vectorized(np.array([[1.0, 0.5, -0.25]])).loss[0]
    net = copy.deepcopy(model)
    with torch.no_grad():
        for p, t, a, b in zip(net.parameters(), theta, d1, d2, strict=True):
            p.copy_(t + 0.5 * a - 0.25 * b)
        net[1].reset_running_stats()
        net[1].momentum = None
        net.train()
        for xs, _ in stats:
            net(xs)
        want = F.cross_entropy(net.eval()(x), y).item()
    assert got == pytest.approx(want, abs=1e-5)


class Stop(Exception):
    pass


def test_a_partial_npz_resumes_and_gives_the_full_surface(tmp_path: Path) -> None:
    model = small_conv()
    x, y = images()
    theta = state_of(model, state_names(model))
    dirs = plane_directions(theta, torch.Generator().manual_seed(0))
    splits = {"test": SplitData([(x, y)])}
    axis = grid_axis(-1, 1, 5)
    full = plane_surface(model, F.cross_entropy, splits, dirs, axis, evaluator="loop", chunk=4)

    def stop_after_first_chunk(done: int, total: int) -> None:
        raise Stop

    path = tmp_path / "plane.npz"
    with pytest.raises(Stop):
        plane_surface(model, F.cross_entropy, splits, dirs, axis, path=path, evaluator="loop",
                      chunk=4, progress=stop_after_first_chunk)  # fmt: skip
    partial = load_surface(path)
    assert 0 < np.isfinite(partial.loss["test"]).sum() < 25
    seen: list[int] = []
    resumed = plane_surface(model, F.cross_entropy, splits, dirs, axis, path=path,
                            evaluator="loop", chunk=4,
                            progress=lambda done, total: seen.append(done))  # fmt: skip
    assert seen[0] > 2  # the first chunk of the rerun adds to the saved points
    np.testing.assert_array_equal(resumed.loss["test"], full.loss["test"])
    np.testing.assert_array_equal(load_surface(path).loss["test"], full.loss["test"])
    with pytest.raises(ValueError, match="other settings"):  # other directions: no silent mix
        plane_surface(model, F.cross_entropy, splits, dirs[::-1], axis, path=path)


@pytest.mark.parametrize("evaluator", EVALUATORS)
@pytest.mark.parametrize("bn", ["eval", "recompute"])
def test_the_model_is_left_untouched(evaluator: str, bn: str) -> None:
    model = small_conv().train()
    x, y = images()
    before = snapshot(model)
    names = state_names(model, bn_stats=bn == "eval")
    theta = state_of(model, names)
    dirs = plane_directions(theta, torch.Generator().manual_seed(0), biasbn="filter")
    split = {"s": SplitData([(x, y)], stats_batches=[(x, y)])}
    plane_surface(model, F.cross_entropy, split, dirs, grid_axis(-1, 1, 3), names=names, bn=bn,
                  evaluator=evaluator)  # fmt: skip
    other = small_conv()
    interpolation_surface(model, other, F.cross_entropy, split, np.array([0.0, 0.5, 1.0]), bn=bn,
                          evaluator=evaluator)  # fmt: skip
    assert_untouched(model, before)


@pytest.mark.parametrize(("lo", "hi", "n", "match"), [(-1, 1, 1, "at least 2"),
                                                      (1, 1, 5, "lo < hi")])  # fmt: skip
def test_bad_grids_are_rejected(lo: float, hi: float, n: int, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        grid_axis(lo, hi, n)
