"""Small synthetic datasets for fast tests and demonstrations, all seeded by `seed`.

Train and test are drawn from the same distribution by one `torch.Generator`; the first
`n_train` draws are the training split and the next `n_test` the test split.
"""

from __future__ import annotations

import math

import torch

from .bundle import DataBundle, TensorSplit


def _check_sizes(**sizes: int) -> None:
    for field, value in sizes.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{field} must be a positive int, got {value!r}")


def _bundle(name: str, x: torch.Tensor, y: torch.Tensor, n_train: int, classes: int | None):
    train = TensorSplit(x[:n_train].contiguous(), y[:n_train].contiguous())
    test = TensorSplit(x[n_train:].contiguous(), y[n_train:].contiguous())
    return DataBundle(name, train, test, num_classes=classes, source="generated")


def _balanced_labels(sizes: tuple[int, int], k: int, g: torch.Generator) -> torch.Tensor:
    """Shuffled int64 labels for train then test; in each split every one of the k classes
    occurs size//k or size//k + 1 times."""
    parts = [(torch.arange(n) % k)[torch.randperm(n, generator=g)] for n in sizes]
    return torch.cat(parts)


def make_spirals(
    *,
    seed: int = 0,
    n_train: int = 1000,
    n_test: int = 1000,
    noise: float = 0.05,
    turns: float = 1.5,
) -> DataBundle:
    """Two interleaved spirals (Lang & Witbrock 1988): x float32 (N, 2), y int64 in {0, 1}.

    A point at t ~ U(0, 1) sits at radius t and angle 2*pi*turns*t + pi*y, plus Gaussian
    noise of standard deviation `noise`; a linear model cannot separate the classes.
    """
    _check_sizes(n_train=n_train, n_test=n_test)
    g = torch.Generator().manual_seed(seed)
    n = n_train + n_test
    y = _balanced_labels((n_train, n_test), 2, g)
    t = torch.rand(n, generator=g)
    angle = 2 * math.pi * turns * t + math.pi * y
    x = torch.stack([t * torch.cos(angle), t * torch.sin(angle)], dim=1)
    x = x + noise * torch.randn(n, 2, generator=g)
    return _bundle("spirals", x, y, n_train, classes=2)


def make_blobs(
    *,
    seed: int = 0,
    n_train: int = 1000,
    n_test: int = 1000,
    num_classes: int = 3,
    dim: int = 2,
    std: float = 1.0,
    center_box: float = 10.0,
) -> DataBundle:
    """Isotropic Gaussian blobs, one per class (as sklearn.datasets.make_blobs).

    Centres are uniform in [-center_box, center_box]^dim; x float32 (N, dim), y int64.
    """
    _check_sizes(n_train=n_train, n_test=n_test, num_classes=num_classes, dim=dim)
    g = torch.Generator().manual_seed(seed)
    n = n_train + n_test
    centers = (2 * torch.rand(num_classes, dim, generator=g) - 1) * center_box
    y = _balanced_labels((n_train, n_test), num_classes, g)
    x = centers[y] + std * torch.randn(n, dim, generator=g)
    return _bundle("blobs", x, y, n_train, classes=num_classes)


def make_regression1d(
    *,
    seed: int = 0,
    n_train: int = 200,
    n_test: int = 200,
    noise: float = 0.1,
    low: float = -math.pi,
    high: float = math.pi,
) -> DataBundle:
    """1-D regression y = sin(x) + noise * N(0, 1), x ~ U(low, high): x, y float32 (N, 1)."""
    _check_sizes(n_train=n_train, n_test=n_test)
    g = torch.Generator().manual_seed(seed)
    n = n_train + n_test
    x = low + (high - low) * torch.rand(n, 1, generator=g)
    y = torch.sin(x) + noise * torch.randn(n, 1, generator=g)
    return _bundle("regression1d", x, y, n_train, classes=None)
