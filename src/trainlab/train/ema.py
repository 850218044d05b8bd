"""An exponential moving average of the weights, kept during training for evaluation (seed 000,
"Model Ensembles": ``x_test = 0.995*x_test + 0.005*x  # use for test set``; Polyak & Juditsky
1992).

After each optimizer step t (1-based), with x_t the weights:

    avg_0 = x_0,    avg_t = decay · avg_{t-1} + (1 − decay) · x_t

the same rule as `trainlab.optim.ema_weights`, but as a `fit` callback, so it works with any
optimizer (trainlab's, torch's, SAM) and leaves the optimizer state alone.

BatchNorm (and Batch Renorm) running statistics are floating-point buffers and are averaged
with the same rule, as timm's ModelEmaV2 does: no extra pass over the data, and with decay 0
the averaged model equals the raw one exactly. Integer buffers (``num_batches_tracked``) are
copied from the raw model.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from trainlab.train.callbacks import Hooks
from trainlab.train.records import StepRecord


class EMAWeights(Hooks):
    """Keeps ``avg`` of `model`'s floating-point state (parameters and buffers) after each
    step; `averaged_model()` returns a copy of the model holding it. `state_dict` /
    `load_state_dict` carry it through checkpoints."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"ema decay: expected 0 <= decay < 1, got {decay}")
        self.model, self.decay = model, decay
        self.avg: dict[str, torch.Tensor] = {
            k: v.detach().clone() for k, v in model.state_dict().items() if v.is_floating_point()
        }

    def on_step_end(self, record: StepRecord) -> None:
        state = self.model.state_dict()
        with torch.no_grad():
            keys = list(self.avg)
            torch._foreach_lerp_(
                [self.avg[k] for k in keys], [state[k].detach() for k in keys], 1.0 - self.decay
            )
        return None

    def averaged_model(self) -> nn.Module:
        """A deep copy of the model with the averaged weights and statistics loaded."""
        twin = copy.deepcopy(self.model)
        twin.load_state_dict({**self.model.state_dict(), **self.avg})
        return twin

    def state_dict(self) -> dict:
        return {"decay": self.decay, "avg": self.avg}

    def load_state_dict(self, state: dict) -> None:
        self.decay = state["decay"]
        self.avg = {k: v.clone() for k, v in state["avg"].items()}
