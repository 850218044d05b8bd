"""Hessian of a loss of parameters: products, top eigenvalues, trace and spectral density.

H = ∇²L(θ) is never formed: every routine needs only v ↦ Hv, the Hessian-vector product,
which costs about two gradient evaluations (Pearlmutter 1994, "Fast exact multiplication by
the Hessian"). On top of it, as in PyHessian (Yao et al. 2020):

- `hvp_double_backward` — reverse-over-reverse: g(θ) = ∇L with `create_graph=True`, then
  Hv = ∇_θ ⟨g(θ), v⟩. With `keep_graph=True` the graph of g is built once and reused for every
  v (the fast path; memory grows with the number of examples); otherwise it is rebuilt batch by
  batch on each call (memory of one batch).
- `hvp_forward_over_reverse` — `torch.func.jvp` of `torch.func.grad`: Hv = d/dt ∇L(θ + t v)
  at t = 0, one batch at a time, nothing kept between calls.
- `top_eigenvalues_power` — power iteration with deflation; `top_eigenvalues_lanczos` —
  Lanczos (1950) with full reorthogonalization and Ritz values.
- `hutchinson_trace` — tr(H) = E[vᵀHv] for Rademacher v (Hutchinson 1989).
- `eigenvalue_density` — stochastic Lanczos quadrature (Ubaru, Chen & Saad 2017; Ghorbani,
  Krishnan & Xiao 2019, "An Investigation into Neural Net Optimization via Hessian Eigenvalue
  Density").

Linear algebra runs on flat vectors of all n parameters; vectors handed back to the caller
are parameter lists aligned with θ.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Literal, NamedTuple

import torch
from torch import Tensor
from torch.func import grad, jvp

from trainlab.landscape import _vectors as vec
from trainlab.landscape.loss import ParamFn, ParamLoss

HVP = Callable[[Sequence[Tensor]], list[Tensor]]
HVP_METHODS: tuple[str, ...] = ("double_backward", "rebuild", "func")
Seed = int | torch.Generator | None


def _terms(loss: ParamFn) -> tuple[ParamFn, ...]:
    """The summands of L: a `ParamLoss`'s weighted batches, or L itself."""
    return loss.terms if isinstance(loss, ParamLoss) else (loss,)


def _leaves(params: Sequence[Tensor]) -> list[Tensor]:
    return [p.detach().requires_grad_(True) for p in params]


def _check_vector(v: Sequence[Tensor], params: Sequence[Tensor]) -> list[Tensor]:
    v = list(v)
    if len(v) != len(params) or any(a.shape != b.shape for a, b in zip(v, params, strict=True)):
        shapes = [tuple(p.shape) for p in params]
        raise ValueError(f"v must be a list of tensors shaped like the parameters {shapes}")
    return v


def _gradient(term: ParamFn, leaves: list[Tensor]) -> list[Tensor | None]:
    """∇ℓ(θ) with its graph (create_graph=True); None for parameters ℓ does not use."""
    return list(torch.autograd.grad(term(leaves), leaves, create_graph=True, allow_unused=True))


def _add(a: Tensor | None, b: Tensor | None) -> Tensor | None:
    return b if a is None else a if b is None else a + b


def _backward_dot(
    gradient: Sequence[Tensor | None], leaves: list[Tensor], v: list[Tensor], retain: bool
) -> list[Tensor]:
    """∇_θ ⟨g(θ), v⟩, skipping the parts of g that do not depend on θ (their Hessian is 0)."""
    live = [(g, u) for g, u in zip(gradient, v, strict=True) if g is not None and g.requires_grad]
    out: Sequence[Tensor | None] = [None] * len(leaves)
    if live:
        out = torch.autograd.grad(
            [g for g, _ in live],
            leaves,
            [u for _, u in live],
            retain_graph=retain,
            allow_unused=True,
        )
    return [torch.zeros_like(p) if h is None else h for h, p in zip(out, leaves, strict=True)]


