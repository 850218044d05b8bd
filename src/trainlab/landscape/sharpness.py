"""Sharpness of a minimum: SAM's ascent-step sharpness, and a report of the top Hessian
eigenvalue, the Hessian trace and SAM sharpness on two disjoint random example subsets (their
spread says whether the number of examples is large enough for the figures to be stable).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

import torch
from torch import Tensor, nn

from trainlab.landscape.hessian import (
    HVP_METHODS,
    hutchinson_trace,
    make_hvp,
    top_eigenvalues_power,
)
from trainlab.landscape.loss import (
    BatchNormMode,
    LossFn,
    ParamFn,
    loss_of_params,
    model_params,
    split_batches,
)


@dataclass(frozen=True)
class SamSharpness:
    """L(θ + ε) − L(θ) for the ascent step ε = ρ g/‖g‖ (`value`), with L(θ), ‖g‖ and ρ."""

    value: float
    loss: float
    grad_norm: float
    rho: float


def sam_sharpness(loss: ParamFn, params: Sequence[Tensor], rho: float = 0.05) -> SamSharpness:
    """SAM's sharpness max_{‖ε‖₂≤ρ} L(θ+ε) − L(θ), with the maximizer replaced by its first-order
    approximation ε̂ = ρ g/‖g‖, g = ∇L(θ) (Foret et al. 2021, eq. 2): returns L(θ+ε̂) − L(θ).

    This is a lower bound on the true maximum (ε̂ is feasible). At a stationary point (g = 0)
    ε̂ is undefined and 0 is returned, although the maximum is ≈ ½ρ²λ_max there.
    """
    if rho <= 0:
        raise ValueError(f"rho must be > 0, got {rho}")
    leaves = [p.detach().requires_grad_(True) for p in params]
    value = loss(leaves)
    g = torch.autograd.grad(value, leaves, allow_unused=True)
    g = [torch.zeros_like(p) if t is None else t for t, p in zip(g, leaves, strict=True)]
    norm = float(torch.sqrt(sum((t.double() ** 2).sum() for t in g)))
    base = float(value.detach())
    if norm == 0.0:
        return SamSharpness(0.0, base, 0.0, rho)
    with torch.no_grad():
        perturbed = [p + (rho / norm) * t for p, t in zip(leaves, g, strict=True)]
        ascent = float(loss(perturbed))
    return SamSharpness(ascent - base, base, norm, rho)


@dataclass(frozen=True)
class SubsetSharpness:
    """Sharpness measures on one example subset (`indices` into the dataset)."""

    top_eigenvalue: float
    power_iterations: int
    trace: float
    trace_stderr: float
    sam: float
    loss: float
    indices: Tensor


@dataclass(frozen=True)
class SharpnessReport:
    """Both subsets' measures and, per measure, the relative spread |a − b| / ((|a| + |b|)/2)
    (0 when both are 0)."""

    n_examples: int
    subsets: tuple[SubsetSharpness, SubsetSharpness]
    spread: dict[str, float]

    def summary(self) -> str:
        """A table: one row per measure with both subsets' values and their relative spread."""
        a, b = self.subsets
        lines = [
            f"sharpness on 2 disjoint subsets of {self.n_examples} examples:",
            f"  {'measure':15s} {'subset 1':>12s} {'subset 2':>12s}   {'spread':>7s}",
        ]
        for key in ("top_eigenvalue", "trace", "sam", "loss"):
            va, vb = getattr(a, key), getattr(b, key)
            lines.append(f"  {key:15s} {va:12.6g} {vb:12.6g}   {self.spread[key]:7.1%}")
        return "\n".join(lines)


def relative_spread(a: float, b: float) -> float:
    """|a − b| / ((|a| + |b|)/2); 0 when a = b = 0."""
    scale = (abs(a) + abs(b)) / 2
    return 0.0 if scale == 0 else abs(a - b) / scale


def _subset_sharpness(
    model: nn.Module,
    loss_fn: LossFn,
    x: Tensor,
    y: Tensor,
    indices: Tensor,
    *,
    batch_size: int,
    rho: float,
    max_iter: int,
    tol: float,
    trace_samples: int,
    hvp_method: str,
    batchnorm: BatchNormMode,
    seed: int,
) -> SubsetSharpness:
    batches = split_batches(x[indices], y[indices], batch_size)
    loss = loss_of_params(model, loss_fn, batches, batchnorm=batchnorm)
    params = model_params(model)
    hvp = make_hvp(loss, params, hvp_method)
    top = top_eigenvalues_power(hvp, params, 1, max_iter=max_iter, tol=tol, seed=seed)
    trace = hutchinson_trace(hvp, params, trace_samples, seed=seed + 1)
    sam = sam_sharpness(loss, params, rho)
    return SubsetSharpness(
        top_eigenvalue=float(top.values[0]),
        power_iterations=top.iterations[0],
        trace=trace.mean,
        trace_stderr=trace.stderr,
        sam=sam.value,
        loss=sam.loss,
        indices=indices,
    )


def sharpness_report(
    model: nn.Module,
    loss_fn: LossFn,
    dataset_x: Tensor,
    dataset_y: Tensor,
    n_examples: int = 1000,
    batch_size: int = 500,
    seed: int = 0,
    *,
    rho: float = 0.05,
    max_iter: int = 100,
    tol: float = 1e-3,
    trace_samples: int = 50,
    hvp_method: str = "double_backward",
    batchnorm: BatchNormMode = "eval",
) -> SharpnessReport:
    """Top Hessian eigenvalue (largest |λ|, power iteration), Hessian trace (Hutchinson) and SAM
    sharpness (ρ = `rho`) of the mean loss on two disjoint random subsets of `n_examples`
    examples each, drawn with `seed`; and the relative spread of each measure between them.

    A large spread means `n_examples` is too small for the figures to describe the model
    rather than the sample. Needs 2·n_examples ≤ len(dataset). The model is not modified.
    """
    if n_examples < 1:
        raise ValueError(f"n_examples must be >= 1, got {n_examples}")
    if len(dataset_x) != len(dataset_y):
        raise ValueError(f"dataset_x has {len(dataset_x)} examples but dataset_y {len(dataset_y)}")
    if 2 * n_examples > len(dataset_x):
        raise ValueError(
            f"n_examples must be <= {len(dataset_x) // 2} (two disjoint subsets of a dataset of "
            f"{len(dataset_x)}), got {n_examples}"
        )
    if hvp_method not in HVP_METHODS:
        raise ValueError(f"hvp_method must be one of {HVP_METHODS}, got {hvp_method!r}")
    gen = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(dataset_x), generator=gen)
    measure = partial(
        _subset_sharpness,
        model,
        loss_fn,
        dataset_x,
        dataset_y,
        batch_size=batch_size,
        rho=rho,
        max_iter=max_iter,
        tol=tol,
        trace_samples=trace_samples,
        hvp_method=hvp_method,
        batchnorm=batchnorm,
        seed=seed,
    )
    first, second = (
        measure(idx.sort().values)
        for idx in (order[:n_examples], order[n_examples : 2 * n_examples])
    )
    subsets = (first, second)
    spread = {
        key: relative_spread(getattr(subsets[0], key), getattr(subsets[1], key))
        for key in ("top_eigenvalue", "trace", "sam", "loss")
    }
    return SharpnessReport(n_examples, subsets, spread)
