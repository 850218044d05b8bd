"""Stacked batches are each model's own loader batches: shared inputs with per-model labels
(label noise) and per-model inputs (bootstraps) alike."""

from __future__ import annotations

import pytest
import torch

from trainlab.data import InMemoryLoader, TensorSplit
from trainlab.stack import stacked_batches
from trainlab.stack.fit import check_loaders


def _splits() -> tuple[TensorSplit, TensorSplit, TensorSplit]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(50, 3, generator=g)
    y = torch.randint(0, 4, (50,), generator=g)
    other_labels = TensorSplit(x, (y + 1) % 4)  # same inputs, different labels
    boot = torch.randint(0, 50, (50,), generator=g)
    return TensorSplit(x, y), other_labels, TensorSplit(x[boot], y[boot])


@pytest.mark.parametrize("which", ["shared", "labels differ", "inputs differ"])
def test_each_model_gets_its_own_loaders_batches(which: str) -> None:
    base, relabelled, boot = _splits()
    second = {"shared": base, "labels differ": relabelled, "inputs differ": boot}[which]
    loaders = [InMemoryLoader(base, 16, seed=1), InMemoryLoader(second, 16, seed=2)]
    for epoch in (0, 3):
        batches = stacked_batches(loaders, epoch)
        assert len(batches) == len(loaders[0]) == 4  # 16, 16, 16, 2
        for k, loader in enumerate(loaders):
            for (x, y), (xk, yk) in zip(batches, loader.epoch(epoch), strict=True):
                assert torch.equal(x[k], xk) and torch.equal(y[k], yk)


def test_loaders_taking_different_steps_are_refused() -> None:
    base, _, _ = _splits()
    with pytest.raises(ValueError, match="loader 1 differs"):
        check_loaders([InMemoryLoader(base, 16), InMemoryLoader(base, 10)])
