"""Derived classification tasks for multi-task learning (seed 000, "Multi-task Learning":
tasks share the input x and an intermediate representation h(shared)).

A derived task maps each class label of a dataset to a label of a second task, so one dataset
gives several label columns:

* ``fashion_groups`` (Fashion-MNIST, 3 classes): 0 upper body (T-shirt/top, pullover, coat,
  shirt), 1 lower or full body (trouser, dress), 2 footwear and bags (sandal, sneaker, bag,
  ankle boot).
* ``fashion_footwear`` (Fashion-MNIST, 2 classes): 1 footwear (sandal, sneaker, ankle boot),
  0 everything else.
* ``parity`` (any labelled dataset): the label modulo 2.
"""

from __future__ import annotations

import torch

from trainlab.data.bundle import TensorSplit

#  Fashion-MNIST classes: 0 T-shirt/top, 1 Trouser, 2 Pullover, 3 Dress, 4 Coat, 5 Sandal,
#  6 Shirt, 7 Sneaker, 8 Bag, 9 Ankle boot.
_TABLES: dict[str, tuple[int, ...]] = {
    "fashion_groups": (0, 1, 0, 1, 0, 2, 0, 2, 2, 2),
    "fashion_footwear": (0, 0, 0, 0, 0, 1, 0, 1, 0, 1),
}
DERIVED_TASKS = (*_TABLES, "parity")


def derived_classes(name: str, num_classes: int) -> int:
    """Number of classes of derived task `name` on a dataset with `num_classes` labels."""
    if name == "parity":
        return 2
    if num_classes != len(_TABLES[name]):
        raise ValueError(
            f"derived task {name} maps {len(_TABLES[name])} classes (Fashion-MNIST), "
            f"the dataset has {num_classes}"
        )
    return max(_TABLES[name]) + 1


def derive_labels(name: str, y: torch.Tensor) -> torch.Tensor:
    """(N,) int64 labels of derived task `name` for (N,) int64 class labels `y`."""
    if name == "parity":
        return y % 2
    return torch.tensor(_TABLES[name], dtype=torch.int64)[y]


def with_task_labels(split: TensorSplit, derive: list[str | None]) -> TensorSplit:
    """`split` with (N, K) int64 targets: column k is the original label (`derive[k]` None)
    or derived task `derive[k]` of it."""
    if split.y.dtype != torch.int64 or split.y.dim() != 1:
        raise ValueError("multi-task labels need a classification split with (N,) int64 labels")
    columns = [split.y if d is None else derive_labels(d, split.y) for d in derive]
    return TensorSplit(split.x, torch.stack(columns, dim=1))
