"""Max-norm weight constraints (Srivastava et al. 2014, Sec. 5.1; seed 000: "constrain the
norm of each unit's incoming weight vector"): after every step, each unit's incoming weight
vector ``w`` is rescaled to ``w * min(1, c / ||w||)``.

For ``nn.Linear`` a unit's incoming vector is a row of the weight ``[out, in]``; for
convolutions, an output filter ``weight[k]`` flattened. Biases and normalization parameters
are left alone.
"""

from __future__ import annotations

import torch
from torch import nn

from trainlab.train.callbacks import Hooks
from trainlab.train.records import StepRecord

CONSTRAINED = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


@torch.no_grad()
def max_norm_(model: nn.Module, c: float) -> int:
    """Rescale every unit's incoming weight vector to norm <= ``c`` in place; returns how many
    vectors were rescaled."""
    if not c > 0:
        raise ValueError(f"max_norm: expected a norm bound c > 0, got {c}")
    clipped = 0
    for module in model.modules():
        if isinstance(module, CONSTRAINED):
            w = module.weight
            norms = w.reshape(len(w), -1).norm(dim=1)
            scale = (c / norms).clamp(max=1.0)
            clipped += int((norms > c).sum())
            w.mul_(scale.view(-1, *([1] * (w.dim() - 1))))
    return clipped


class MaxNorm(Hooks):
    """Apply `max_norm_` to ``model`` after every optimizer step (a `fit` callback)."""

    def __init__(self, model: nn.Module, c: float) -> None:
        if not c > 0:
            raise ValueError(f"max_norm: expected a norm bound c > 0, got {c}")
        self.model, self.c = model, c

    def on_step_end(self, record: StepRecord) -> None:
        max_norm_(self.model, self.c)
