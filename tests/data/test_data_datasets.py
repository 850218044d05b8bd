"""Dataset registry, generated and bundled sets, and the real Fashion-MNIST when installed."""

from __future__ import annotations

import inspect
import math
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from trainlab.data import (
    DATASETS,
    UnknownDatasetError,
    dataset_info,
    generated,
    load_dataset,
    small,
)

DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")


def test_dataset_names() -> None:
    assert DATASETS == (
        "fashion_mnist", "mnist", "cifar10", "mnist1d", "digits", "spirals", "blobs",
        "regression1d",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("typo", "closest"),
    [("fashion-mnist", "fashion_mnist"), ("cifar", "cifar10"), ("spiral", "spirals")],
)
def test_unknown_name_names_the_closest(typo, closest) -> None:
    with pytest.raises(UnknownDatasetError) as info:
        load_dataset(typo)
    message = str(info.value)
    assert "\n" not in message and f"did you mean '{closest}'" in message
    assert isinstance(info.value, ValueError)
    with pytest.raises(UnknownDatasetError, match=closest):
        dataset_info(typo)


def test_unknown_option_is_one_line_error() -> None:
    with pytest.raises(ValueError, match="unknown option 'nosie'.*noise"):
        load_dataset("spirals", nosie=0.1)


@pytest.mark.parametrize(
    ("name", "function"),
    [
        ("spirals", generated.make_spirals),
        ("blobs", generated.make_blobs),
        ("regression1d", generated.make_regression1d),
        ("mnist1d", small.make_mnist1d),
        ("digits", small.load_digits_bundle),
    ],
)
def test_info_options_are_the_loader_defaults(name, function) -> None:
    defaults = {
        p.name: p.default
        for p in inspect.signature(function).parameters.values()
        if p.name != "seed"
    }
    assert dataset_info(name)["options"] == defaults


@pytest.mark.parametrize("name", ["spirals", "blobs", "regression1d", "digits"])
def test_generated_sets_match_info_and_are_seeded(name) -> None:
    bundle = load_dataset(name, seed=1)
    info = dataset_info(name)
    assert bundle.input_shape == info["input_shape"] and bundle.num_classes == info["num_classes"]
    assert (len(bundle.train), len(bundle.test)) == (info["train_size"], info["test_size"])
    assert bundle.train.x.dtype == torch.float32
    assert bundle.train.y.dtype == (torch.float32 if info["task"] == "regression" else torch.int64)
    again, other = load_dataset(name, seed=1), load_dataset(name, seed=2)
    assert torch.equal(again.train.x, bundle.train.x) and torch.equal(again.test.y, bundle.test.y)
    assert not torch.equal(other.train.x, bundle.train.x)


def test_spirals_geometry() -> None:
    b = load_dataset("spirals", n_train=4000, n_test=10, noise=0.0, turns=1.0)
    assert torch.bincount(b.train.y).tolist() == [2000, 2000]
    # Without noise a point at radius t has angle 2*pi*t (+ pi for class 1).
    x, y = b.train.x.double(), b.train.y.double()
    r = x.norm(dim=1)
    angle = 2 * math.pi * r + math.pi * y
    torch.testing.assert_close(
        x, torch.stack([r * angle.cos(), r * angle.sin()], 1), atol=1e-5, rtol=0
    )
    assert float(r.max()) <= 1.0


def test_blobs_cluster_around_distinct_centres() -> None:
    b = load_dataset("blobs", n_train=3000, n_test=10, num_classes=3, std=0.5, seed=0)
    assert torch.bincount(b.train.y).tolist() == [1000, 1000, 1000]
    for k in range(3):
        spread = b.train.x[b.train.y == k].std(dim=0)
        torch.testing.assert_close(spread, torch.full((2,), 0.5), atol=0.05, rtol=0)


def test_regression_noise_level() -> None:
    b = load_dataset("regression1d", n_train=20000, n_test=10, noise=0.1, seed=3)
    assert b.train.y.shape == (20000, 1) and b.num_classes is None
    residual = b.train.y - torch.sin(b.train.x)
    assert abs(residual.std().item() - 0.1) < 0.003 and abs(residual.mean().item()) < 0.003
    assert b.train.x.min() >= -math.pi and b.train.x.max() <= math.pi


def test_digits_scaled_and_split() -> None:
    b = load_dataset("digits", seed=0)
    reference = load_digits()
    assert b.input_shape == (1, 8, 8) and (len(b.train), len(b.test)) == (1437, 360)
    assert b.train.x.min() == 0.0 and b.train.x.max() == 1.0  # 16 / 16
    counts = torch.bincount(b.train.y, minlength=10) + torch.bincount(b.test.y, minlength=10)
    assert counts.tolist() == np.bincount(reference.target).tolist()
    # the first training image is one of sklearn's images, divided by 16
    diff = np.abs(reference.images / 16 - b.train.x[0, 0].numpy()).reshape(
        len(reference.images), -1
    )
    assert diff.max(axis=1).min() < 1e-7


def test_mnist1d_is_generated_locally_and_keeps_global_rngs() -> None:
    np.random.seed(11)
    random.seed(11)
    np_state, py_state = np.random.get_state()[1].copy(), random.getstate()
    b = load_dataset("mnist1d", seed=0, num_samples=200)
    assert np.array_equal(np.random.get_state()[1], np_state) and random.getstate() == py_state
    assert b.input_shape == (40,) and (len(b.train), len(b.test)) == (160, 40)
    assert b.train.x.dtype == torch.float32 and b.train.y.dtype == torch.int64
    assert set(b.train.y.tolist()) <= set(range(10)) and b.num_classes == 10
    assert torch.equal(load_dataset("mnist1d", seed=0, num_samples=200).train.x, b.train.x)


@pytest.mark.skipif(
    not DEBIAN_FASHION.is_dir(),
    reason="real Fashion-MNIST not installed at /usr/share/datasets/fashion-mnist "
    "(apt-get install dataset-fashion-mnist)",
)
def test_real_fashion_mnist_from_debian_package() -> None:
    info = dataset_info("fashion_mnist")
    assert info["source"] == str(DEBIAN_FASHION)
    assert (info["train_size"], info["test_size"]) == (60000, 10000)
    b = load_dataset("fashion_mnist", download=False)
    assert b.source == str(DEBIAN_FASHION)
    assert b.train.x.shape == (60000, 1, 28, 28) and b.test.x.shape == (10000, 1, 28, 28)
    assert b.num_classes == 10
    assert torch.bincount(b.train.y).tolist() == [6000] * 10
    assert torch.bincount(b.test.y).tolist() == [1000] * 10
    assert b.train.x.min() == 0.0 and b.train.x.max() == 1.0
    # Published statistics (mean 0.2860, std 0.3530) and first labels (ankle boot, T-shirt, ...)
    assert b.train.x.mean().item() == pytest.approx(0.2860, abs=5e-5)
    assert b.train.x.std().item() == pytest.approx(0.3530, abs=5e-5)
    assert b.train.y[:5].tolist() == [9, 0, 0, 3, 0]
