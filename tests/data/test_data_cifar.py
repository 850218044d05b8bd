"""CIFAR-10 loader on small batches generated in the official python-pickle format."""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from trainlab.data import DataFormatError, DataNotFoundError, load_dataset

TRAIN = [f"data_batch_{i}" for i in range(1, 6)]


def check_against_batches(bundle, batches: dict, n: int) -> None:
    """Pixel (c, r, col) of image i is data[i, 1024 c + 32 r + col] / 255 (the CIFAR layout)."""
    assert bundle.train.x.shape == (5 * n, 3, 32, 32) and bundle.test.x.shape == (n, 3, 32, 32)
    assert bundle.train.x.dtype == torch.float32 and bundle.train.y.dtype == torch.int64
    labels = [label for name in TRAIN for label in batches[name][b"labels"]]
    assert bundle.train.y.tolist() == labels
    assert bundle.test.y.tolist() == batches["test_batch"][b"labels"]
    data = batches["data_batch_3"][b"data"]  # rows 2n..3n-1 of train
    for i, c, r, col in [(0, 0, 0, 0), (1, 2, 31, 31), (n - 1, 1, 5, 17)]:
        expected = data[i, 1024 * c + 32 * r + col] / 255
        assert bundle.train.x[2 * n + i, c, r, col].item() == pytest.approx(expected, abs=1e-7)
    assert bundle.num_classes == 10 and bundle.input_shape == (3, 32, 32)


def test_loads_batch_directory_from_trainlab_data(make_cifar, data_env):
    batches = make_cifar(data_env["data"] / "cifar10", n=4)
    bundle = load_dataset("cifar10", download=False)
    check_against_batches(bundle, batches, 4)
    assert bundle.source == str(data_env["data"] / "cifar10" / "cifar-10-batches-py")


def test_reads_archive_in_place_without_writing(make_cifar, data_env):
    batches = make_cifar(data_env["data"] / "cifar10", archive=True, n=3)
    bundle = load_dataset("cifar10", download=False)
    check_against_batches(bundle, batches, 3)
    assert sorted(p.name for p in (data_env["data"] / "cifar10").iterdir()) == [
        "cifar-10-python.tar.gz"
    ]


def test_download_verifies_and_extracts_into_cache(make_cifar, http_server, data_env):
    served, url, requests = http_server
    batches = make_cifar(served, archive=True, n=2)
    md5 = hashlib.md5((served / "cifar-10-python.tar.gz").read_bytes()).hexdigest()
    bundle = load_dataset("cifar10", mirror=url, md5s={"cifar-10-python.tar.gz": md5})
    check_against_batches(bundle, batches, 2)
    cache = data_env["cache"] / "trainlab" / "cifar10"
    assert sorted(p.name for p in cache.iterdir()) == ["cifar-10-batches-py"]  # archive removed
    assert sorted(p.name for p in (cache / "cifar-10-batches-py").iterdir()) == sorted(
        [*TRAIN, "test_batch"]
    )
    check_against_batches(load_dataset("cifar10", mirror=url), batches, 2)
    assert requests == ["/cifar-10-python.tar.gz"]


def test_corrupt_download_leaves_nothing(make_cifar, http_server, data_env):
    served, url, _ = http_server
    make_cifar(served, archive=True, n=2)
    with pytest.raises(DataNotFoundError) as info:
        load_dataset("cifar10", mirror=url, md5s={"cifar-10-python.tar.gz": "1" * 32})
    assert "\n" not in str(info.value) and "MD5 mismatch" in str(info.value)
    assert not data_env["cache"].exists()


def test_pickle_with_foreign_global_is_refused(make_cifar, data_env, tmp_path: Path):
    make_cifar(data_env["data"] / "cifar10", n=2)
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (Path.touch, (marker,))

    evil = {b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 1], b"x": Evil()}
    batch = data_env["data"] / "cifar10" / "cifar-10-batches-py" / "data_batch_2"
    batch.write_bytes(pickle.dumps(evil, protocol=2))
    with pytest.raises(DataFormatError, match="data_batch_2"):
        load_dataset("cifar10", download=False)
    assert not marker.exists()


def test_wrong_shape_batch_is_a_format_error(make_cifar, data_env):
    make_cifar(data_env["data"] / "cifar10", n=2)
    bad = {b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}
    path = data_env["data"] / "cifar10" / "cifar-10-batches-py" / "test_batch"
    path.write_bytes(pickle.dumps(bad, protocol=2))
    with pytest.raises(DataFormatError) as info:
        load_dataset("cifar10", download=False)
    assert "\n" not in str(info.value) and "3072" in str(info.value)
