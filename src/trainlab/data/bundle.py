"""In-memory containers: one split (`TensorSplit`) and a named train/test pair (`DataBundle`)."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class TensorSplit:
    """One split held in memory.

    x: images float32 (N, C, H, W) in [0, 1], or tabular / 1-D float32 (N, D).
    y: int64 (N,) class labels, or float32 (N, 1) regression targets.
    """

    x: torch.Tensor
    y: torch.Tensor

    def __post_init__(self) -> None:
        if self.x.shape[0] != self.y.shape[0]:
            raise ValueError(
                f"TensorSplit: x has {self.x.shape[0]} rows but y has {self.y.shape[0]}; "
                "expected the same number of samples"
            )

    def __len__(self) -> int:
        return int(self.x.shape[0])


@dataclass(frozen=True)
class DataBundle:
    """A dataset's train and test splits plus what a model builder needs to know about them."""

    name: str
    train: TensorSplit
    test: TensorSplit
    num_classes: int | None  # None for regression
    source: str  # directory it was read from, or "generated" / "scikit-learn"

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one sample, e.g. (1, 28, 28) for Fashion-MNIST or (40,) for MNIST-1D."""
        return tuple(self.train.x.shape[1:])
