"""k-fold cross-validation indices over a split, by scikit-learn's KFold / StratifiedKFold.

Each sample is in the validation part of exactly one fold; folds are shuffled with
`random_state=seed` so the same seed gives the same folds. Stratified folds keep each class's
proportion in every fold (up to one sample per class), which matters for small sets.
"""

from __future__ import annotations

import numpy as np
import torch

from .bundle import TensorSplit
from .errors import one_line

Fold = tuple[torch.Tensor, torch.Tensor]  # (train_idx, val_idx), sorted int64


def kfold_splits(split: TensorSplit, k: int, *, seed: int, stratify: bool = False) -> list[Fold]:
    """k (train_idx, val_idx) pairs of sorted int64 index tensors partitioning range(N).

    `stratify` needs int class labels (N,) and uses StratifiedKFold, which fails (here in one
    line) when every class has fewer than k samples and warns when some class does.
    """
    from sklearn.model_selection import KFold, StratifiedKFold  # deferred: slow import

    n = len(split)
    if isinstance(k, bool) or not isinstance(k, int):
        raise ValueError(f"kfold k must be an int in 2..{n} (the split's size), got {k!r}")
    if not 2 <= k <= n:
        raise ValueError(f"kfold k must be in 2..{n} (the split's size), got {k}")
    positions = np.arange(n)
    if stratify:
        y = split.y
        if y.ndim != 1 or y.is_floating_point():
            raise ValueError(
                f"kfold stratify=True needs int class labels of shape (N,), got {y.dtype} "
                f"{tuple(y.shape)}"
            )
        folds = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
        try:
            pairs = list(folds.split(positions, y.cpu().numpy()))
        except ValueError as err:
            raise ValueError(one_line(f"kfold stratified k={k} failed: {err}")) from err
    else:
        pairs = list(KFold(n_splits=k, shuffle=True, random_state=seed).split(positions))
    return [(torch.from_numpy(np.sort(tr)), torch.from_numpy(np.sort(va))) for tr, va in pairs]


def take(split: TensorSplit, idx: torch.Tensor) -> TensorSplit:
    """The rows `idx` of a split (e.g. one fold's train or validation part) as a new split."""
    idx = idx.to(split.x.device)
    return TensorSplit(
        split.x.index_select(0, idx), split.y.index_select(0, idx.to(split.y.device))
    )


def kfold_subsets(
    split: TensorSplit, k: int, *, seed: int, stratify: bool = False
) -> list[tuple[TensorSplit, TensorSplit]]:
    """The folds of `kfold_splits` as (train, val) TensorSplits."""
    return [
        (take(split, tr), take(split, va))
        for tr, va in kfold_splits(split, k, seed=seed, stratify=stratify)
    ]


__all__ = ["Fold", "kfold_splits", "kfold_subsets", "take"]