def hvp_double_backward(loss: ParamFn, params: Sequence[Tensor], *, keep_graph: bool = True) -> HVP:
    """v ↦ H(θ)v by double backward (Pearlmutter 1994): Hv = ∇_θ ⟨∇_θ L(θ), v⟩.

    keep_graph=True builds g = Σ_b ∇ℓ_b with `create_graph=True` once, here, and each call
    back-propagates ⟨g, v⟩ through it with `retain_graph=True`: one backward per product, but
    the graphs of all batches stay in memory. keep_graph=False rebuilds g batch by batch on
    every call (a forward and two backwards per batch, memory of one batch).
    """
    leaves = _leaves(params)
    terms = _terms(loss)
    if keep_graph:
        gradient: list[Tensor | None] = [None] * len(leaves)
        for term in terms:
            gradient = [_add(a, b) for a, b in zip(gradient, _gradient(term, leaves), strict=True)]

        def hvp_kept(v: Sequence[Tensor]) -> list[Tensor]:
            return _backward_dot(gradient, leaves, _check_vector(v, leaves), retain=True)

        return hvp_kept

    def hvp_rebuilt(v: Sequence[Tensor]) -> list[Tensor]:
        v = _check_vector(v, leaves)
        total = [torch.zeros_like(p) for p in leaves]
        for term in terms:
            out = _backward_dot(_gradient(term, leaves), leaves, v, retain=False)
            total = [t + h for t, h in zip(total, out, strict=True)]
        return total

    return hvp_rebuilt


def hvp_forward_over_reverse(loss: ParamFn, params: Sequence[Tensor]) -> HVP:
    """v ↦ H(θ)v as the directional derivative of the gradient: Hv = d/dt ∇L(θ + t v)|_{t=0},
    `torch.func.jvp(torch.func.grad(ℓ_b), (θ,), (v,))` summed over batches (forward-over-reverse;
    torch 2.13 has no `torch.func.hvp`). Layers must support forward-mode AD."""
    primal = [p.detach() for p in params]
    terms = _terms(loss)

    def hvp(v: Sequence[Tensor]) -> list[Tensor]:
        v = _check_vector(v, primal)
        total = [torch.zeros_like(p) for p in primal]
        for term in terms:
            _, out = jvp(grad(term), (primal,), (v,))
            total = [t + h for t, h in zip(total, out, strict=True)]
        return total

    return hvp


def make_hvp(loss: ParamFn, params: Sequence[Tensor], method: str = "double_backward") -> HVP:
    """A Hessian-vector product by name: "double_backward" (graph built once, the fast path),
    "rebuild" (double backward, graph rebuilt per call) or "func" (forward-over-reverse)."""
    if method == "double_backward":
        return hvp_double_backward(loss, params, keep_graph=True)
    if method == "rebuild":
        return hvp_double_backward(loss, params, keep_graph=False)
    if method == "func":
        return hvp_forward_over_reverse(loss, params)
    raise ValueError(f"hvp method must be one of {HVP_METHODS}, got {method!r}")


def _flat_operator(hvp: HVP, params: Sequence[Tensor]) -> Callable[[Tensor], Tensor]:
    like = [p.detach() for p in params]
    return lambda v: vec.flatten(hvp(vec.unflatten(v, like)))


class Eigenpairs(NamedTuple):
    """Eigenvalues (k,) and eigenvectors (k parameter lists of unit total norm).

    `iterations[i]` is the number of Hessian-vector products spent on pair i (power
    iteration) or in total (Lanczos)."""

    values: Tensor
    vectors: list[list[Tensor]]
    iterations: list[int]


def _check_k(k: int, n: int) -> None:
    if not 1 <= k <= n:
        raise ValueError(f"k must be in [1, {n}] (the number of parameters), got {k}")


def top_eigenvalues_power(
    hvp: HVP,
    params: Sequence[Tensor],
    k: int = 1,
    *,
    max_iter: int = 100,
    tol: float = 1e-3,
    seed: Seed = 0,
) -> Eigenpairs:
    """The k eigenvalues of largest magnitude |λ| by power iteration with deflation.

    For pair i: start from a Gaussian v, and repeat v ← P Hv / ‖P Hv‖ where P projects out the
    eigenvectors already found (deflation by orthogonalization, as PyHessian, Yao et al. 2020);
    λ is the Rayleigh quotient vᵀHv of the current v. Stop when |λ_t − λ_{t−1}| ≤ tol·|λ_{t−1}|
    or after `max_iter` products. Convergence goes as (|λ_{i+1}| / |λ_i|)^(2t) for λ; power
    iteration finds the largest |λ| (a large negative eigenvalue comes before a small positive
    one) and stalls when ±λ tie. Values are returned in the order found.
    """
    like = [p.detach() for p in params]
    n = vec.numel(like)
    _check_k(k, n)
    if max_iter < 1:
        raise ValueError(f"max_iter must be >= 1, got {max_iter}")
    op = _flat_operator(hvp, like)
    gen = vec.make_generator(seed, like[0].device)
    found = torch.empty(0, n, dtype=like[0].dtype, device=like[0].device)
    values: list[float] = []
    iterations: list[int] = []
    for _ in range(k):
        v = vec.orthogonalize(vec.gaussian(n, like[0], gen), found)
        v = v / v.norm()
        value, steps = math.nan, 0
        for steps in range(1, max_iter + 1):
            w = vec.orthogonalize(op(v), found)
            new = float(v @ w)
            norm = w.norm()
            converged = steps > 1 and abs(new - value) <= tol * abs(value)
            value = new
            if converged or norm == 0:
                break
            v = w / norm
        found = torch.cat([found, v[None]])
        values.append(value)
        iterations.append(steps)
    vectors = [[t.clone() for t in vec.unflatten(row, like)] for row in found]
    return Eigenpairs(torch.tensor(values, dtype=torch.float64), vectors, iterations)


