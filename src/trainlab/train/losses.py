"""Losses by name. For now cross-entropy (with label smoothing) and mean squared error."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch
import torch.nn.functional as F

from trainlab.names import closest_name_error

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def mse(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean squared error; integer class labels are one-hot encoded first (the lectures' L2
    loss on a classifier's outputs)."""
    if targets.dtype == torch.int64:
        targets = F.one_hot(targets, outputs.shape[-1]).to(outputs.dtype)
    return F.mse_loss(outputs, targets)


def get_loss(name: str, label_smoothing: float = 0.0) -> LossFn:
    """The loss function `name` ("cross_entropy" or "mse") as f(outputs, targets) -> scalar."""
    if name == "cross_entropy":
        return partial(F.cross_entropy, label_smoothing=label_smoothing)
    if name == "mse":
        return mse
    raise closest_name_error("loss", name, ["cross_entropy", "mse"])
