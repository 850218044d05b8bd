"""InMemoryLoader: determinism from (seed, epoch), resumption, batch sizes, full coverage."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from trainlab.data import InMemoryLoader, TensorSplit
from trainlab.data.loader import epoch_seed


def indexed_split(n: int) -> TensorSplit:
    """x[i] = (i, -i) and y[i] = i, so every batch says which samples it holds."""
    i = torch.arange(n)
    return TensorSplit(x=torch.stack([i, -i], dim=1).float(), y=i)


def sample_ids(batches) -> list[int]:
    ids = []
    for x, y in batches:
        assert x[:, 0].long().tolist() == y.tolist()  # x and y stay aligned
        assert (x[:, 1] == -x[:, 0]).all()
        ids += y.tolist()
    return ids


def test_same_seed_and_epoch_give_the_same_batches() -> None:
    split = indexed_split(100)
    a = InMemoryLoader(split, 8, seed=3)
    b = InMemoryLoader(split, 8, seed=3)
    assert sample_ids(a.epoch(5)) == sample_ids(b.epoch(5))
    torch.manual_seed(123)  # the global RNG plays no part
    assert sample_ids(a.epoch(5)) == sample_ids(b.epoch(5))


def test_epochs_and_seeds_change_the_order() -> None:
    split = indexed_split(100)
    loader = InMemoryLoader(split, 10, seed=0)
    orders = {tuple(sample_ids(loader.epoch(e))) for e in range(5)}
    assert len(orders) == 5
    other = InMemoryLoader(split, 10, seed=1)
    assert sample_ids(other.epoch(0)) != sample_ids(loader.epoch(0))
    assert epoch_seed(0, 1) != epoch_seed(1, 0)


def test_order_is_torch_randperm_seeded_from_seed_and_epoch() -> None:
    split = indexed_split(50)
    loader = InMemoryLoader(split, 50, seed=7)
    g = torch.Generator().manual_seed(epoch_seed(7, 2))
    assert sample_ids(loader.epoch(2)) == torch.randperm(50, generator=g).tolist()


def test_start_skips_batches_exactly() -> None:
    loader = InMemoryLoader(indexed_split(103), 10, seed=4)
    full = list(loader.epoch(3))
    for start in (0, 1, 7, 10, 11):
        resumed = list(loader.epoch(3, start=start))
        assert len(resumed) == len(full) - start
        for (xa, ya), (xb, yb) in zip(resumed, full[start:], strict=True):
            assert torch.equal(xa, xb) and torch.equal(ya, yb)
    with pytest.raises(ValueError, match="start"):
        loader.epoch(0, start=12)


def test_iterating_walks_through_epochs() -> None:
    loader = InMemoryLoader(indexed_split(30), 4, seed=2)
    first, second = sample_ids(loader), sample_ids(loader)
    assert first == sample_ids(loader.epoch(0))
    assert second == sample_ids(loader.epoch(1))


@pytest.mark.parametrize(
    ("batch_size", "drop_last", "sizes"),
    [
        (1, False, [1] * 50),  # SGD
        (7, False, [7] * 7 + [1]),
        (7, True, [7] * 7),
        (50, False, [50]),  # full-batch gradient descent
        (50, True, [50]),
        (25, False, [25, 25]),
    ],
)
def test_batch_sizes_and_last_batch(batch_size, drop_last, sizes) -> None:
    loader = InMemoryLoader(indexed_split(50), batch_size, drop_last=drop_last, seed=1)
    batches = list(loader.epoch(0))
    assert [len(y) for _, y in batches] == sizes
    assert len(loader) == len(sizes)
    ids = sample_ids(batches)
    assert len(set(ids)) == len(ids) == sum(sizes)
    if not drop_last:
        assert sorted(ids) == list(range(50))


def test_no_shuffle_keeps_order() -> None:
    loader = InMemoryLoader(indexed_split(20), 6, shuffle=False)
    assert sample_ids(loader.epoch(0)) == list(range(20))
    assert sample_ids(loader.epoch(9)) == list(range(20))


@pytest.mark.parametrize("batch_size", [0, -1, 51, 2.0, True])
def test_bad_batch_size_is_one_line_value_error(batch_size) -> None:
    with pytest.raises(ValueError) as info:
        InMemoryLoader(indexed_split(50), batch_size)
    assert "\n" not in str(info.value) and "batch_size" in str(info.value)


def test_image_batches_keep_shape_and_dtype() -> None:
    split = TensorSplit(torch.rand(20, 1, 28, 28), torch.randint(0, 10, (20,)))
    x, y = next(iter(InMemoryLoader(split, 8)))
    assert x.shape == (8, 1, 28, 28) and x.dtype == torch.float32 and y.dtype == torch.int64


@settings(max_examples=50, deadline=None)
@given(
    n=st.integers(1, 200),
    data=st.data(),
    drop_last=st.booleans(),
    seed=st.integers(0, 2**32),
    epoch=st.integers(0, 10**6),
)
def test_every_sample_seen_at_most_once_and_all_without_drop_last(
    n, data, drop_last, seed, epoch
) -> None:
    batch_size = data.draw(st.integers(1, n))
    loader = InMemoryLoader(indexed_split(n), batch_size, seed=seed, drop_last=drop_last)
    ids = sample_ids(loader.epoch(epoch))
    assert len(ids) == len(set(ids)) == (n // batch_size * batch_size if drop_last else n)
    assert all(0 <= i < n for i in ids)


def test_numpy_fast_path_equals_index_select_path() -> None:
    split = indexed_split(301)
    fast = InMemoryLoader(split, 32, seed=9)
    as_bf16 = TensorSplit(split.x.to(torch.bfloat16), split.y)  # numpy has no bfloat16
    reference = InMemoryLoader(as_bf16, 32, seed=9)
    assert fast._numpy is not None and reference._numpy is None
    for (xa, ya), (xb, yb) in zip(fast.epoch(4), reference.epoch(4), strict=True):
        assert torch.equal(ya, yb) and torch.equal(xa.to(torch.bfloat16), xb)
        assert xa.dtype == torch.float32 and ya.dtype == torch.int64 and xa.is_contiguous()
    order = reference.order(4)
    assert torch.equal(next(iter(fast.epoch(4)))[1], split.y.index_select(0, order[:32]))


def test_batch_growth_multiplies_the_batch_size_from_each_milestone() -> None:
    """Smith et al. 2018: batch x factor at each milestone epoch, capped at the split."""
    loader = InMemoryLoader(indexed_split(100), 4, grow_at=(2, 3), grow_factor=5)
    assert [loader.batch_size_at(e) for e in range(5)] == [4, 4, 20, 100, 100]
    assert [loader.batches_in(e) for e in range(5)] == [25, 25, 5, 1, 1]
    assert loader.total_steps(4) == 25 + 25 + 5 + 1 and len(loader) == 25
    for e in range(4):
        batches = list(loader.epoch(e))
        assert [len(y) for _, y in batches] == [loader.batch_size_at(e)] * loader.batches_in(e)
        assert sorted(sample_ids(batches)) == list(range(100))
    assert sample_ids(loader.epoch(2, start=3)) == sample_ids(loader.epoch(2))[60:]


def test_batch_growth_rejects_bad_settings_in_one_line() -> None:
    with pytest.raises(ValueError, match="grow_factor must be >= 1 and grow_at epochs >= 1"):
        InMemoryLoader(indexed_split(10), 2, grow_at=(0,), grow_factor=2)
    with pytest.raises(ValueError, match=r"start must be in 0..1 \(batches in epoch 1\)"):
        InMemoryLoader(indexed_split(10), 2, grow_at=(1,), grow_factor=5).epoch(1, start=2)