class LanczosResult(NamedTuple):
    """Tridiagonal T = Vᵀ H V (m, m) in float64 and the orthonormal Krylov basis V (m, n)."""

    tridiagonal: Tensor
    basis: Tensor


def lanczos(
    op: Callable[[Tensor], Tensor], start: Tensor, steps: int, seed: Seed = 0
) -> LanczosResult:
    """m = `steps` Lanczos iterations (Lanczos 1950) from `start`, with full reorthogonalization.

    v₁ = start/‖start‖; w = Hv_j − α_j v_j − β_{j−1} v_{j−1} with α_j = v_jᵀHv_j, then w is
    orthogonalized against all previous v (twice) and β_j = ‖w‖, v_{j+1} = w/β_j. Without the
    reorthogonalization, rounding makes the v lose orthogonality and T grows spurious copies
    of converged eigenvalues. If β_j vanishes (the Krylov space is invariant), the next v is a
    random vector orthogonal to all previous ones and T gets β_j = 0 — its new block adds
    nothing to quadrature weights on v₁. m is capped at n. Memory: the (m, n) basis.
    """
    n = start.numel()
    m = min(int(steps), n)
    if m < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    gen = vec.make_generator(seed, start.device)
    basis = torch.zeros(m, n, dtype=start.dtype, device=start.device)
    alphas: list[float] = []
    betas: list[float] = []
    v = start / start.norm()
    scale = 0.0
    for j in range(m):
        basis[j] = v
        w = op(v)
        alpha = float(v @ w)
        alphas.append(alpha)
        if j == m - 1:
            break
        w = w - alpha * v - (betas[-1] * basis[j - 1] if j > 0 else 0.0)
        w = vec.orthogonalize(w, basis[: j + 1])
        beta = float(w.norm())
        scale = max(scale, abs(alpha), beta)
        if beta <= math.sqrt(n) * torch.finfo(start.dtype).eps * scale:
            beta = 0.0
            w = vec.orthogonalize(vec.gaussian(n, start, gen), basis[: j + 1])
            v = w / w.norm()
        else:
            v = w / beta
        betas.append(beta)
    t = torch.diag(torch.tensor(alphas, dtype=torch.float64))
    if betas:
        off = torch.tensor(betas, dtype=torch.float64)
        t = t + torch.diag(off, 1) + torch.diag(off, -1)
    return LanczosResult(t, basis)


def top_eigenvalues_lanczos(
    hvp: HVP,
    params: Sequence[Tensor],
    k: int = 1,
    *,
    steps: int | None = None,
    which: Literal["largest", "magnitude"] = "largest",
    seed: Seed = 0,
) -> Eigenpairs:
    """The k largest eigenvalues (or largest |λ|, which="magnitude") as Ritz values of m Lanczos
    steps from a Gaussian start: T = Vᵀ H V = S diag(θ) Sᵀ by `torch.linalg.eigh`, Ritz vectors
    V S. Extreme Ritz values converge first; m = n gives H's spectrum up to rounding.
    Default m = max(2k + 20, 30), capped at n.
    """
    like = [p.detach() for p in params]
    n = vec.numel(like)
    _check_k(k, n)
    if which not in ("largest", "magnitude"):
        raise ValueError(f"which must be 'largest' or 'magnitude', got {which!r}")
    m = min(max(2 * k + 20, 30) if steps is None else steps, n)
    if m < k:
        raise ValueError(f"steps must be >= k = {k}, got {steps}")
    gen = vec.make_generator(seed, like[0].device)
    start = vec.gaussian(n, like[0], gen)
    result = lanczos(_flat_operator(hvp, like), start, m, gen)
    theta, s = torch.linalg.eigh(result.tridiagonal)
    key = theta if which == "largest" else theta.abs()
    order = torch.argsort(key, descending=True)[:k]
    ritz = s[:, order].T.to(result.basis.dtype) @ result.basis  # (k, n)
    vectors = [[t.clone() for t in vec.unflatten(row, like)] for row in ritz]
    return Eigenpairs(theta[order], vectors, [result.basis.shape[0]] * k)


