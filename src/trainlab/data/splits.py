"""Seeded validation splits carved from the training set, and the full preparation step.

The test split is never used to choose anything: `prepare_splits` carves validation from
train, fits the normalizer on the remaining training part only, then applies it everywhere.
"""

from __future__ import annotations

import numpy as np
import torch

from .bundle import DataBundle, TensorSplit
from .errors import one_line
from .standardize import Standardizer


def _val_count(val_fraction: float | int, n: int) -> int:
    """Validation size: an int is a count, a float in [0, 1) a fraction (rounded)."""
    if isinstance(val_fraction, bool) or not isinstance(val_fraction, int | float):
        raise ValueError(f"val_fraction must be a float in [0, 1) or an int, got {val_fraction!r}")
    if isinstance(val_fraction, float):
        if not 0.0 <= val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1) as a float, got {val_fraction}")
        val_fraction = int(np.floor(val_fraction * n + 0.5))
    if not 0 <= val_fraction < n:
        raise ValueError(f"val_fraction must leave >= 1 training sample of {n}, got {val_fraction}")
    return val_fraction


def _subset(split: TensorSplit, idx: torch.Tensor) -> TensorSplit:
    return TensorSplit(split.x.index_select(0, idx), split.y.index_select(0, idx))


def _stratified_indices(y: torch.Tensor, n_val: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split  # deferred: slow import

    if y.is_floating_point() or y.ndim != 1:
        raise ValueError("stratify=True needs int class labels of shape (N,); got float targets")
    try:
        return train_test_split(
            np.arange(len(y)), test_size=n_val, random_state=seed, stratify=y.numpy()
        )
    except ValueError as err:  # e.g. fewer validation samples than classes
        raise ValueError(one_line(f"stratified split of {n_val} samples failed: {err}")) from err


def train_val_split(
    split: TensorSplit, val_fraction: float | int, *, seed: int, stratify: bool = False
) -> tuple[TensorSplit, TensorSplit]:
    """(train, val) from `split`, seeded; stratified keeps class proportions (sklearn).

    Both parts keep the original sample order. `val_fraction` 0 gives an empty val split.
    """
    n = len(split)
    n_val = _val_count(val_fraction, n)
    if stratify and n_val > 0:
        train_idx, val_idx = _stratified_indices(split.y, n_val, seed)
        train_idx, val_idx = torch.from_numpy(train_idx), torch.from_numpy(val_idx)
    else:
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
        val_idx, train_idx = perm[:n_val], perm[n_val:]
    train_idx, val_idx = train_idx.sort().values, val_idx.sort().values
    return _subset(split, train_idx), _subset(split, val_idx)


def prepare_splits(
    bundle: DataBundle,
    *,
    val_fraction: float | int = 0.1,
    seed: int = 0,
    stratify: bool = True,
    normalize: str | None = "per_channel",
) -> tuple[TensorSplit, TensorSplit, TensorSplit, Standardizer | None]:
    """(train, val, test, standardizer): val carved from train, normalizer fitted on train only.

    Stratification applies to classification bundles only. `normalize` is a `Standardizer`
    mode or None; the test split is only transformed by the fitted normalizer.
    """
    stratify = stratify and bundle.num_classes is not None
    train, val = train_val_split(bundle.train, val_fraction, seed=seed, stratify=stratify)
    if normalize is None:
        return train, val, bundle.test, None
    norm = Standardizer.fit(train.x, normalize)
    return (
        TensorSplit(norm.apply(train.x), train.y),
        TensorSplit(norm.apply(val.x), val.y),
        TensorSplit(norm.apply(bundle.test.x), bundle.test.y),
        norm,
    )
