"""Directions in weight space for loss-surface pictures (Li et al. 2018, "Visualizing the Loss
Landscape of Neural Nets"; seed decks 001 and 003 show their ResNet figures).

A *state* is a list of tensors aligned with a tuple of names: the model's parameters, then
(optionally) the BatchNorm running statistics, so a direction can move those too. Directions
are lists aligned the same way. Everything here is pure: new tensors, nothing written in place.

- `random_direction`: Gaussian entries from an explicit generator.
- `filter_normalize`: Li et al.'s filter normalization, d_i ← d_i ‖θ_i‖ / ‖d_i‖ per filter i.
- `plane_directions`: two such directions, the second orthogonalized against the first.
- `direction_between`: θ_B − θ_A, the straight segment between two models.
- `pca_directions`: principal directions of a trajectory θ_0..θ_n around θ_n (Li et al. §7).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from trainlab.landscape._vectors import flatten, unflatten

BiasBN = Literal["ignore", "filter"]
BIASBN_MODES: tuple[str, ...] = ("ignore", "filter")
Normalization = Literal["filter", "none"]
_BN_STATS = ("running_mean", "running_var")


def state_names(model: nn.Module, *, bn_stats: bool = False) -> tuple[str, ...]:
    """Names of the tensors a direction moves: the parameters (in `named_parameters()` order),
    then, with `bn_stats`, every BatchNorm running mean and variance."""
    names = [name for name, _ in model.named_parameters()]
    if bn_stats:
        names += [n for n, _ in model.named_buffers() if n.rsplit(".", 1)[-1] in _BN_STATS]
    return tuple(names)


def state_of(model: nn.Module, names: Sequence[str]) -> list[Tensor]:
    """The model's tensors named `names` (detached; they share storage, never written)."""
    tensors = dict(model.named_parameters()) | dict(model.named_buffers())
    missing = [n for n in names if n not in tensors]
    if missing:
        raise ValueError(f"the model has no parameter or buffer named {missing[0]!r}")
    return [tensors[n].detach() for n in names]


def random_direction(like: Sequence[Tensor], generator: torch.Generator) -> list[Tensor]:
    """Independent N(0, 1) entries shaped like `like`, drawn from `generator` in logical
    (row-major) order, so a channels_last model gets the same numbers as a contiguous one; each
    result keeps its reference tensor's memory format."""
    out = []
    for t in like:
        draw = torch.randn(t.shape, generator=generator, dtype=t.dtype, device=t.device)
        out.append(torch.empty_like(t).copy_(draw))
    return out


def _filter_normalized(d: Tensor, w: Tensor, eps: float) -> Tensor:
    """d with each filter (slice along dim 0: a conv output channel, a Linear output row)
    rescaled to the norm of the same filter of w."""
    dims = tuple(range(1, d.dim()))
    norm = torch.linalg.vector_norm
    return d * (norm(w, dim=dims, keepdim=True) / (norm(d, dim=dims, keepdim=True) + eps))


def filter_normalize(
    direction: Sequence[Tensor],
    weights: Sequence[Tensor],
    *,
    biasbn: BiasBN = "ignore",
    eps: float = 1e-10,
) -> list[Tensor]:
    """Li et al. 2018 filter normalization: d_i ← d_i · ‖θ_i‖ / (‖d_i‖ + ε) for every filter i.

    Tensors of two or more dimensions are split into filters along dim 0 (conv output channels,
    Linear output rows). One-dimensional tensors (biases, norm scales and shifts, BatchNorm
    running statistics) are zeroed with biasbn="ignore" (the paper's setting: those do not
    move), or, with biasbn="filter", rescaled as one filter to the norm of the whole tensor.
    """
    if biasbn not in BIASBN_MODES:
        raise ValueError(f"biasbn must be one of {BIASBN_MODES}, got {biasbn!r}")
    if len(direction) != len(weights):
        raise ValueError(f"direction has {len(direction)} tensors, weights {len(weights)}")
    out = []
    for d, w in zip(direction, weights, strict=True):
        if d.shape != w.shape:
            raise ValueError(f"direction tensor {tuple(d.shape)} != weight {tuple(w.shape)}")
        if d.dim() >= 2:
            out.append(_filter_normalized(d, w, eps))
        elif biasbn == "ignore":
            out.append(torch.zeros_like(d))
        else:
            out.append(d * (w.norm() / (d.norm() + eps)))
    return out


def filter_normalized_direction(
    weights: Sequence[Tensor],
    generator: torch.Generator,
    *,
    biasbn: BiasBN = "ignore",
) -> list[Tensor]:
    """A Gaussian direction, filter-normalized against `weights` (Li et al. 2018, §4)."""
    return filter_normalize(random_direction(weights, generator), weights, biasbn=biasbn)


def orthogonalize_against(direction: Sequence[Tensor], other: Sequence[Tensor]) -> list[Tensor]:
    """`direction` minus its projection on `other`, as vectors over all tensors (d − (d·o/o·o) o),
    rescaled back to its original length so that a normalized direction keeps its scale."""
    d, o = flatten(direction).double(), flatten(other).double()
    length = d.norm()
    d = d - (d @ o) / (o @ o) * o
    d = d - (d @ o) / (o @ o) * o  # a second pass ("twice is enough", Parlett 1980)
    if not d.norm() > 1e-12 * length:
        raise ValueError("cannot orthogonalize a direction against a parallel one")
    d = d * (length / d.norm())
    return [t.to(ref.dtype) for t, ref in zip(unflatten(d, direction), direction, strict=True)]


