"""Shared problems for the optimizer tests: a tiny tanh MLP regression in float64."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor


def make_data(seed: int = 0, n: int = 32) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g, dtype=torch.float64)
    y = torch.randn(n, 2, generator=g, dtype=torch.float64)
    return x, y


def make_model(seed: int = 1, dtype: torch.dtype = torch.float64) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(4, 2)).to(dtype)


def loss_of(model: torch.nn.Module, x: Tensor, y: Tensor) -> Tensor:
    return torch.nn.functional.mse_loss(model(x), y)


def lsq_grads(params: list[Tensor], x: Tensor, y: Tensor) -> list[Tensor]:
    """Gradients of 0.5 * mean_rows ||x W + b - y||^2 + 0.05 * sum(tanh(W)) (a mildly
    non-quadratic least squares), by hand (autograd is slow on a loaded 2-core box)."""
    w, b = params[0], params[1]
    r = x @ w + b - y
    gw = x.T @ r / x.shape[0] + 0.05 * (1 - torch.tanh(w) ** 2)
    return [gw, r.mean(dim=0)]


def run_torch_style(
    model: torch.nn.Module, opt: torch.optim.Optimizer, steps: int, seed: int = 0
) -> list[Tensor]:
    """Train ``steps`` steps of `lsq_grads` on fixed data (grads set by hand); return params."""
    x, y = make_data(seed)
    params = [model[0].weight, model[0].bias]
    for _ in range(steps):
        opt.zero_grad()
        with torch.no_grad():
            grads = lsq_grads([params[0].T, params[1]], x, y)
        params[0].grad, params[1].grad = grads[0].T.contiguous(), grads[1]
        opt.step()
    return [p.detach().clone() for p in params]


def rel_err(a: list[Tensor], b: list[Tensor]) -> float:
    num = torch.sqrt(sum(((x - y) ** 2).sum() for x, y in zip(a, b, strict=True)))
    den = torch.sqrt(sum((y**2).sum() for y in b))
    return float(num.detach() / den.detach())


def functional_run(transform, params: list[Tensor], grad_fn: Callable, steps: int) -> list[Tensor]:
    """Run a Transform functionally: params <- params + updates."""
    params = [p.clone() for p in params]
    state = transform.init(params)
    for _ in range(steps):
        grads = grad_fn(params)
        updates, state = transform.update(grads, state, params)
        params = [p + u for p, u in zip(params, updates, strict=True)]
    return params


def quadratic_grad_fn(seed: int = 0, dim: int = 6) -> tuple[list[Tensor], Callable]:
    """Params and the gradient of f = 0.5 * sum_i (x_i - c_i)^T H_i (x_i - c_i) over 2 tensors."""
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(dim, dim, generator=g, dtype=torch.float64)
    h = a @ a.T / dim + 0.1 * torch.eye(dim, dtype=torch.float64)
    c1 = torch.randn(dim, generator=g, dtype=torch.float64)
    c2 = torch.randn(3, 2, generator=g, dtype=torch.float64)
    params = [
        torch.randn(dim, generator=g, dtype=torch.float64),
        torch.zeros(3, 2, dtype=torch.float64),
    ]

    def grad_fn(ps: list[Tensor]) -> list[Tensor]:
        return [h @ (ps[0] - c1), 2.0 * (ps[1] - c2)]

    return params, grad_fn
