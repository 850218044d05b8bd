"""Uniform averages of the weights along training, kept for evaluation: stochastic weight
averaging (Izmailov et al. 2018, "Averaging Weights Leads to Wider Optima and Better
Generalization") and Polyak–Ruppert averaging (Polyak & Juditsky 1992; seed 000, "Model
Ensembles": average the iterates, evaluate the average).

From the end of epoch ``start_epoch`` on (or from step 1 when ``start_epoch`` is 0), after each
epoch (``every="epoch"``, SWA) or each step (``every="step"``, Polyak), with w the weights:

    n = 1: avg = w;    n > 1: avg = lerp(avg, w, 1/n)

which is torch.optim.swa_utils.AveragedModel's rule (tested equal to it). Only the parameters
are averaged, as torch does; BatchNorm running statistics of the averaged weights are then
recomputed by one training-mode pass over the training batches (torch's ``update_bn``), since
averaging statistics of other weights would not describe these.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Literal

import torch
from torch import nn

from trainlab.landscape.curves import has_batchnorm, recompute_batchnorm
from trainlab.train.callbacks import Hooks
from trainlab.train.records import EpochRecord, StepRecord


class SWAWeights(Hooks):
    """Keeps the uniform average of `model`'s parameters (see the module docstring);
    `averaged_model(batches)` returns a copy of the model holding it, with BatchNorm statistics
    recomputed over ``batches``. `state_dict` / `load_state_dict` carry it through checkpoints."""

    def __init__(
        self, model: nn.Module, start_epoch: int = 1, every: Literal["epoch", "step"] = "epoch"
    ) -> None:
        if start_epoch < 0:
            raise ValueError(f"swa start_epoch: expected an epoch count >= 0, got {start_epoch}")
        if every not in ("epoch", "step"):
            raise ValueError(f"swa every: expected 'epoch' or 'step', got {every!r}")
        self.model, self.start_epoch, self.every = model, start_epoch, every
        self.count = 0
        self.avg: list[torch.Tensor] = [p.detach().clone() for p in model.parameters()]

    def update(self) -> None:
        """Add the model's current parameters to the average."""
        self.count += 1
        with torch.no_grad():
            params = [p.detach() for p in self.model.parameters()]
            if self.count == 1:
                torch._foreach_copy_(self.avg, params)
            else:
                torch._foreach_lerp_(self.avg, params, 1.0 / self.count)

    def on_step_end(self, record: StepRecord) -> None:
        if self.every == "step" and record.epoch >= self.start_epoch:
            self.update()

    def on_epoch_end(self, record: EpochRecord) -> None:
        if self.every == "epoch" and record.epoch >= max(self.start_epoch, 1):
            self.update()

    def averaged_model(self, batches: Iterable[torch.Tensor] = ()) -> nn.Module:
        """A deep copy of the model with the averaged parameters; its BatchNorm statistics
        recomputed over ``batches`` (inputs only) when it has BatchNorm."""
        twin = copy.deepcopy(self.model)
        with torch.no_grad():
            torch._foreach_copy_([p.detach() for p in twin.parameters()], self.avg)
        if has_batchnorm(twin):
            buffers = recompute_batchnorm(twin, list(twin.parameters()), batches)
            twin.load_state_dict(buffers, strict=False)
        return twin

    def state_dict(self) -> dict:
        return {"count": self.count, "avg": self.avg}

    def load_state_dict(self, state: dict) -> None:
        self.count = int(state["count"])
        self.avg = [v.clone() for v in state["avg"]]