def _filter_dims(t: Tensor) -> tuple[int, ...]:
    """Dimensions summed over within one filter: all but dim 0, or all of a 1-D tensor."""
    return tuple(range(1, t.dim())) if t.dim() >= 2 else tuple(range(t.dim()))


def orthogonalize_filters(direction: Sequence[Tensor], other: Sequence[Tensor]) -> list[Tensor]:
    """Gram-Schmidt filter by filter: each filter of `direction` loses its component along the
    same filter of `other`, then gets its old norm back. The two directions are then exactly
    orthogonal (a sum of zero inner products) and filter normalization is kept exactly."""
    out = []
    for d, o in zip(direction, other, strict=True):
        dims = _filter_dims(d)
        oo = (o * o).sum(dim=dims, keepdim=True)
        proj = torch.where(oo > 0, (d * o).sum(dim=dims, keepdim=True) / oo, 0.0)
        e = d - proj * o
        e = e - torch.where(oo > 0, (e * o).sum(dim=dims, keepdim=True) / oo, 0.0) * o
        norm_d = torch.linalg.vector_norm(d, dim=dims, keepdim=True)
        norm_e = torch.linalg.vector_norm(e, dim=dims, keepdim=True)
        out.append(torch.where(norm_e > 0, e * (norm_d / norm_e), e))
    return out


def plane_directions(
    weights: Sequence[Tensor],
    generator: torch.Generator,
    *,
    normalization: Normalization = "filter",
    biasbn: BiasBN = "ignore",
    orthogonal: bool = True,
) -> tuple[list[Tensor], list[Tensor]]:
    """Two directions for a 2-D surface around `weights`: Gaussian, filter-normalized unless
    normalization="none"; the second orthogonalized against the first (in high dimension two
    random directions are already nearly orthogonal; this makes it exact). Filter-normalized
    pairs are orthogonalized filter by filter, so both stay filter-normalized."""
    if normalization not in ("filter", "none"):
        raise ValueError(f"normalization must be 'filter' or 'none', got {normalization!r}")
    pair = []
    for _ in range(2):
        d = random_direction(weights, generator)
        pair.append(filter_normalize(d, weights, biasbn=biasbn) if normalization == "filter" else d)
    first, second = pair
    if orthogonal and normalization == "filter":
        second = orthogonalize_filters(second, first)
    elif orthogonal:
        second = orthogonalize_against(second, first)
    return first, second


def direction_between(a: Sequence[Tensor], b: Sequence[Tensor]) -> list[Tensor]:
    """θ_B − θ_A: from model A to model B (both lists aligned with the same names)."""
    if len(a) != len(b) or any(x.shape != y.shape for x, y in zip(a, b, strict=True)):
        raise ValueError("models A and B must have the same tensors with the same shapes")
    return [y - x for x, y in zip(a, b, strict=True)]


@dataclass(frozen=True)
class PCADirections:
    """Principal directions of a training trajectory around its final point.

    directions: k unit directions (lists aligned with the state names).
    explained_variance_ratio: (k,) share of the trajectory's variance along each.
    coordinates: (T, k) the trajectory's points θ_i − θ_final projected on the directions, for
      drawing the path over the surface (the final point is the origin).
    """

    directions: list[list[Tensor]]
    explained_variance_ratio: Tensor
    coordinates: Tensor


def pca_directions(
    trajectory: Sequence[Sequence[Tensor]],
    *,
    k: int = 2,
    biasbn: Literal["keep", "ignore"] = "keep",
) -> PCADirections:
    """PCA of M = [θ_0 − θ_n; …; θ_{n−1} − θ_n] (rows centered, as sklearn's PCA does), the
    trajectory's last state θ_n being the model pictured (Li et al. 2018, §7: random directions
    miss the optimization path; its principal directions capture most of it).

    Computed by an exact thin SVD of the (n, N) matrix in float64 (n checkpoints is small).
    biasbn="ignore" zeroes one-dimensional tensors first, as Li et al.'s code does.
    """
    if len(trajectory) < k + 1:
        raise ValueError(
            f"PCA needs at least {k + 1} states (checkpoints) for {k} directions, "
            f"got {len(trajectory)}"
        )
    final = trajectory[-1]
    keep = [t.dim() >= 2 or biasbn == "keep" for t in final]
    rows = [flatten([(x - f) * m for x, f, m in zip(s, final, keep, strict=True)]).double()
            for s in trajectory[:-1]]  # fmt: skip
    matrix = torch.stack(rows)
    centered = matrix - matrix.mean(dim=0, keepdim=True)
    _, s, vh = torch.linalg.svd(centered, full_matrices=False)
    if s.numel() < k:
        raise ValueError(f"the trajectory spans {s.numel()} directions, {k} asked")
    ratio = (s**2 / (s**2).sum())[:k]
    dirs = [
        [t.to(f.dtype) for t, f in zip(unflatten(vh[i].clone(), final), final, strict=True)]
        for i in range(k)
    ]
    coords = torch.cat([matrix, torch.zeros(1, matrix.shape[1], dtype=matrix.dtype)]) @ vh[:k].T
    return PCADirections(dirs, ratio, coords)
