"""Label noise: exact count, every changed label wrong, reproducible. k-fold: folds partition
the indices, stratified folds keep class proportions, bad k is one line."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from trainlab.data import TensorSplit, inject_label_noise, kfold_splits, kfold_subsets
from trainlab.data.label_noise import with_label_noise


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def labels(n: int, k: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, k, (n,), generator=gen(seed))


@pytest.mark.parametrize(("n", "fraction", "m"), [(1000, 0.15, 150), (999, 0.2, 200), (7, 0.5, 4)])
def test_exact_count_changed_and_all_different(n: int, fraction: float, m: int) -> None:
    y = labels(n, 10)
    noisy, flipped = inject_label_noise(y, fraction, 10, gen(1))
    assert m == math.floor(fraction * n + 0.5) and len(flipped) == m
    assert flipped.dtype == torch.int64 and torch.equal(flipped, flipped.sort().values)
    assert len(set(flipped.tolist())) == m  # no index chosen twice
    changed = (noisy != y).nonzero()[:, 0]
    assert torch.equal(changed, flipped)  # every chosen label changed, nothing else
    assert noisy.dtype == y.dtype and noisy.min() >= 0 and noisy.max() < 10
    assert torch.equal(y, labels(n, 10))  # input untouched


def test_new_labels_are_uniform_over_the_other_classes() -> None:
    y = torch.zeros(30000, dtype=torch.int64)
    noisy, flipped = inject_label_noise(y, 1.0, 4, gen(2))
    counts = torch.bincount(noisy, minlength=4)
    assert counts[0] == 0 and len(flipped) == 30000
    # each of classes 1..3 has probability 1/3: std of a count is ~82, allow 5 std
    assert (counts[1:] - 10000).abs().max() < 410


def test_allow_same_keeps_about_one_in_k() -> None:
    y = labels(20000, 5)
    noisy, flipped = inject_label_noise(y, 0.5, 5, gen(3), allow_same=True)
    assert len(flipped) == 10000
    unchanged = float((noisy[flipped] == y[flipped]).float().mean())
    assert abs(unchanged - 0.2) < 0.02  # 1/K of the chosen labels keep their class
    outside = torch.ones(20000, dtype=torch.bool)
    outside[flipped] = False
    assert torch.equal(noisy[outside], y[outside])


def test_reproducible_and_seed_dependent() -> None:
    y = labels(500, 10)
    a, ia = inject_label_noise(y, 0.3, 10, gen(7))
    b, ib = inject_label_noise(y, 0.3, 10, gen(7))
    c, ic = inject_label_noise(y, 0.3, 10, gen(8))
    assert torch.equal(a, b) and torch.equal(ia, ib)
    assert not torch.equal(ia, ic)
    split = TensorSplit(torch.zeros(500, 2), y)
    noisy_split, flipped = with_label_noise(split, 0.3, 10, seed=7)
    assert torch.equal(noisy_split.y, a) and torch.equal(flipped, ia)
    assert noisy_split.x is split.x


@pytest.mark.parametrize("fraction", [0.0, 1.0])
def test_fraction_edges(fraction: float) -> None:
    y = labels(50, 3)
    noisy, flipped = inject_label_noise(y, fraction, 3, gen(0))
    assert int((noisy != y).sum()) == len(flipped) == 50 * int(fraction)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((1.5, 10), "label_noise fraction must be in [0, 1], got 1.5"),
        ((-0.1, 10), "label_noise fraction must be in [0, 1], got -0.1"),
        (("0.1", 10), "label_noise fraction must be a number in [0, 1]"),
        ((0.1, 1), "label_noise num_classes must be an int >= 2"),
        ((0.1, 5), "label_noise labels must be in 0..4 (num_classes=5)"),
    ],
)
def test_label_noise_bad_input_is_one_line(args, message: str) -> None:
    with pytest.raises(ValueError) as info:
        inject_label_noise(labels(20, 10), *args, gen(0))
    assert message in str(info.value) and "\n" not in str(info.value)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(2, 60), k=st.integers(2, 6), seed=st.integers(0, 1000))
def test_folds_partition_indices(n: int, k: int, seed: int) -> None:
    k = min(k, n)
    split = TensorSplit(torch.arange(n, dtype=torch.float32)[:, None], labels(n, 3, seed))
    folds = kfold_splits(split, k, seed=seed)
    assert len(folds) == k
    vals = torch.cat([va for _, va in folds])
    assert sorted(vals.tolist()) == list(range(n))  # each index validated exactly once
    for tr, va in folds:
        assert sorted(torch.cat([tr, va]).tolist()) == list(range(n))
        assert len(va) in (n // k, n // k + 1)
        assert tr.dtype == torch.int64 and torch.equal(tr, tr.sort().values)


def test_kfold_seeded_and_shuffled() -> None:
    split = TensorSplit(torch.zeros(100, 1), labels(100, 4))
    a, b = kfold_splits(split, 5, seed=0), kfold_splits(split, 5, seed=0)
    assert all(torch.equal(x[1], y[1]) for x, y in zip(a, b, strict=True))
    assert not torch.equal(a[0][1], kfold_splits(split, 5, seed=1)[0][1])
    assert not torch.equal(a[0][1], torch.arange(20))  # shuffled, not contiguous blocks


def test_stratified_keeps_class_proportions() -> None:
    y = torch.cat([torch.full((n,), c) for c, n in enumerate([500, 300, 150, 50])])
    split = TensorSplit(torch.arange(1000, dtype=torch.float32)[:, None], y)
    for (_, va), (tr_split, va_split) in zip(
        kfold_splits(split, 5, seed=3, stratify=True),
        kfold_subsets(split, 5, seed=3, stratify=True),
        strict=True,
    ):
        counts = torch.bincount(y[va], minlength=4)
        assert counts.tolist() == [100, 60, 30, 10]  # exactly 1/5 of each class
        assert torch.equal(va_split.x[:, 0].long(), va) and torch.equal(va_split.y, y[va])
        assert len(tr_split) == 800
    plain = [torch.bincount(y[va], minlength=4) for _, va in kfold_splits(split, 5, seed=3)]
    assert any(c.tolist() != [100, 60, 30, 10] for c in plain)  # unstratified drifts


@pytest.mark.parametrize(
    ("k", "stratify", "message"),
    [
        (1, False, "kfold k must be in 2..10 (the split's size), got 1"),
        (11, False, "kfold k must be in 2..10 (the split's size), got 11"),
        (2.5, False, "kfold k must be an int in 2..10"),
        (6, True, "kfold stratified k=6 failed"),
    ],
)
def test_kfold_bad_input_is_one_line(k, stratify: bool, message: str) -> None:
    split = TensorSplit(torch.zeros(10, 1), torch.tensor([0, 1] * 5))
    with pytest.raises(ValueError) as info:
        kfold_splits(split, k, seed=0, stratify=stratify)
    assert message in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(ValueError, match="needs int class labels"):
        kfold_splits(TensorSplit(torch.zeros(10, 1), torch.zeros(10, 1)), 2, seed=0, stratify=True)