class TraceEstimate(NamedTuple):
    """Hutchinson estimate of tr(H): `mean` of the samples vᵀHv and its standard error
    std/√N (N−1 in the std); `samples` (N,) in float64."""

    mean: float
    stderr: float
    samples: Tensor


def hutchinson_trace(
    hvp: HVP, params: Sequence[Tensor], samples: int = 100, *, seed: Seed = 0
) -> TraceEstimate:
    """tr(H) ≈ (1/N) Σ_i v_iᵀ H v_i with v_i Rademacher (±1 entries), Hutchinson (1989).

    Unbiased since E[vvᵀ] = I; Var(vᵀHv) = 2 Σ_{i≠j} H_ij², the smallest among i.i.d. vectors
    with E[vvᵀ] = I, and zero for diagonal H (v_i² = 1): the estimate is then exact.
    """
    like = [p.detach() for p in params]
    if samples < 2:
        raise ValueError(f"samples must be >= 2 (for a standard error), got {samples}")
    n = vec.numel(like)
    op = _flat_operator(hvp, like)
    gen = vec.make_generator(seed, like[0].device)
    values = []
    for _ in range(samples):
        v = vec.rademacher(n, like[0], gen)
        values.append(float(v @ op(v)))
    draws = torch.tensor(values, dtype=torch.float64)
    return TraceEstimate(float(draws.mean()), float(draws.std() / math.sqrt(samples)), draws)


class SpectralDensity(NamedTuple):
    """Smoothed eigenvalue density φ on `grid`, from Lanczos nodes (starts, m) and weights
    (starts, m) (each row sums to 1), Gaussian width `sigma`. ∫φ = 1 when the grid covers
    the nodes ± a few σ; ∫λφ(λ) ≈ tr(H)/n."""

    grid: Tensor
    density: Tensor
    nodes: Tensor
    weights: Tensor
    sigma: float


def eigenvalue_density(
    hvp: HVP,
    params: Sequence[Tensor],
    *,
    steps: int = 90,
    starts: int = 1,
    grid_points: int = 1000,
    sigma: float | None = None,
    seed: Seed = 0,
) -> SpectralDensity:
    """Hessian eigenvalue density by stochastic Lanczos quadrature (Ubaru et al. 2017;
    Ghorbani et al. 2019; Yao et al. 2020).

    The spectral density φ(t) = (1/n) Σ_i δ(t − λ_i) is estimated, for each of `starts`
    Rademacher vectors v normalized to 1, by the Gauss quadrature of vᵀ δ(t − H) v given by
    m = `steps` Lanczos steps: nodes θ_j (Ritz values, eigenvalues of T) with weights
    τ_j = (s_j)₁², the squared first components of T's eigenvectors. Because E[vvᵀ] = I/n the
    average over starts estimates φ; each δ is replaced by a Gaussian of width σ:
    φ_σ(t) = (1/starts) Σ_l Σ_j τ_j^l 𝒩(t; θ_j^l, σ²). Default σ = 1% of the node range (a
    small absolute width when all nodes coincide); the grid spans the nodes ± 5σ.
    """
    like = [p.detach() for p in params]
    if starts < 1 or grid_points < 2:
        raise ValueError(f"need starts >= 1 and grid_points >= 2, got {starts}, {grid_points}")
    n = vec.numel(like)
    op = _flat_operator(hvp, like)
    gen = vec.make_generator(seed, like[0].device)
    nodes, weights = [], []
    for _ in range(starts):
        result = lanczos(op, vec.rademacher(n, like[0], gen), steps, gen)
        theta, s = torch.linalg.eigh(result.tridiagonal)
        nodes.append(theta)
        weights.append(s[0] ** 2)
    node_t, weight_t = torch.stack(nodes), torch.stack(weights)  # m = min(steps, n) for all
    lo, hi = float(node_t.min()), float(node_t.max())
    if sigma is None:
        sigma = 0.01 * (hi - lo) if hi > lo else 1e-3 * max(abs(hi), 1.0)
    if sigma <= 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    grid = torch.linspace(lo - 5 * sigma, hi + 5 * sigma, grid_points, dtype=torch.float64)
    return SpectralDensity(
        grid, smoothed_density(grid, node_t, weight_t, sigma), node_t, weight_t, sigma
    )


def smoothed_density(grid: Tensor, nodes: Tensor, weights: Tensor, sigma: float) -> Tensor:
    """(1/L) Σ_l Σ_j w_lj 𝒩(t; θ_lj, σ²) at each grid point t, for nodes/weights (L, m)."""
    z = (grid[:, None] - nodes.reshape(1, -1)) / sigma
    gauss = torch.exp(-0.5 * z**2) / (sigma * math.sqrt(2 * math.pi))
    return gauss @ weights.reshape(-1) / nodes.shape[0]
