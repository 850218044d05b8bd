"""Seeded validation splits, stratification, and normalization fitted on train only."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from trainlab.data import (
    DataBundle,
    Standardizer,
    TensorSplit,
    load_dataset,
    prepare_splits,
    train_val_split,
)


def indexed_split(labels: list[int]) -> TensorSplit:
    n = len(labels)
    return TensorSplit(x=torch.arange(n, dtype=torch.float32)[:, None], y=torch.tensor(labels))


def ids(split: TensorSplit) -> list[int]:
    return split.x[:, 0].long().tolist()


@pytest.mark.parametrize(("val_fraction", "n_val"), [(0.1, 10), (0.25, 25), (7, 7), (0, 0)])
def test_sizes_disjoint_and_complete(val_fraction, n_val) -> None:
    split = indexed_split([i % 4 for i in range(100)])
    train, val = train_val_split(split, val_fraction, seed=0)
    assert (len(train), len(val)) == (100 - n_val, n_val)
    assert sorted(ids(train) + ids(val)) == list(range(100))
    assert ids(train) == sorted(ids(train))  # original order kept
    assert val.x.shape[1:] == split.x.shape[1:] and val.y.dtype == split.y.dtype


def test_split_is_seeded() -> None:
    split = indexed_split([0] * 50)
    assert ids(train_val_split(split, 0.2, seed=1)[1]) == ids(
        train_val_split(split, 0.2, seed=1)[1]
    )
    assert ids(train_val_split(split, 0.2, seed=1)[1]) != ids(
        train_val_split(split, 0.2, seed=2)[1]
    )


def test_stratified_split_keeps_class_proportions() -> None:
    labels = [0] * 600 + [1] * 300 + [2] * 100
    for seed in range(3):
        train, val = train_val_split(indexed_split(labels), 0.1, seed=seed, stratify=True)
        assert torch.bincount(val.y).tolist() == [60, 30, 10]
        assert torch.bincount(train.y).tolist() == [540, 270, 90]


@pytest.mark.parametrize("bad", [1.0, -0.1, 100, -1, True, "0.1"])
def test_bad_val_fraction_is_one_line_error(bad) -> None:
    with pytest.raises(ValueError) as info:
        train_val_split(indexed_split([0] * 100), bad, seed=0)
    assert "\n" not in str(info.value) and "val_fraction" in str(info.value)


def test_stratify_needs_class_labels() -> None:
    split = TensorSplit(torch.zeros(10, 1), torch.zeros(10, 1))
    with pytest.raises(ValueError, match="stratify"):
        train_val_split(split, 0.2, seed=0, stratify=True)


def numpy_stats(x: np.ndarray, axis) -> tuple[np.ndarray, np.ndarray]:
    """Mean and population std (ddof 0) in float64, keeping reduced dims for broadcasting."""
    x = x.astype(np.float64)
    return x.mean(axis=axis, keepdims=True), x.std(axis=axis, keepdims=True)


@pytest.mark.parametrize(
    ("mode", "axis"), [("per_channel", (0, 2, 3)), ("per_feature", 0), ("global", None)]
)
def test_standardizer_statistics_match_numpy(mode, axis) -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(200, 3, 4, 5, generator=g) * torch.tensor([1.0, 5.0, 0.1])[:, None, None] + 2
    norm = Standardizer.fit(x, mode)
    mean, std = numpy_stats(x.numpy(), axis)
    np.testing.assert_allclose(norm.mean.numpy(), mean, rtol=1e-5)
    np.testing.assert_allclose(norm.std.numpy(), std, rtol=1e-5)
    expected = (x.numpy().astype(np.float64) - mean) / std
    np.testing.assert_allclose(norm.apply(x).numpy(), expected, rtol=1e-4, atol=1e-5)


def test_standardizer_leaves_constant_features_unscaled() -> None:
    x = torch.stack([torch.full((10,), 3.0), torch.arange(10.0)], dim=1)
    norm = Standardizer.fit(x, "per_feature")
    assert norm.std[0, 0].item() == 1.0
    assert torch.equal(norm.apply(x)[:, 0], torch.zeros(10))


def test_standardizer_state_dict_round_trip_and_shape_check() -> None:
    x = torch.rand(30, 2, 3, 3)
    norm = Standardizer.fit(x, "per_channel")
    again = Standardizer.from_state_dict(norm.state_dict())
    assert torch.equal(again.apply(x), norm.apply(x)) and again.mode == "per_channel"
    with pytest.raises(ValueError, match="cannot apply"):
        norm.apply(torch.rand(4, 3, 3, 3))
    with pytest.raises(ValueError, match="per_channel"):
        Standardizer.fit(x, "per-pixel")


def test_prepare_splits_fits_on_train_part_only() -> None:
    g = torch.Generator().manual_seed(0)
    train = TensorSplit(torch.rand(300, 1, 4, 4, generator=g), torch.arange(300) % 3)
    test = TensorSplit(100 + torch.rand(50, 1, 4, 4, generator=g), torch.arange(50) % 3)
    bundle = DataBundle("toy", train, test, num_classes=3, source="test")
    tr, va, te, norm = prepare_splits(bundle, val_fraction=0.2, seed=5)
    raw_tr, raw_va = train_val_split(train, 0.2, seed=5, stratify=True)
    mean, std = numpy_stats(raw_tr.x.numpy(), None)  # statistics of the 240 training samples
    np.testing.assert_allclose(norm.mean.numpy(), mean, rtol=1e-5)
    np.testing.assert_allclose(norm.std.numpy(), std, rtol=1e-5)
    assert (len(tr), len(va), len(te)) == (240, 60, 50)
    assert torch.equal(va.y, raw_va.y) and torch.equal(te.y, test.y)
    np.testing.assert_allclose(te.x.numpy(), (test.x.numpy() - mean) / std, rtol=1e-5)
    assert abs(tr.x.mean().item()) < 1e-5 and abs(te.x.mean().item()) > 100  # test shifted


def test_prepare_splits_without_normalization_leaves_test_untouched() -> None:
    bundle = load_dataset("regression1d", n_train=50, n_test=20)
    tr, va, te, norm = prepare_splits(bundle, val_fraction=0, normalize=None)
    assert norm is None and te is bundle.test and len(va) == 0 and len(tr) == 50
    tr, va, te, norm = prepare_splits(bundle, val_fraction=10, normalize="per_feature")
    assert (len(tr), len(va)) == (40, 10) and norm.mean.shape == (1, 1)
