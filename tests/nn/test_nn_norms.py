"""Normalization layers against torch's BatchNorm and naive formula implementations."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from trainlab.nn.norms import (
    BATCH_STAT_NORMS,
    NORMS,
    PAPER_D_MAX,
    PAPER_R_MAX,
    BatchRenorm1d,
    BatchRenorm2d,
    LinearRamp,
    apply_weight_norm,
    make_norm,
    renorm_correction,
)

CASES = [
    (BatchRenorm1d, nn.BatchNorm1d, (16, 6)),
    (BatchRenorm1d, nn.BatchNorm1d, (8, 6, 5)),
    (BatchRenorm2d, nn.BatchNorm2d, (4, 6, 5, 3)),
]


def _reduce_dims(x: torch.Tensor) -> list[int]:
    return [0, *range(2, x.ndim)]


def _channel_view(t: torch.Tensor, ndim: int) -> torch.Tensor:
    return t.view(1, -1, *([1] * (ndim - 2)))


# --- Batch Renorm == BatchNorm when r_max = 1, d_max = 0 -------------------------------------


@pytest.mark.parametrize("momentum", [0.2, None])
@pytest.mark.parametrize(("renorm_cls", "bn_cls", "shape"), CASES)
def test_batch_renorm_equals_batchnorm_over_training_steps(renorm_cls, bn_cls, shape, momentum):
    gen = torch.Generator().manual_seed(0)
    br = renorm_cls(shape[1], r_max=1.0, d_max=0.0, momentum=momentum).double()
    bn = bn_cls(shape[1], momentum=momentum).double()
    assert isinstance(br, BATCH_STAT_NORMS) and isinstance(bn, BATCH_STAT_NORMS)
    for step in range(6):
        x = torch.randn(shape, generator=gen, dtype=torch.float64) * 3 + 2
        x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
        y1, y2 = br(x1), bn(x2)
        g = torch.randn(shape, generator=gen, dtype=torch.float64)
        y1.backward(g)
        y2.backward(g)
        torch.testing.assert_close(y1, y2, rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(x1.grad, x2.grad, rtol=1e-9, atol=1e-10)
        torch.testing.assert_close(br.weight.grad, bn.weight.grad, rtol=1e-9, atol=1e-10)
        torch.testing.assert_close(br.bias.grad, bn.bias.grad, rtol=1e-9, atol=1e-10)
        torch.testing.assert_close(br.running_mean, bn.running_mean, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(br.running_var, bn.running_var, rtol=1e-12, atol=1e-12)
        assert int(br.num_batches_tracked) == int(bn.num_batches_tracked) == step + 1
        with torch.no_grad():  # the same SGD step on both, so γ and β move away from 1 and 0
            for a, b in ((br.weight, bn.weight), (br.bias, bn.bias)):
                a -= 0.3 * a.grad
                b -= 0.3 * b.grad
                a.grad = b.grad = None
    br.eval()
    bn.eval()
    x = torch.randn(shape, generator=gen, dtype=torch.float64)
    torch.testing.assert_close(br(x), bn(x), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(("renorm_cls", "bn_cls", "shape"), CASES)
def test_batch_renorm_inference_is_batchnorm_given_same_running_stats(renorm_cls, bn_cls, shape):
    gen = torch.Generator().manual_seed(1)
    c = shape[1]
    bn = bn_cls(c)
    with torch.no_grad():
        bn.running_mean.copy_(torch.randn(c, generator=gen))
        bn.running_var.copy_(torch.rand(c, generator=gen) * 3 + 0.1)
        bn.weight.copy_(torch.randn(c, generator=gen))
        bn.bias.copy_(torch.randn(c, generator=gen))
    br = renorm_cls(c)  # default (paper) ramps: inference does not depend on them
    br.load_state_dict(bn.state_dict())  # same buffer names: a BatchNorm checkpoint loads
    br.eval()
    bn.eval()
    x = torch.randn(shape, generator=gen)
    assert torch.equal(br(x), bn(x))
    expected = (x - _channel_view(bn.running_mean, x.ndim)) / torch.sqrt(
        _channel_view(bn.running_var, x.ndim) + bn.eps
    ) * _channel_view(bn.weight, x.ndim) + _channel_view(bn.bias, x.ndim)
    torch.testing.assert_close(br(x), expected)


# --- r and d: clipped, no gradient ------------------------------------------------------------


def test_batch_renorm_r_d_clipped_and_not_backpropagated():
    gen = torch.Generator().manual_seed(2)
    c, r_max, d_max, eps = 5, 1.5, 0.4, 1e-5
    br = BatchRenorm2d(c, r_max=r_max, d_max=d_max, eps=eps).double()
    with torch.no_grad():
        # Channel 0: stats match (r, d inside the limits); others far off (clipped both ways).
        br.running_mean.copy_(torch.tensor([1.0, 10.0, -10.0, 1.0, 1.0]))
        br.running_var.copy_(torch.tensor([4.0, 4.0, 4.0, 100.0, 0.01]))
        br.weight.copy_(torch.randn(c, generator=gen, dtype=torch.float64))
        br.bias.copy_(torch.randn(c, generator=gen, dtype=torch.float64))
    rm, rv = br.running_mean.clone(), br.running_var.clone()
    x = (torch.randn(16, c, 4, 4, generator=gen, dtype=torch.float64) * 2 + 1).requires_grad_()
    y = br(x)
    g = torch.randn(y.shape, generator=gen, dtype=torch.float64)
    y.backward(g)

    # Hand computation with r, d as constants.
    dims = _reduce_dims(x)
    xd = x.detach()
    mu_b = xd.mean(dims)
    sigma_b = torch.sqrt(xd.var(dims, correction=0) + eps)
    sigma = torch.sqrt(rv + eps)
    r = (sigma_b / sigma).clamp(1 / r_max, r_max)
    d = ((mu_b - rm) / sigma).clamp(-d_max, d_max)
    assert r.min() >= 1 / r_max - 1e-12 and r.max() <= r_max + 1e-12
    assert d.abs().max() <= d_max + 1e-12
    assert (r == r_max).any() and (r == 1 / r_max).any() and (d.abs() == d_max).any()
    assert ((r > 1 / r_max) & (r < r_max))[0] and (d.abs() < d_max)[0]  # channel 0 unclipped
    r_c, d_c = renorm_correction(mu_b, sigma_b, rm, sigma, r_max, d_max)
    torch.testing.assert_close(r_c, r)
    torch.testing.assert_close(d_c, d)
    assert not r_c.requires_grad and not d_c.requires_grad

    v = lambda t: _channel_view(t, 4)  # noqa: E731
    gamma, beta = br.weight.detach(), br.bias.detach()
    xhat_b = (xd - v(mu_b)) / v(sigma_b)
    torch.testing.assert_close(y, v(gamma) * (xhat_b * v(r) + v(d)) + v(beta))
    # dL/dx = γ r / σ_B · (g − mean(g) − x̂_B · mean(g x̂_B)): BatchNorm's backward times r.
    grad_x = v(gamma * r / sigma_b) * (
        g - g.mean(dims, keepdim=True) - xhat_b * (g * xhat_b).mean(dims, keepdim=True)
    )
    torch.testing.assert_close(x.grad, grad_x, rtol=1e-9, atol=1e-11)
    torch.testing.assert_close(br.weight.grad, (g * (xhat_b * v(r) + v(d))).sum(dims))
    torch.testing.assert_close(br.bias.grad, g.sum(dims))

    # The same formula with r, d differentiated through gives another gradient: the test bites.
    xx = x.detach().clone().requires_grad_()
    mu2, s2 = xx.mean(dims), torch.sqrt(xx.var(dims, correction=0) + eps)
    r2 = (s2 / sigma).clamp(1 / r_max, r_max)
    d2 = ((mu2 - rm) / sigma).clamp(-d_max, d_max)
    (v(gamma) * ((xx - v(mu2)) / v(s2) * v(r2) + v(d2)) + v(beta)).backward(g)
    assert not torch.allclose(xx.grad, x.grad)


# --- ramps, step counter, state_dict, dtypes ---------------------------------------------------


def test_paper_ramps():
    for step, expected in [(0, 1.0), (5000, 1.0), (22_500, 2.0), (40_000, 3.0), (10**6, 3.0)]:
        assert PAPER_R_MAX(step) == pytest.approx(expected)
    for step, expected in [(0, 0.0), (5000, 0.0), (15_000, 2.5), (25_000, 5.0), (10**6, 5.0)]:
        assert PAPER_D_MAX(step) == pytest.approx(expected)
    assert LinearRamp(1.0, 2.0, 10, 10)(9) == 1.0 and LinearRamp(1.0, 2.0, 10, 10)(10) == 2.0


def test_batch_renorm_step_counter_drives_limits_and_round_trips():
    br = BatchRenorm1d(3)
    assert br.current_limits() == (1.0, 0.0)
    br.num_batches_tracked.fill_(22_500)
    r_max, d_max = br.current_limits()
    assert r_max == pytest.approx(2.0) and d_max == pytest.approx(5 * 17_500 / 20_000)
    br(torch.randn(8, 3))
    state = br.state_dict()
    assert set(state) == {"weight", "bias", "running_mean", "running_var", "num_batches_tracked"}
    assert int(state["num_batches_tracked"]) == 22_501
    fresh = BatchRenorm1d(3)
    fresh.load_state_dict(state)
    assert fresh.current_limits() == br.current_limits()
    custom = BatchRenorm1d(3, r_max=lambda t: 1.0 + t, d_max=0.25)
    custom.num_batches_tracked.fill_(2)
    assert custom.current_limits() == (3.0, 0.25)


def test_batch_renorm_statistics_in_float32_under_bfloat16():
    gen = torch.Generator().manual_seed(3)
    x = (torch.randn(32, 4, 3, 3, generator=gen) * 5 + 100).to(torch.bfloat16)
    br, ref = BatchRenorm2d(4, r_max=2.0, d_max=1.0), BatchRenorm2d(4, r_max=2.0, d_max=1.0)
    y = br(x)
    y_ref = ref(x.float())
    assert y.dtype == torch.bfloat16
    assert br.running_mean.dtype == br.running_var.dtype == torch.float32
    assert torch.equal(br.running_mean, ref.running_mean)
    assert torch.equal(br.running_var, ref.running_var)
    assert torch.equal(y, y_ref.to(torch.bfloat16))


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(2, 6),
    c=st.integers(1, 5),
    spatial=st.lists(st.integers(1, 4), min_size=0, max_size=2),
    scale=st.floats(0.1, 10.0),
)
def test_batch_renorm_unit_limits_is_batch_norm_property(n, c, spatial, scale):
    shape = (n, c, *spatial)
    cls = BatchRenorm2d if len(spatial) == 2 else BatchRenorm1d
    x = torch.randn(shape, generator=torch.Generator().manual_seed(n * 31 + c), dtype=torch.float64)
    br = cls(c, r_max=1.0, d_max=0.0).double()
    y = br(x * scale)
    expected = F.batch_norm(x * scale, None, None, training=True, eps=br.eps)
    assert y.shape == x.shape and y.dtype == x.dtype
    torch.testing.assert_close(y, expected, rtol=1e-9, atol=1e-9)


# --- every norm against its naive formula -----------------------------------------------------


def _randomize_affine(m: nn.Module, gen: torch.Generator) -> None:
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype))


def _naive_normalize(x: torch.Tensor, dims: list[int], eps: float) -> torch.Tensor:
    mean = x.mean(dims, keepdim=True)
    var = ((x - mean) ** 2).mean(dims, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps)


def _naive(name: str, x: torch.Tensor, m: nn.Module, groups: int = 1) -> torch.Tensor:
    eps = 1e-5
    nd = x.ndim
    if name in ("batch", "batch_renorm"):
        xhat = _naive_normalize(x, _reduce_dims(x), eps)
    elif name == "layer" and nd == 2:  # per-feature affine over (N, C)
        return _naive_normalize(x, [1], eps) * m.weight + m.bias
    elif name == "instance":
        xhat = _naive_normalize(x, [2, 3], eps)
    else:  # "layer" on maps is one group; "group" splits C into groups
        n, c = x.shape[:2]
        xg = x.reshape(n, groups, -1)
        xhat = _naive_normalize(xg, [2], eps).reshape(x.shape)
    return xhat * _channel_view(m.weight, nd) + _channel_view(m.bias, nd)


@pytest.mark.parametrize(
    ("name", "dim", "kwargs", "groups"),
    [
        ("batch", 1, {}, 1),
        ("batch", 2, {}, 1),
        ("batch_renorm", 1, {"r_max": 1.0, "d_max": 0.0}, 1),
        ("batch_renorm", 2, {"r_max": 1.0, "d_max": 0.0}, 1),
        ("layer", 1, {}, 1),
        ("layer", 2, {}, 1),
        ("group", 1, {"num_groups": 3}, 3),
        ("group", 2, {"num_groups": 3}, 3),
        ("group", 2, {}, 2),  # default gcd(C=6, 8) = 2
        ("instance", 2, {}, 1),
    ],
)
def test_norm_matches_naive_formula(name, dim, kwargs, groups):
    gen = torch.Generator().manual_seed(4)
    c = 6
    m = make_norm(name, c, dim=dim, **kwargs).double()
    _randomize_affine(m, gen)
    shape = (10, c) if dim == 1 else (4, c, 5, 3)
    x = torch.randn(shape, generator=gen, dtype=torch.float64) * 3 - 1
    torch.testing.assert_close(m(x), _naive(name, x, m, groups), rtol=1e-10, atol=1e-10)


def test_none_norm_is_identity():
    x = torch.randn(3, 4)
    assert torch.equal(make_norm("none", 4, dim=1)(x), x)


@pytest.mark.parametrize(
    ("layer", "x_shape"),
    [(nn.Linear(5, 4), (3, 5)), (nn.Conv2d(3, 4, 3, padding=1), (2, 3, 6, 6))],
)
def test_weight_norm_is_g_v_over_norm_v(layer, x_shape):
    gen = torch.Generator().manual_seed(5)
    w0 = layer.weight.detach().clone()
    model = apply_weight_norm(nn.Sequential(layer))
    torch.testing.assert_close(layer.weight, w0)  # initialized to leave w unchanged
    chain = layer.parametrizations.weight
    g, v = chain.original0, chain.original1
    with torch.no_grad():
        g.copy_(torch.rand(g.shape, generator=gen) + 0.5)
        v.copy_(torch.randn(v.shape, generator=gen))
    assert g.shape == (v.shape[0], *[1] * (v.ndim - 1))  # one g per output unit
    norms = v.detach().flatten(1).norm(dim=1).view(g.shape)
    expected_w = g.detach() * v.detach() / norms
    torch.testing.assert_close(layer.weight, expected_w)
    x = torch.randn(x_shape, generator=gen)
    out = model(x)
    ref = (
        F.linear(x, expected_w, layer.bias)
        if isinstance(layer, nn.Linear)
        else F.conv2d(x, expected_w, layer.bias, padding=1)
    )
    torch.testing.assert_close(out, ref)
    # Each output unit's weight vector has norm g.
    torch.testing.assert_close(layer.weight.detach().flatten(1).norm(dim=1), g.detach().flatten())


def test_weight_norm_covers_every_linear_and_conv():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(8, 3))
    apply_weight_norm(model)
    names = {n for n, _ in model.named_parameters()}
    assert "0.parametrizations.weight.original0" in names
    assert "3.parametrizations.weight.original1" in names
    assert "1.weight" in names  # BatchNorm untouched


# --- bad input ---------------------------------------------------------------------------------


def test_unknown_norm_name_is_one_line_with_closest():
    with pytest.raises(ValueError) as err:
        make_norm("lyer", 4, dim=1)
    msg = str(err.value)
    assert "\n" not in msg and "unknown normalization 'lyer'" in msg
    assert "did you mean 'layer'" in msg and all(name in msg for name in NORMS)


@pytest.mark.parametrize(
    ("call", "fragment"),
    [
        (lambda: make_norm("group", 6, dim=2, num_groups=4), "num_groups must divide"),
        (lambda: make_norm("instance", 6, dim=1), "instance norm needs spatial inputs"),
        (lambda: make_norm("batch", 6, dim=3), "norm dim must be 1"),
        (lambda: BatchRenorm1d(3, r_max=0.5), "r_max must be >= 1"),
        (lambda: BatchRenorm1d(3, d_max=-1.0), "d_max must be >= 0"),
        (lambda: BatchRenorm1d(3, momentum=1.5), "momentum must be in [0, 1]"),
        (lambda: BatchRenorm2d(3)(torch.randn(4, 3)), "expects input of 4-D"),
        (lambda: BatchRenorm1d(3)(torch.randn(1, 3)), "more than 1 value per channel"),
    ],
)
def test_bad_norm_arguments_fail_in_one_line(call, fragment):
    with pytest.raises(ValueError) as err:
        call()
    assert fragment in str(err.value) and "\n" not in str(err.value)


def test_batch_renorm_affine_false():
    br = BatchRenorm2d(3, affine=False, r_max=1.0, d_max=0.0)
    x = torch.randn(4, 3, 2, 2)
    torch.testing.assert_close(br(x), F.batch_norm(x, None, None, training=True))
    assert list(br.parameters()) == [] and not math.isnan(float(br.running_var.sum()))
