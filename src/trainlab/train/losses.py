"""Losses by name (seed 003, "Other loss functions, other models"; CS231n for the multi-class
SVM). Every loss maps (outputs, targets) to the mean over the batch.

Binary margin losses (`hinge`, `logistic`, `exponential`) take one score per example
(outputs of shape (N,) or (N, 1)) and labels in {0, 1} or {-1, +1}; with y = ±1 and score f:
hinge max(0, 1 − y f), logistic log(1 + e^(−y f)), exponential (AdaBoost) e^(−y f). (Seed 003
prints the AdaBoost loss as exp(−(y − θᵀφ(x))); the margin form e^(−y f) is the one AdaBoost
minimises, Friedman et al. 2000, and the one implemented here.)"""

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


def nll(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Negative log-likelihood of log-probabilities (outputs of a log-softmax)."""
    return F.nll_loss(outputs, targets)


def multiclass_hinge(
    outputs: torch.Tensor, targets: torch.Tensor, margin: float = 1.0
) -> torch.Tensor:
    """Multi-class SVM loss (Weston & Watkins 1999, CS231n): mean over examples of
    Σ_{j≠y} max(0, s_j − s_y + margin)."""
    correct = outputs.gather(1, targets[:, None])
    margins = (outputs - correct + margin).clamp_min(0)
    return margins.sum(dim=1).mean() - margin  # the j = y term contributes exactly `margin`


def _signed(outputs: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Scores f of shape (N,) and labels y in {−1, +1} (0/1 labels are mapped to −1/+1)."""
    f = outputs.reshape(-1)
    y = targets.reshape(-1).to(f.dtype)
    return f, torch.where(y > 0, 1.0, -1.0).to(f.dtype)


def hinge(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Binary hinge (SVM) loss max(0, 1 − y f), seed 003 eq. (9)."""
    f, y = _signed(outputs, targets)
    return (1 - y * f).clamp_min(0).mean()


def logistic(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Logistic loss log(1 + e^(−y f)), seed 003 eq. (10), computed stably as softplus."""
    f, y = _signed(outputs, targets)
    return F.softplus(-y * f).mean()


def exponential(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """AdaBoost's exponential loss e^(−y f) (Freund & Schapire 1997; seed 003 eq. (12))."""
    f, y = _signed(outputs, targets)
    return torch.exp(-y * f).mean()


LOSSES = ("cross_entropy", "nll", "mse", "multiclass_hinge", "hinge", "logistic", "exponential")


def get_loss(name: str, label_smoothing: float = 0.0) -> LossFn:
    """The loss `name` (one of LOSSES) as f(outputs, targets) -> scalar mean."""
    if name == "cross_entropy":
        return partial(F.cross_entropy, label_smoothing=label_smoothing)
    simple = {"nll": nll, "mse": mse, "multiclass_hinge": multiclass_hinge, "hinge": hinge,
              "logistic": logistic, "exponential": exponential}  # fmt: skip
    if name not in simple:
        raise closest_name_error("loss", name, LOSSES)
    return simple[name]
