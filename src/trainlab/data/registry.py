"""Datasets by name: `load_dataset`, `dataset_info` and the `DATASETS` list."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import cifar, fetch, generated, mnist, small
from .bundle import DataBundle
from .errors import UnknownDatasetError


@dataclass(frozen=True)
class _Entry:
    """How to load one dataset, what it looks like, and which options it takes."""

    task: str  # "classification" or "regression"
    num_classes: int | None
    input_shape: tuple[int, ...]
    sizes: tuple[int, int]  # default (train, test)
    load: Callable[..., DataBundle]  # load(root, download, seed, **options)
    options: dict[str, Any] = field(default_factory=dict)  # option -> default
    where: Callable[[str | Path | None], dict] | None = None  # real sets: lookup report
    source: str = "generated"  # for sets that are not looked up on disk
    canonical_seed: int = 0  # the seed of the published (or default) version of the set


_DOWNLOAD_OPTIONS = {"mirror": None, "md5s": None, "timeout": fetch.DEFAULT_TIMEOUT}


def _idx(spec: mnist.IdxDataset) -> _Entry:
    return _Entry(
        task="classification",
        num_classes=10,
        input_shape=(1, 28, 28),
        sizes=(60000, 10000),
        load=lambda root, download, seed, **o: mnist.load_idx_dataset(
            spec, root=root, download=download, **o
        ),
        options=dict(_DOWNLOAD_OPTIONS),
        where=lambda root: mnist.idx_dataset_info(spec, root),
    )


_ENTRIES: dict[str, _Entry] = {
    "fashion_mnist": _idx(mnist.FASHION_MNIST),
    "mnist": _idx(mnist.MNIST),
    "cifar10": _Entry(
        task="classification",
        num_classes=10,
        input_shape=(3, 32, 32),
        sizes=(50000, 10000),
        load=lambda root, download, seed, **o: cifar.load_cifar10(
            root=root, download=download, **o
        ),
        options=dict(_DOWNLOAD_OPTIONS),
        where=cifar.cifar10_info,
    ),
    "mnist1d": _Entry(
        task="classification",
        num_classes=10,
        input_shape=(40,),
        sizes=(4000, 1000),
        load=lambda root, download, seed, **o: small.make_mnist1d(seed=seed, **o),
        options={"num_samples": 5000, "train_split": 0.8},
        canonical_seed=42,  # mnist1d's get_dataset_args(): the set of the paper
    ),
    "digits": _Entry(
        task="classification",
        num_classes=10,
        input_shape=(1, 8, 8),
        sizes=(1437, 360),
        load=lambda root, download, seed, **o: small.load_digits_bundle(seed=seed, **o),
        options={"test_fraction": 0.2},
        source="scikit-learn (bundled)",
    ),
    "spirals": _Entry(
        task="classification",
        num_classes=2,
        input_shape=(2,),
        sizes=(1000, 1000),
        load=lambda root, download, seed, **o: generated.make_spirals(seed=seed, **o),
        options={"n_train": 1000, "n_test": 1000, "noise": 0.05, "turns": 1.5},
    ),
    "blobs": _Entry(
        task="classification",
        num_classes=3,
        input_shape=(2,),
        sizes=(1000, 1000),
        load=lambda root, download, seed, **o: generated.make_blobs(seed=seed, **o),
        options={
            "n_train": 1000,
            "n_test": 1000,
            "num_classes": 3,
            "dim": 2,
            "std": 1.0,
            "center_box": 10.0,
        },
    ),
    "regression1d": _Entry(
        task="regression",
        num_classes=None,
        input_shape=(1,),
        sizes=(200, 200),
        load=lambda root, download, seed, **o: generated.make_regression1d(seed=seed, **o),
        options={
            "n_train": 200,
            "n_test": 200,
            "noise": 0.1,
            "low": -3.141592653589793,
            "high": 3.141592653589793,
        },
    ),
}

DATASETS: tuple[str, ...] = tuple(_ENTRIES)


def _entry(name: str) -> _Entry:
    if name in _ENTRIES:
        return _ENTRIES[name]
    closest = difflib.get_close_matches(str(name), DATASETS, n=1, cutoff=0.0)
    hint = f"did you mean '{closest[0]}'? " if closest else ""
    raise UnknownDatasetError(f"unknown dataset {name!r}; {hint}valid names: {', '.join(DATASETS)}")


def load_dataset(
    name: str,
    *,
    root: str | Path | None = None,
    download: bool = True,
    seed: int | None = None,
    **options: Any,
) -> DataBundle:
    """Load dataset `name` (one of `DATASETS`) as in-memory train and test splits.

    Real sets (fashion_mnist, mnist, cifar10) are looked for on disk and downloaded only if
    `download`; `root` replaces the lookup directories. Generated sets and the digits split
    depend on `seed`; None is the set's canonical seed (42 for MNIST-1D, as its paper; else
    0), so the same dataset comes back whatever model seed a run uses. `options` are per
    dataset (see `dataset_info(name)["options"]`).
    """
    entry = _entry(name)
    unknown = sorted(set(options) - set(entry.options))
    if unknown:
        valid = ", ".join(entry.options) or "none"
        raise ValueError(f"load_dataset({name!r}): unknown option {unknown[0]!r}; valid: {valid}")
    return entry.load(root, download, entry.canonical_seed if seed is None else seed, **options)


def dataset_info(name: str, *, root: str | Path | None = None) -> dict:
    """Describe dataset `name` without downloading or loading it.

    Keys: name, task, num_classes, input_shape, train_size, test_size, options (defaults),
    source (where it was found; None if not), and for real sets found, looked_in,
    download_url, download_to, how_to_get, classes. Sizes of found IDX sets come from their
    headers; otherwise they are the defaults.
    """
    entry = _entry(name)
    info: dict = {
        "name": name,
        "task": entry.task,
        "num_classes": entry.num_classes,
        "input_shape": entry.input_shape,
        "train_size": entry.sizes[0],
        "test_size": entry.sizes[1],
        "options": dict(entry.options),
        "source": entry.source if entry.where is None else None,
    }
    if entry.where is not None:
        info.update(entry.where(root))
    return info
