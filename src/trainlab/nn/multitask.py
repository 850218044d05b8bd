"""Multi-task learning: a shared trunk with one head per task and a weighted sum of the tasks'
losses (seed 000, "Multi-task Learning": generic parameters h(shared) shared across all tasks,
task-specific parameters per head; Caruana 1997, "Multitask learning").

The network's output is the heads' logits side by side, (N, C_1 + ... + C_K), so the training
loop, evaluation and checkpoints handle it as any single tensor; targets are (N, K) int64, one
label column per task. `MultiTaskLoss` splits the logits back into tasks:

    L = Σ_k w_k · CE(logits_k, y_k)
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["MultiTaskLoss", "MultiTaskNet", "split_logits", "task_accuracies"]


def split_logits(outputs: torch.Tensor, sizes: Sequence[int]) -> list[torch.Tensor]:
    """The per-task logits [(N, C_1), ..., (N, C_K)] of side-by-side outputs (N, ΣC_k)."""
    if outputs.shape[-1] != sum(sizes):
        raise ValueError(f"outputs have {outputs.shape[-1]} columns, the tasks {sum(sizes)}")
    return list(torch.split(outputs, list(sizes), dim=-1))


class MultiTaskNet(nn.Module):
    """`trunk` (shared representation) followed by one head per task; forward returns the
    heads' logits concatenated, (N, ΣC_k). `sizes` are the heads' output widths."""

    def __init__(self, trunk: nn.Module, heads: Sequence[nn.Module], sizes: Sequence[int]):
        super().__init__()
        if len(heads) != len(sizes) or not heads:
            raise ValueError(f"expected one size per head, got {len(heads)} heads, {sizes}")
        self.trunk = trunk
        self.heads = nn.ModuleList(heads)
        self.sizes = tuple(sizes)

    @classmethod
    def from_single_head(cls, model: nn.Sequential, sizes: Sequence[int]) -> MultiTaskNet:
        """Replace the final `nn.Linear` of a zoo network by one Linear head per task; all
        the layers before it become the shared trunk."""
        last = model[-1]
        if not isinstance(last, nn.Linear):
            raise ValueError(f"the model must end in nn.Linear, got {type(last).__name__}")
        heads = [nn.Linear(last.in_features, c) for c in sizes]
        return cls(nn.Sequential(*list(model)[:-1]), heads, sizes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.trunk(x)
        return torch.cat([head(h) for head in self.heads], dim=-1)


class MultiTaskLoss:
    """Σ_k w_k · cross_entropy(logits_k, targets[:, k]) (optionally label-smoothed).

    `per_task(outputs, targets)` gives the unweighted per-task losses L_k. A zero weight adds
    0 · L_k, so that head receives a zero gradient."""

    def __init__(
        self, sizes: Sequence[int], weights: Sequence[float], label_smoothing: float = 0.0
    ) -> None:
        if len(sizes) != len(weights):
            raise ValueError(f"expected one weight per task, got {len(weights)} for {sizes}")
        if any(w < 0 for w in weights):
            raise ValueError(f"task weights must be >= 0, got {list(weights)}")
        self.sizes, self.weights = tuple(sizes), tuple(weights)
        self.label_smoothing = label_smoothing

    def per_task(self, outputs: torch.Tensor, targets: torch.Tensor) -> list[torch.Tensor]:
        """[L_1, ..., L_K], each the mean cross-entropy of one task."""
        return [
            F.cross_entropy(logits, targets[:, k], label_smoothing=self.label_smoothing)
            for k, logits in enumerate(split_logits(outputs, self.sizes))
        ]

    def __call__(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        losses = self.per_task(outputs, targets)
        return sum((w * loss for w, loss in zip(self.weights, losses, strict=True)), start=0.0)


@torch.inference_mode()
def task_accuracies(
    model: nn.Module, x: torch.Tensor, targets: torch.Tensor, sizes: Sequence[int],
    batch_size: int = 1000,
) -> list[float]:  # fmt: skip
    """Accuracy of each task's head on (x, targets (N, K)), in eval mode (mode restored)."""
    was_training = model.training
    model.eval()
    correct = torch.zeros(len(sizes), dtype=torch.int64)
    for lo in range(0, len(x), batch_size):
        parts = split_logits(model(x[lo : lo + batch_size]), sizes)
        y = targets[lo : lo + batch_size]
        correct += torch.stack([(p.argmax(1) == y[:, k]).sum() for k, p in enumerate(parts)])
    model.train(was_training)
    return [int(c) / max(len(x), 1) for c in correct]
