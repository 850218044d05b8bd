"""Label-noise injection for double-descent experiments (seed 001: Nakkiran et al. 2020 train
ResNet18s on CIFAR-10 "with 15% label noise").

Exactly round(fraction · N) training labels, chosen uniformly without replacement, are replaced
by a uniformly random *different* class (the changed labels are then all wrong, so the noise
level is exactly `fraction`). With `allow_same=True` the new class is uniform over all classes,
as in Zhang et al. 2017's "partially corrupted labels", so about 1/K of the chosen labels keep
their value. Seeded by an explicit `torch.Generator`; the chosen indices are returned so a run
can record which labels it corrupted.
"""

from __future__ import annotations

import math

import torch

from .bundle import TensorSplit


def _check(y: torch.Tensor, fraction: float, num_classes: int, allow_same: bool) -> None:
    """One-line errors naming the field and its valid range."""
    if isinstance(fraction, bool) or not isinstance(fraction, int | float):
        raise ValueError(f"label_noise fraction must be a number in [0, 1], got {fraction!r}")
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"label_noise fraction must be in [0, 1], got {fraction}")
    lowest = 1 if allow_same else 2
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < lowest:
        raise ValueError(
            f"label_noise num_classes must be an int >= {lowest}"
            f"{'' if allow_same else ' (a different class must exist)'}, got {num_classes!r}"
        )
    if y.ndim != 1 or y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        raise ValueError(
            f"label_noise needs int class labels of shape (N,), got {y.dtype} {tuple(y.shape)}"
        )
    if len(y) and not (int(y.min()) >= 0 and int(y.max()) < num_classes):
        raise ValueError(
            f"label_noise labels must be in 0..{num_classes - 1} (num_classes={num_classes}), "
            f"got min {int(y.min())} and max {int(y.max())}"
        )


def inject_label_noise(
    y: torch.Tensor,
    fraction: float,
    num_classes: int,
    generator: torch.Generator,
    *,
    allow_same: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(y_noisy, flipped_indices): round(fraction · N) labels replaced, the rest untouched.

    m = floor(fraction · N + 1/2) indices are drawn without replacement (a prefix of one
    permutation, returned sorted, int64). Each gets y' = (y + U{1..K-1}) mod K, uniform over
    the K-1 other classes; with `allow_same` y' = U{0..K-1}. `y` is not modified.
    """
    _check(y, fraction, num_classes, allow_same)
    n = len(y)
    m = math.floor(fraction * n + 0.5)
    device = generator.device
    chosen = torch.randperm(n, generator=generator, device=device)[:m].sort().values
    if allow_same:
        new = torch.randint(0, num_classes, (m,), generator=generator, device=device)
    else:
        step = torch.randint(1, num_classes, (m,), generator=generator, device=device)
        new = (y.to(device)[chosen] + step) % num_classes
    chosen = chosen.to(y.device)
    noisy = y.clone()
    noisy[chosen] = new.to(device=y.device, dtype=y.dtype)
    return noisy, chosen


def with_label_noise(
    split: TensorSplit,
    fraction: float,
    num_classes: int,
    *,
    seed: int,
    allow_same: bool = False,
) -> tuple[TensorSplit, torch.Tensor]:
    """(split with noisy labels, flipped indices), seeded by `seed`; x is shared, not copied."""
    generator = torch.Generator().manual_seed(seed)
    noisy, flipped = inject_label_noise(
        split.y, fraction, num_classes, generator, allow_same=allow_same
    )
    return TensorSplit(split.x, noisy), flipped


__all__ = ["inject_label_noise", "with_label_noise"]
