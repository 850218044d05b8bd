"""Shared by the lab's Fashion-MNIST experiments: a seeded, standardized subset and a loop that
records every step's training loss (stopping at a non-finite one)."""

from __future__ import annotations

import torch
from torch import nn

from trainlab.data import InMemoryLoader, TensorSplit, load_dataset
from trainlab.train.loop import NonFiniteLossError, train_step
from trainlab.train.losses import LossFn


def fashion_subset(n_train: int, n_test: int, seed: int) -> tuple[TensorSplit, TensorSplit]:
    """Seeded subsets of Fashion-MNIST's train and test splits, standardized with the training
    subset's mean and std (images kept as 1x28x28)."""
    data = load_dataset("fashion_mnist")
    g = torch.Generator().manual_seed(seed)
    tr = torch.randperm(len(data.train), generator=g)[:n_train]
    te = torch.randperm(len(data.test), generator=g)[:n_test]
    x, xt = data.train.x[tr], data.test.x[te]
    mean, std = x.mean(), x.std()
    return TensorSplit((x - mean) / std, data.train.y[tr]), TensorSplit(
        (xt - mean) / std, data.test.y[te]
    )


def step_losses(model: nn.Module, optimizer: torch.optim.Optimizer, loss_fn: LossFn,
                loader: InMemoryLoader, steps: int) -> list[float]:  # fmt: skip
    """The training loss of each of ``steps`` steps (cycling epochs); a non-finite loss ends
    the list with ``inf``."""
    losses: list[float] = []
    epoch = 0
    model.train()
    while len(losses) < steps:
        for x, y in loader.epoch(epoch):
            try:
                losses.append(train_step(model, optimizer, loss_fn, x, y)[0])
            except NonFiniteLossError:
                return [*losses, float("inf")]
            if len(losses) == steps:
                break
        epoch += 1
    return losses
