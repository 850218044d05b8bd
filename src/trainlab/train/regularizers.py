"""Penalties added to the training objective: L1, L2 (λ/2·Σ‖W‖², CS231n), the group penalty
λ·Σ_i ‖W_i‖₂ over weight tensors (seed 004, eq. 19), and activity regularization on chosen
layers' outputs (Keras' activity_regularizer: λ1·Σ|a| + λ2·Σa², averaged over the batch).

By default only weights are penalized: tensors with more than one dimension (biases and
normalization parameters are left alone), configurable with `include_1d`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn


def penalized_params(model: nn.Module, include_1d: bool = False) -> list[torch.Tensor]:
    """The parameters a weight penalty applies to: weights only unless `include_1d`."""
    return [p for p in model.parameters() if p.requires_grad and (include_1d or p.dim() > 1)]


@dataclass
class WeightPenalty:
    """λ1·Σ|w| + λ2/2·Σw² + λg·Σ_i ‖W_i‖₂ over the chosen parameters."""

    params: list[torch.Tensor]
    l1: float = 0.0
    l2: float = 0.0
    group: float = 0.0

    def __call__(self) -> torch.Tensor:
        total = torch.zeros(())
        if self.l2:
            total = total + self.l2 / 2 * sum(p.pow(2).sum() for p in self.params)
        if self.l1:
            total = total + self.l1 * sum(p.abs().sum() for p in self.params)
        if self.group:
            total = total + self.group * sum(torch.linalg.vector_norm(p) for p in self.params)
        return total


@dataclass
class ActivityPenalty:
    """Penalize the outputs of named submodules on every forward (forward hooks). Call the
    object after the forward to get (and clear) the accumulated penalty; `remove()` the hooks
    when done."""

    model: nn.Module
    layers: Sequence[str]
    l1: float = 0.0
    l2: float = 0.0
    _terms: list[torch.Tensor] = field(default_factory=list)
    _handles: list = field(default_factory=list)

    def __post_init__(self) -> None:
        modules = dict(self.model.named_modules())
        for name in self.layers:
            if name not in modules:
                valid = ", ".join(n for n in modules if n)
                raise ValueError(f"activity regularization: no layer '{name}'; layers: {valid}")
            self._handles.append(modules[name].register_forward_hook(self._hook))

    def _hook(self, module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        if module.training:
            batch = output.shape[0]
            self._terms.append(
                (self.l1 * output.abs().sum() + self.l2 * output.pow(2).sum()) / batch
            )

    def __call__(self) -> torch.Tensor:
        total = sum(self._terms, torch.zeros(()))
        self._terms.clear()
        return total

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
