"""Mode-connecting curves (Garipov et al. 2018): the curve formulas, curve training on a loss with
a ring of minima, BatchNorm statistics recomputed along t, and bad run directories."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor, nn

from trainlab.data import InMemoryLoader, TensorSplit
from trainlab.landscape.curves import (
    curve_coefficients,
    evaluate_curve,
    make_curve,
    recompute_batchnorm,
    segment,
    train_curve,
)
from trainlab.nn.zoo import mlp
from trainlab.run.config import Recipe, dump_recipe
from trainlab.run.trained import RunDirError, check_same_architecture, open_run
from trainlab.train import Position, save_checkpoint

F64 = torch.float64


def _params(seed: int) -> list[Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(3, 4, generator=gen, dtype=F64), torch.randn(5, generator=gen, dtype=F64)]


# ---------------------------------------------------------------- formulas


@pytest.mark.parametrize("kind", ["bezier", "polychain"])
@pytest.mark.parametrize("bends", [1, 3])
def test_curve_reproduces_its_endpoints_exactly(kind: str, bends: int) -> None:
    w1, w2 = _params(0), _params(1)
    curve = make_curve(w1, w2, kind, bends)
    with torch.no_grad():
        for p in curve.bends:
            p.add_(torch.randn_like(p))  # bends away from the segment
    for got, want in zip(curve.at(0.0), w1, strict=True):
        assert torch.equal(got, want)
    for got, want in zip(curve.at(1.0), w2, strict=True):
        assert torch.equal(got, want)


@pytest.mark.parametrize("t", [0.1, 0.5, 0.8])
def test_quadratic_bezier_is_the_paper_formula(t: float) -> None:
    w1, theta, w2 = _params(0), _params(1), _params(2)
    curve = make_curve(w1, w2, "bezier", 1)
    with torch.no_grad():
        for p, q in zip(curve.bends, theta, strict=True):
            p.copy_(q)
    want = [
        (1 - t) ** 2 * a + 2 * t * (1 - t) * b + t**2 * c
        for a, b, c in zip(w1, theta, w2, strict=True)
    ]
    for got, expected in zip(curve.at(t), want, strict=True):
        torch.testing.assert_close(got, expected, rtol=1e-14, atol=1e-14)
    if t == 0.5:  # φ(½) = ¼ w1 + ½ θ + ¼ w2
        mid = [0.25 * a + 0.5 * b + 0.25 * c for a, b, c in zip(w1, theta, w2, strict=True)]
        torch.testing.assert_close(curve.at(0.5), mid, rtol=1e-14, atol=1e-14)


def test_polychain_passes_through_its_bend_at_the_middle() -> None:
    w1, theta, w2 = _params(0), _params(1), _params(2)
    curve = make_curve(w1, w2, "polychain", 1)
    with torch.no_grad():
        for p, q in zip(curve.bends, theta, strict=True):
            p.copy_(q)
    torch.testing.assert_close(curve.at(0.5), theta, rtol=0, atol=0)
    quarter = [0.5 * a + 0.5 * b for a, b in zip(w1, theta, strict=True)]
    torch.testing.assert_close(curve.at(0.25), quarter, rtol=1e-14, atol=1e-14)
    three_quarters = [0.5 * b + 0.5 * c for b, c in zip(theta, w2, strict=True)]
    torch.testing.assert_close(curve.at(0.75), three_quarters, rtol=1e-14, atol=1e-14)


@settings(max_examples=60, deadline=None)
@given(
    kind=st.sampled_from(["bezier", "polychain"]),
    bends=st.integers(1, 4),
    t=st.floats(0.0, 1.0),
)
def test_initial_curve_is_the_segment(kind: str, bends: int, t: float) -> None:
    coeffs = curve_coefficients(kind, t, bends)
    assert min(coeffs) >= 0.0
    assert math.isclose(sum(coeffs), 1.0, rel_tol=1e-12)
    w1, w2 = _params(0), _params(1)
    got, want = make_curve(w1, w2, kind, bends).at(t), segment(w1, w2).at(t)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_bad_curve_arguments_fail_with_one_line() -> None:
    w1 = _params(0)
    with pytest.raises(ValueError, match="curve must be one of"):
        make_curve(w1, w1, "spline")
    with pytest.raises(ValueError, match="same shapes"):
        make_curve(w1, [w1[0], torch.zeros(6, dtype=F64)])
    with pytest.raises(ValueError, match=r"t must be in \[0, 1\]"):
        segment(w1, w1).at(1.5)


# ---------------------------------------------------------------- training on a ring of minima


class Ring(nn.Module):
    """L(w) = (‖w‖² − 1)², minimal on the unit circle: a ring of minima in R²."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(2, dtype=F64))

    def forward(self, x: Tensor) -> Tensor:
        return ((self.w**2).sum() - 1) ** 2 * torch.ones_like(x)


def _ring_loss(out: Tensor, y: Tensor) -> Tensor:
    return out.mean()


