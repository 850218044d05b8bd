"""Top eigenvalues, trace and spectral density on quadratics with a known spectrum."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from land_cases import SHAPES, flat, params_for, quadratic, spectrum_matrix

from trainlab.landscape import (
    eigenvalue_density,
    hutchinson_trace,
    make_hvp,
    top_eigenvalues_lanczos,
    top_eigenvalues_power,
)

# Largest magnitudes 10, -7, 4; largest values 10, 4, 2.5.
LAMBDAS = [10.0, -7.0, 4.0, 2.5, 1.0, 0.5, 0.2, -0.1, 0.05, 0.02, 0.01, 0.0]


def _setup(eigenvalues: list[float] = LAMBDAS, seed: int = 0):
    a, q = spectrum_matrix(eigenvalues, seed)
    params = params_for(SHAPES)
    return a, q, params, make_hvp(quadratic(a), params)


def _assert_eigenvectors(result, a: torch.Tensor, atol: float) -> None:
    for value, vector in zip(result.values, result.vectors, strict=True):
        v = flat(vector)
        assert abs(float(v.norm()) - 1) < 1e-10
        torch.testing.assert_close(a @ v, float(value) * v, rtol=0, atol=atol)


def test_power_iteration_finds_largest_magnitudes_with_deflation() -> None:
    a, _, params, hvp = _setup()
    result = top_eigenvalues_power(hvp, params, 3, max_iter=2000, tol=1e-15)
    torch.testing.assert_close(
        result.values, torch.tensor([10.0, -7.0, 4.0], dtype=torch.float64), atol=1e-8, rtol=0
    )
    # Eigenvector error is about the square root of the Rayleigh quotient's.
    _assert_eigenvectors(result, a, atol=1e-6)
    assert all(1 < it < 2000 for it in result.iterations)


def test_power_iteration_stops_on_tolerance() -> None:
    _, _, params, hvp = _setup()
    loose = top_eigenvalues_power(hvp, params, 1, max_iter=500, tol=1e-3)
    tight = top_eigenvalues_power(hvp, params, 1, max_iter=500, tol=1e-12)
    assert loose.iterations[0] < tight.iterations[0]
    assert abs(float(loose.values[0]) - 10.0) < 0.1
    capped = top_eigenvalues_power(hvp, params, 1, max_iter=3, tol=0.0)
    assert capped.iterations == [3]


@pytest.mark.parametrize(
    ("which", "expected"), [("largest", [10.0, 4.0, 2.5]), ("magnitude", [10.0, -7.0, 4.0])]
)
def test_lanczos_full_steps_gives_exact_top_eigenvalues(which: str, expected: list[float]) -> None:
    a, _, params, hvp = _setup()
    result = top_eigenvalues_lanczos(hvp, params, 3, steps=12, which=which)
    torch.testing.assert_close(
        result.values, torch.tensor(expected, dtype=torch.float64), atol=1e-8, rtol=0
    )
    _assert_eigenvectors(result, a, atol=1e-10)


def test_lanczos_few_steps_finds_separated_top_eigenvalues() -> None:
    n = 300
    eigenvalues = [50.0, 30.0, 20.0, *torch.linspace(-1, 1, n - 3).tolist()]
    a, _ = spectrum_matrix(eigenvalues)
    params = [torch.randn(n, dtype=torch.float64)]
    result = top_eigenvalues_lanczos(make_hvp(quadratic(a), params), params, 3, steps=30)
    torch.testing.assert_close(
        result.values, torch.tensor([50.0, 30.0, 20.0], dtype=torch.float64), atol=1e-8, rtol=0
    )


def test_lanczos_survives_breakdown_on_repeated_eigenvalues() -> None:
    # Only 3 distinct eigenvalues: the Krylov space of any start has dimension 3, so Lanczos
    # must restart with fresh orthogonal vectors to take all 12 steps.
    eigenvalues = [5.0] * 4 + [1.0] * 4 + [-2.0] * 4
    _, _, params, hvp = _setup(eigenvalues)
    result = top_eigenvalues_lanczos(hvp, params, 12, steps=12)
    torch.testing.assert_close(
        result.values,
        torch.tensor(sorted(eigenvalues, reverse=True), dtype=torch.float64),
        atol=1e-8,
        rtol=0,
    )


@settings(max_examples=25, deadline=None)
@given(st.lists(st.floats(-100, 100), min_size=2, max_size=10), st.integers(0, 1000))
def test_lanczos_with_n_steps_recovers_any_symmetric_spectrum(eigenvalues, seed) -> None:
    a, _ = spectrum_matrix(eigenvalues, seed)
    params = [torch.zeros(len(eigenvalues), dtype=torch.float64)]
    n = len(eigenvalues)
    result = top_eigenvalues_lanczos(make_hvp(quadratic(a), params), params, n, steps=n)
    expected = torch.tensor(sorted(eigenvalues, reverse=True), dtype=torch.float64)
    torch.testing.assert_close(
        result.values, expected, atol=1e-8 * (1 + max(map(abs, eigenvalues))), rtol=0
    )


def test_hutchinson_within_three_standard_errors_of_trace() -> None:
    a, _, params, hvp = _setup()
    estimate = hutchinson_trace(hvp, params, samples=200, seed=3)
    assert estimate.stderr > 0
    assert abs(estimate.mean - float(torch.trace(a))) < 3 * estimate.stderr
    # Its standard error matches the theory: Var(vᵀAv) = 2 Σ_{i≠j} A_ij².
    off = a - torch.diag(torch.diag(a))
    theory = math.sqrt(2 * float((off**2).sum()) / 200)
    assert 0.7 < estimate.stderr / theory < 1.3


def test_hutchinson_is_exact_for_diagonal_hessian() -> None:
    a = torch.diag(torch.tensor(LAMBDAS, dtype=torch.float64))
    params = params_for(SHAPES)
    estimate = hutchinson_trace(make_hvp(quadratic(a), params), params, samples=5)
    assert estimate.mean == pytest.approx(sum(LAMBDAS), abs=1e-12)
    assert estimate.stderr == pytest.approx(0.0, abs=1e-12)


def test_density_integrates_to_one_with_mean_trace_over_n_and_mass_at_clusters() -> None:
    gen = torch.Generator().manual_seed(0)
    clusters = {-1.0: 30, 2.0: 20, 8.0: 10}  # center -> size; n = 60
    eigenvalues = [
        c + 0.01 * float(torch.randn(1, generator=gen))
        for c, k in clusters.items()
        for _ in range(k)
    ]
    n = len(eigenvalues)
    a, _ = spectrum_matrix(eigenvalues)
    params = [torch.zeros(n, dtype=torch.float64)]
    starts = 8
    density = eigenvalue_density(
        make_hvp(quadratic(a), params), params, steps=20, starts=starts, seed=1
    )
    dx = float(density.grid[1] - density.grid[0])
    assert float(density.density.sum()) * dx == pytest.approx(1.0, abs=1e-3)
    torch.testing.assert_close(
        density.weights.sum(1), torch.ones(starts).double(), atol=1e-12, rtol=0
    )
    # The mean of the density is the average of vᵀAv/n over the starts: its expectation is
    # tr(A)/n and its standard deviation √(2 Σ_{i≠j} A_ij² / starts) / n.
    mean = float((density.grid * density.density).sum()) * dx
    off = a - torch.diag(torch.diag(a))
    sd = math.sqrt(2 * float((off**2).sum()) / starts) / n
    assert abs(mean - float(torch.trace(a)) / n) < 4 * sd
    for center, size in clusters.items():
        window = (density.grid - center).abs() < 0.5
        mass = float(density.density[window].sum()) * dx
        assert mass == pytest.approx(size / n, abs=0.12)
    outside = torch.stack([(density.grid - c).abs() < 0.5 for c in clusters]).any(0)
    assert float(density.density[~outside].sum()) * dx < 0.01
