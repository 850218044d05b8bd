"""SAM sharpness against its closed form on a quadratic; the two-subset sharpness report."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from land_cases import SHAPES, data, flat, params_for, quadratic, spectrum_matrix, tiny_mlp

from trainlab.landscape import (
    hutchinson_trace,
    loss_of_params,
    make_hvp,
    model_params,
    relative_spread,
    sam_sharpness,
    sharpness_report,
    split_batches,
    top_eigenvalues_power,
)


@pytest.mark.parametrize("rho", [1e-3, 0.05, 0.7])
def test_sam_sharpness_of_quadratic_matches_closed_form(rho: float) -> None:
    a, _ = spectrum_matrix([3.0, -2.0, 1.0, 0.5, 0.0, -0.1, 7.0, 2.0, 1.5, -4.0, 0.3, 0.2])
    b = torch.linspace(-1, 1, 12, dtype=torch.float64)
    params = params_for(SHAPES)
    w = flat(params)
    # g = Aw + b, ε = ρ g/‖g‖: L(w+ε) − L(w) = εᵀ(Aw + b) + ½ εᵀAε = ρ‖g‖ + ½ρ² gᵀAg/‖g‖².
    g = a @ w + b
    expected = rho * float(g.norm()) + 0.5 * rho**2 * float(g @ a @ g) / float(g @ g)
    result = sam_sharpness(quadratic(a, b), params, rho)
    assert result.value == pytest.approx(expected, rel=1e-12)
    assert result.grad_norm == pytest.approx(float(g.norm()), rel=1e-12)
    assert result.loss == pytest.approx(float(0.5 * w @ a @ w + b @ w), rel=1e-12)


def test_sam_sharpness_is_zero_at_a_stationary_point_and_rejects_bad_rho() -> None:
    a, _ = spectrum_matrix([1.0] * 12)
    params = [torch.zeros(s, dtype=torch.float64) for s in SHAPES]
    result = sam_sharpness(quadratic(a), params, 0.1)
    assert (result.value, result.grad_norm) == (0.0, 0.0)
    with pytest.raises(ValueError, match="rho must be > 0"):
        sam_sharpness(quadratic(a), params, 0.0)


def test_sharpness_report_two_disjoint_subsets() -> None:
    model = tiny_mlp()
    x, y = data(100)
    report = sharpness_report(
        model, F.cross_entropy, x, y, n_examples=40, batch_size=16, seed=3, trace_samples=20
    )
    first, second = report.subsets
    assert len(first.indices) == len(second.indices) == 40
    assert not set(first.indices.tolist()) & set(second.indices.tolist())
    # Each subset's figures are those of the functions applied to that subset by hand.
    for subset in report.subsets:
        batches = split_batches(x[subset.indices], y[subset.indices], 16)
        loss = loss_of_params(model, F.cross_entropy, batches)
        params = model_params(model)
        hvp = make_hvp(loss, params)
        top = top_eigenvalues_power(hvp, params, 1, tol=1e-3, seed=3)
        assert subset.top_eigenvalue == pytest.approx(float(top.values[0]), rel=1e-12)
        assert subset.trace == pytest.approx(hutchinson_trace(hvp, params, 20, seed=4).mean)
        assert subset.sam == pytest.approx(sam_sharpness(loss, params, 0.05).value, rel=1e-12)
    for key in ("top_eigenvalue", "trace", "sam", "loss"):
        a, b = getattr(first, key), getattr(second, key)
        assert report.spread[key] == pytest.approx(abs(a - b) / ((abs(a) + abs(b)) / 2))
    header, *rows = report.summary().splitlines()[1:]
    assert header.split() == ["measure", "subset", "1", "subset", "2", "spread"]
    assert [r.split()[0] for r in rows] == ["top_eigenvalue", "trace", "sam", "loss"]
    assert float(rows[0].split()[1]) == pytest.approx(report.subsets[0].top_eigenvalue, rel=1e-5)
    again = sharpness_report(
        model, F.cross_entropy, x, y, n_examples=40, batch_size=16, seed=3, trace_samples=20
    )
    assert again.spread == report.spread


def test_sharpness_report_bad_sizes_fail_with_one_line() -> None:
    model = tiny_mlp()
    x, y = data(30)
    with pytest.raises(ValueError, match=r"n_examples must be <= 15 \(two disjoint subsets"):
        sharpness_report(model, F.cross_entropy, x, y, n_examples=16)
    with pytest.raises(ValueError, match="dataset_y"):
        sharpness_report(model, F.cross_entropy, x, y[:10], n_examples=5)
    with pytest.raises(ValueError, match="hvp_method must be one of"):
        sharpness_report(model, F.cross_entropy, x, y, n_examples=5, hvp_method="fast")


def test_relative_spread() -> None:
    assert relative_spread(0.0, 0.0) == 0.0
    assert relative_spread(1.0, 3.0) == pytest.approx(1.0)
    assert math.isclose(relative_spread(-2.0, 2.0), 2.0)
