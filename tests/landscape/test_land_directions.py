"""Directions (Li et al. 2018): filter normalization, orthogonal planes, A→B, trajectory PCA."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from land_cases import flat, tiny_mlp
from torch import nn

from trainlab.landscape.directions import (
    direction_between,
    filter_normalize,
    filter_normalized_direction,
    orthogonalize_against,
    pca_directions,
    plane_directions,
    random_direction,
    state_names,
    state_of,
)


def conv_net() -> nn.Module:
    torch.manual_seed(3)
    return nn.Sequential(
        nn.Conv2d(2, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(16, 5)
    )


def filter_norms(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(t.shape[0], -1).norm(dim=1)


def test_filter_normalization_gives_each_filter_its_weight_filter_norm() -> None:
    model = conv_net()
    weights = state_of(model, state_names(model))
    d = filter_normalized_direction(weights, torch.Generator().manual_seed(0))
    for w, v in zip(weights, d, strict=True):
        if w.dim() >= 2:  # conv (4, 2, 3, 3): 4 filters; linear (5, 16): 5 rows
            torch.testing.assert_close(filter_norms(v), filter_norms(w), rtol=1e-6, atol=0)
        else:  # biases and BatchNorm scale/shift ignored: zero
            assert torch.count_nonzero(v) == 0


def test_biasbn_filter_rescales_one_dimensional_tensors_to_their_norm() -> None:
    model = conv_net()
    weights = state_of(model, state_names(model))
    d = filter_normalize(random_direction(weights, torch.Generator().manual_seed(1)), weights,
                         biasbn="filter")  # fmt: skip
    for w, v in zip(weights, d, strict=True):
        if w.dim() == 1:
            torch.testing.assert_close(v.norm(), w.norm(), rtol=1e-6, atol=0)


def test_bn_running_statistics_can_be_part_of_the_direction() -> None:
    model = conv_net()
    names = state_names(model, bn_stats=True)
    assert names[-2:] == ("1.running_mean", "1.running_var")
    with torch.no_grad():
        model[1].running_mean.fill_(0.5)
    weights = state_of(model, names)
    d = filter_normalize(random_direction(weights, torch.Generator()), weights, biasbn="filter")
    torch.testing.assert_close(d[-2].norm(), torch.tensor(1.0), rtol=1e-6, atol=0)  # ‖0.5·1₄‖


def test_random_direction_is_seeded_and_independent_of_memory_format() -> None:
    w = [torch.randn(4, 3, 5, 5)]
    a = random_direction(w, torch.Generator().manual_seed(7))
    b = random_direction([w[0].contiguous(memory_format=torch.channels_last)],
                         torch.Generator().manual_seed(7))  # fmt: skip
    assert torch.equal(a[0], b[0])
    assert b[0].is_contiguous(memory_format=torch.channels_last) and not b[0].is_contiguous()


def test_plane_directions_are_orthogonal_and_stay_filter_normalized() -> None:
    model = conv_net()
    weights = state_of(model, state_names(model))
    d1, d2 = plane_directions(weights, torch.Generator().manual_seed(0), biasbn="filter")
    assert abs(float(flat(d1) @ flat(d2))) < 1e-5 * float(flat(d1).norm() * flat(d2).norm())
    for w, v in zip(weights, d2, strict=True):
        want = filter_norms(w) if w.dim() >= 2 else w.norm()
        got = filter_norms(v) if w.dim() >= 2 else v.norm()
        torch.testing.assert_close(got, want, rtol=1e-5, atol=0)


def test_unnormalized_plane_is_orthogonal_with_lengths_kept() -> None:
    w = [torch.randn(6, 3, dtype=torch.float64), torch.randn(6, dtype=torch.float64)]
    d1, d2 = plane_directions(w, torch.Generator().manual_seed(2), normalization="none")
    assert abs(float(flat(d1) @ flat(d2))) < 1e-12
    gen = torch.Generator().manual_seed(2)
    first, second = random_direction(w, gen), random_direction(w, gen)
    assert torch.equal(flat(d1), flat(first))  # the first direction is the raw Gaussian
    torch.testing.assert_close(flat(d2).norm(), flat(second).norm())  # length kept
    e = orthogonalize_against(second, first)
    assert abs(float(flat(e) @ flat(first))) < 1e-12
    with pytest.raises(ValueError, match="parallel"):
        orthogonalize_against(first, [2 * t for t in first])


def test_direction_between_two_models() -> None:
    a, b = tiny_mlp(), tiny_mlp()
    with torch.no_grad():
        for p in b.parameters():
            p.add_(1.0)
    names = state_names(a)
    d = direction_between(state_of(a, names), state_of(b, names))
    assert all(torch.allclose(t, torch.ones_like(t)) for t in d)
    with pytest.raises(ValueError, match="same tensors"):
        direction_between([torch.zeros(2)], [torch.zeros(3)])


def test_pca_finds_the_directions_a_trajectory_moved_along() -> None:
    gen = torch.Generator().manual_seed(0)
    q, _ = torch.linalg.qr(torch.randn(12, 2, generator=gen, dtype=torch.float64))
    u, v = q[:, 0], q[:, 1]
    final = torch.randn(12, generator=gen, dtype=torch.float64)
    # 8 checkpoints then the final one: big moves along u, smaller along v, uncorrelated
    # (two zero-mean Walsh patterns), so the principal axes of the centered cloud are u and v
    a = torch.tensor([3.0, 3, 3, 3, -3, -3, -3, -3, 0], dtype=torch.float64)
    b = torch.tensor([0.5, -0.5, 0.5, -0.5, 0.5, -0.5, 0.5, -0.5, 0], dtype=torch.float64)
    traj = [[(final + ai * u + bi * v)[:8].reshape(2, 4), (final + ai * u + bi * v)[8:]]
            for ai, bi in zip(a, b, strict=True)]  # fmt: skip
    pca = pca_directions(traj)
    d1, d2 = flat(pca.directions[0]), flat(pca.directions[1])
    assert abs(abs(float(d1 @ u)) - 1) < 1e-10 and abs(abs(float(d2 @ v)) - 1) < 1e-10
    ratio = torch.tensor([36 / 37, 1 / 37], dtype=torch.float64)  # variances 9 and 0.25
    torch.testing.assert_close(pca.explained_variance_ratio, ratio)
    # projecting θ_i − θ_final on the two directions gives back the path (up to sign)
    torch.testing.assert_close(pca.coordinates[:, 0].abs(), a.abs(), atol=1e-10, rtol=0)
    torch.testing.assert_close(pca.coordinates[:, 1].abs(), b.abs(), atol=1e-10, rtol=0)


def test_pca_needs_enough_checkpoints() -> None:
    with pytest.raises(ValueError, match="at least 3 states"):
        pca_directions([[torch.zeros(3)], [torch.ones(3)]])


@settings(max_examples=25, deadline=None)
@given(
    shape=st.lists(st.integers(1, 5), min_size=1, max_size=4).map(tuple),
    scale=st.floats(0.01, 100.0),
    seed=st.integers(0, 2**16),
)
def test_filter_normalization_ignores_the_scale_of_the_draw(shape, scale, seed) -> None:
    """Property: normalizing c·d gives the same direction as normalizing d (c > 0), with
    every filter at its weight filter's norm, for any tensor shape."""
    gen = torch.Generator().manual_seed(seed)
    w = [torch.randn(shape, generator=gen, dtype=torch.float64)]
    d = random_direction(w, gen)
    a = filter_normalize(d, w, biasbn="filter")
    b = filter_normalize([scale * d[0]], w, biasbn="filter")
    torch.testing.assert_close(a[0], b[0], rtol=1e-6, atol=1e-9)  # ε = 1e-10 in ‖d‖ + ε
    want = filter_norms(w[0]) if len(shape) >= 2 else w[0].norm()
    got = filter_norms(a[0]) if len(shape) >= 2 else a[0].norm()
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-9)