def test_curve_training_finds_a_low_loss_path_between_two_minima() -> None:
    model = Ring()
    before = copy.deepcopy(model.state_dict())
    angle = math.radians(160)  # asymmetric, so the segment is not a critical point for θ
    w1 = [torch.tensor([1.0, 0.0], dtype=F64)]
    w2 = [torch.tensor([math.cos(angle), math.sin(angle)], dtype=F64)]
    split = TensorSplit(torch.zeros(32, 1, dtype=F64), torch.zeros(32, dtype=torch.int64))
    loader = InMemoryLoader(split, 8)
    curve = make_curve(w1, w2, "bezier", 1)
    history = train_curve(model, curve, loader, _ring_loss, epochs=40, lr=0.05, momentum=0.5)
    on_curve = evaluate_curve(model, curve, train=split, test=split, loss_fn=_ring_loss)
    on_line = evaluate_curve(model, segment(w1, w2), train=split, test=split, loss_fn=_ring_loss)
    assert on_line.train_loss.max() > 0.9  # the segment passes 0.17 from the origin
    assert on_curve.train_loss.max() < 0.1  # the curve goes round the ring
    assert max(on_curve.train_loss[0], on_curve.train_loss[-1]) < 1e-30  # endpoints untouched
    assert len(on_curve.t) == 61 and history[-1].loss < history[0].loss
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())


# ---------------------------------------------------------------- BatchNorm along t


def _bn_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 2)).double()


def test_recomputed_statistics_are_the_example_weighted_batch_averages() -> None:
    model = _bn_net()
    before = copy.deepcopy(model.state_dict())
    params = [torch.randn_like(p) for p in model.parameters()]
    gen = torch.Generator().manual_seed(1)
    batches = [torch.randn(n, 3, generator=gen, dtype=F64) for n in (10, 6)]
    buffers = recompute_batchnorm(model, params, batches)
    hidden = [F.linear(x, params[0], params[1]) for x in batches]  # the BatchNorm's inputs
    mean = torch.cat(hidden).mean(0)
    var = (10 * hidden[0].var(0) + 6 * hidden[1].var(0)) / 16  # unbiased batch variances
    torch.testing.assert_close(buffers["1.running_mean"], mean, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(buffers["1.running_var"], var, rtol=1e-12, atol=1e-12)
    assert int(buffers["1.num_batches_tracked"]) == 2
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    assert model[1].momentum == 0.1


def test_evaluation_at_an_endpoint_uses_recomputed_statistics() -> None:
    """At t = 0 the curve is the endpoint with its BatchNorm statistics recomputed over the
    training inputs: the same as torch's cumulative average (momentum=None) over them."""
    model = _bn_net()
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(256, 3, generator=gen, dtype=F64)
    train = TensorSplit(x, torch.randint(0, 2, (256,), generator=gen))
    w1 = [p.detach() + 0.1 for p in model.parameters()]
    w2 = [torch.randn_like(p) for p in model.parameters()]
    profile = evaluate_curve(
        model, make_curve(w1, w2), train=train, test=train, loss_fn=F.cross_entropy, points=3
    )
    reference = copy.deepcopy(model)
    with torch.no_grad():
        for p, w in zip(reference.parameters(), w1, strict=True):
            p.copy_(w)
        reference[1].reset_running_stats()
        reference[1].momentum = None
        reference.train()
        for x in train.x.split(128):
            reference(x)
        reference.eval()
        out = reference(train.x)
    torch.testing.assert_close(profile.train_loss[0], F.cross_entropy(out, train.y).item())
    error = 1 - (out.argmax(1) == train.y).double().mean().item()
    assert profile.train_error[0] == pytest.approx(error)


# ---------------------------------------------------------------- run directories


def _fake_run(path, widths: list[int]):
    recipe = Recipe(model={"name": "mlp", "widths": widths}, data={"name": "digits"})
    path.mkdir()
    (path / "recipe.yaml").write_text(dump_recipe(recipe))
    model = mlp((1, 8, 8), 10, widths)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    save_checkpoint(path / "checkpoints", model, optimizer, Position())
    return path


def test_bad_run_directories_fail_with_one_line(tmp_path) -> None:
    with pytest.raises(RunDirError, match="no recipe.yaml") as err:
        open_run(tmp_path)
    assert "\n" not in str(err.value)
    (tmp_path / "recipe.yaml").write_text(dump_recipe(Recipe()))
    with pytest.raises(
        RunDirError, match="expected a run directory with .* found no usable checkpoint"
    ):
        open_run(tmp_path)
    a = open_run(_fake_run(tmp_path / "a", [8]))
    b = open_run(_fake_run(tmp_path / "b", [16]))
    check_same_architecture(a, open_run(_fake_run(tmp_path / "c", [8])))
    with pytest.raises(
        RunDirError, match=r"expected the same architecture; 1.bias has shape \(8,\) vs \(16,\)"
    ):
        check_same_architecture(a, b)
