"""Shared cases for the landscape tests: quadratics with a chosen spectrum, a tiny MLP."""

from __future__ import annotations

import torch
from torch import Tensor, nn

F64 = torch.float64
SHAPES = [(2, 3), (6,)]  # a quadratic over two parameter tensors, n = 12


def spectrum_matrix(eigenvalues: list[float], seed: int = 0) -> tuple[Tensor, Tensor]:
    """A = Q diag(λ) Qᵀ with a random orthogonal Q; returns (A, Q)."""
    gen = torch.Generator().manual_seed(seed)
    n = len(eigenvalues)
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=gen, dtype=F64))
    return q @ torch.diag(torch.tensor(eigenvalues, dtype=F64)) @ q.T, q


def quadratic(a: Tensor, b: Tensor | None = None):
    """L(θ) = ½ wᵀAw + bᵀw with w the concatenation of the parameter list."""

    def loss(params: list[Tensor]) -> Tensor:
        w = torch.cat([p.reshape(-1) for p in params])
        value = 0.5 * w @ a @ w
        return value if b is None else value + b @ w

    return loss


def params_for(shapes: list[tuple[int, ...]], seed: int = 1) -> list[Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(s, generator=gen, dtype=F64) for s in shapes]


def flat(tensors: list[Tensor]) -> Tensor:
    return torch.cat([t.reshape(-1) for t in tensors])


def tiny_mlp(batchnorm: bool = True, dropout: float = 0.0) -> nn.Module:
    torch.manual_seed(0)
    layers: list[nn.Module] = [nn.Linear(3, 5)]
    if batchnorm:
        layers.append(nn.BatchNorm1d(5))
    layers += [nn.Tanh(), nn.Dropout(dropout), nn.Linear(5, 3)]
    model = nn.Sequential(*layers).double()
    if batchnorm:  # non-trivial running statistics
        with torch.no_grad():
            layers[1].running_mean.uniform_(-0.5, 0.5)
            layers[1].running_var.uniform_(0.5, 2.0)
    return model


def data(n: int = 24, seed: int = 2) -> tuple[Tensor, Tensor]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, generator=gen, dtype=F64)
    y = torch.randint(0, 3, (n,), generator=gen)
    return x, y
