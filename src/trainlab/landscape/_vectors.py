"""Parameter lists as vectors: flatten/unflatten, inner products, random vectors.

The Hessian routines do their linear algebra on one flat vector of all parameters (length n,
the number of parameters) and convert at the boundary, so a Krylov basis is one (m, n) matrix.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def flatten(tensors: Sequence[Tensor]) -> Tensor:
    """Concatenate a parameter list into one vector of length Σ numel (detached)."""
    return torch.cat([t.detach().reshape(-1) for t in tensors])


def unflatten(vector: Tensor, like: Sequence[Tensor]) -> list[Tensor]:
    """Split a flat vector into tensors shaped like `like` (views into `vector`)."""
    out, start = [], 0
    for t in like:
        out.append(vector[start : start + t.numel()].view_as(t))
        start += t.numel()
    if start != vector.numel():
        raise ValueError(f"vector has {vector.numel()} entries, parameters have {start}")
    return out


def numel(tensors: Sequence[Tensor]) -> int:
    """Number of scalar parameters in a list."""
    return sum(t.numel() for t in tensors)


def rademacher(n: int, like: Tensor, generator: torch.Generator) -> Tensor:
    """Vector of n independent ±1 entries, each with probability ½ (Hutchinson 1989)."""
    bits = torch.randint(0, 2, (n,), generator=generator, device=like.device)
    return (2 * bits - 1).to(like.dtype)


def gaussian(n: int, like: Tensor, generator: torch.Generator) -> Tensor:
    """Vector of n independent standard normal entries with `like`'s dtype and device."""
    return torch.randn(n, generator=generator, dtype=like.dtype, device=like.device)


def orthogonalize(v: Tensor, basis: Tensor | None) -> Tensor:
    """Remove from v its components along the orthonormal rows of `basis` (k, n).

    Classical Gram-Schmidt applied twice ("twice is enough", Parlett 1980): one pass leaves
    O(ε·κ) error when v is nearly in the span; the second pass brings it to O(ε).
    """
    if basis is None or basis.shape[0] == 0:
        return v
    for _ in range(2):
        v = v - basis.T @ (basis @ v)
    return v


def make_generator(seed: int | torch.Generator | None, device: torch.device) -> torch.Generator:
    """A torch.Generator: the one given, or a new one seeded with `seed` (0 when None)."""
    if isinstance(seed, torch.Generator):
        return seed
    gen = torch.Generator(device=device)
    gen.manual_seed(0 if seed is None else int(seed))
    return gen
