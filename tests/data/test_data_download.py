"""Lookup order and the download path (good, corrupt, offline) against a local HTTP server."""

from __future__ import annotations

import hashlib
import socket
from pathlib import Path

import numpy as np
import pytest
import torch

from trainlab.data import DataNotFoundError, dataset_info, load_dataset
from trainlab.data.fetch import DownloadError, download_file

GZ_FILES = [
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
]


def md5s_of(directory: Path) -> dict[str, str]:
    return {name: hashlib.md5((directory / name).read_bytes()).hexdigest() for name in GZ_FILES}


def files_under(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.is_file()) if directory.exists() else []


def refused_url() -> str:
    """A 127.0.0.1 URL on a port nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def assert_matches(bundle, arrays) -> None:
    """Bundle tensors equal the generated arrays: /255 floats with a channel dim, int64 labels."""
    expected_x = torch.from_numpy(arrays["train-images-idx3-ubyte"].astype(np.float32) / 255)
    torch.testing.assert_close(bundle.train.x, expected_x[:, None], rtol=0, atol=0)
    assert bundle.train.y.tolist() == arrays["train-labels-idx1-ubyte"].tolist()
    assert bundle.test.y.tolist() == arrays["t10k-labels-idx1-ubyte"].tolist()
    assert bundle.train.y.dtype == torch.int64


def test_good_download_lands_in_cache_and_is_reused(http_server, make_idx_set, data_env):
    served, url, requests = http_server
    arrays = make_idx_set(served)
    bundle = load_dataset("mnist", mirror=url, md5s=md5s_of(served))
    cache = data_env["cache"] / "trainlab" / "mnist"
    assert_matches(bundle, arrays)
    assert bundle.source == str(cache)
    assert sorted(p.name for p in files_under(cache)) == sorted(GZ_FILES)  # no temp files
    assert len(requests) == 4
    again = load_dataset("mnist", mirror=url, md5s=md5s_of(served))
    assert len(requests) == 4  # second load read the cache
    assert_matches(again, arrays)


def test_download_only_fetches_missing_files(http_server, make_idx_set, data_env):
    served, url, requests = http_server
    make_idx_set(served)
    cache = data_env["cache"] / "trainlab" / "mnist"
    cache.mkdir(parents=True)
    (cache / GZ_FILES[1]).write_bytes((served / GZ_FILES[1]).read_bytes())
    load_dataset("mnist", mirror=url, md5s=md5s_of(served))
    assert sorted(requests) == sorted("/" + f for f in GZ_FILES if f != GZ_FILES[1])


def test_md5_mismatch_raises_and_leaves_nothing(http_server, make_idx_set, data_env):
    served, url, _ = http_server
    make_idx_set(served)
    md5s = md5s_of(served)
    md5s["t10k-images-idx3-ubyte.gz"] = "0" * 32  # third file: two good ones come before it
    with pytest.raises(DataNotFoundError) as info:
        load_dataset("mnist", mirror=url, md5s=md5s)
    message = str(info.value)
    assert "\n" not in message and "MD5 mismatch" in message
    assert not data_env["cache"].exists()  # the two good files went too


def test_truncated_file_on_server_fails_checksum(http_server, make_idx_set, data_env):
    served, url, _ = http_server
    make_idx_set(served)
    md5s = md5s_of(served)
    path = served / GZ_FILES[0]
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DataNotFoundError, match="MD5 mismatch"):
        load_dataset("mnist", mirror=url, md5s=md5s)
    assert not data_env["cache"].exists()


def test_http_404_raises_and_leaves_nothing(http_server, make_idx_set, data_env):
    served, url, _ = http_server
    make_idx_set(served)
    md5s = md5s_of(served)
    (served / GZ_FILES[3]).unlink()
    with pytest.raises(DataNotFoundError, match="404"):
        load_dataset("mnist", mirror=url, md5s=md5s)
    assert not data_env["cache"].exists()


def test_offline_connection_refused_is_one_clear_line(data_env):
    with pytest.raises(DataNotFoundError) as info:
        load_dataset("mnist", mirror=refused_url(), timeout=5)
    message = str(info.value)
    assert "\n" not in message
    assert str(data_env["data"] / "mnist") in message  # where it looked
    assert str(data_env["cache"] / "trainlab" / "mnist") in message
    assert "TRAINLAB_DATA" in message and "retry when" in message  # how to get it
    assert not data_env["cache"].exists()  # not even an empty directory is left


def test_download_false_never_connects(http_server, data_env):
    _, url, requests = http_server
    with pytest.raises(DataNotFoundError) as info:
        load_dataset("mnist", download=False, mirror=url)
    assert "\n" not in str(info.value) and "download=False" in str(info.value)
    assert requests == []


def test_fashion_offline_message_names_apt_package(tmp_path):
    # root= replaces the lookup list, so the Debian copy (if installed) is not found here.
    with pytest.raises(DataNotFoundError) as info:
        load_dataset("fashion_mnist", root=tmp_path / "empty", mirror=refused_url(), timeout=5)
    message = str(info.value)
    assert "\n" not in message
    assert "apt-get install dataset-fashion-mnist" in message
    assert str(tmp_path / "empty") in message


def test_trainlab_data_comes_before_the_cache(make_idx_set, data_env):
    env_arrays = make_idx_set(data_env["data"] / "fashion_mnist", seed=1)
    cache_arrays = make_idx_set(data_env["cache"] / "trainlab" / "fashion_mnist", seed=2)
    bundle = load_dataset("fashion_mnist", download=False)
    assert bundle.source == str(data_env["data"] / "fashion_mnist")
    assert_matches(bundle, env_arrays)
    for path in (data_env["data"] / "fashion_mnist").iterdir():
        path.unlink()
    bundle = load_dataset("fashion_mnist", download=False)
    assert bundle.source == str(data_env["cache"] / "trainlab" / "fashion_mnist")
    assert_matches(bundle, cache_arrays)


def test_uncompressed_files_and_explicit_root(make_idx_set, tmp_path):
    arrays = make_idx_set(tmp_path / "mine" / "mnist", compress=False)
    bundle = load_dataset("mnist", root=tmp_path / "mine", download=False)
    assert bundle.source == str(tmp_path / "mine" / "mnist")
    assert_matches(bundle, arrays)
    assert bundle.input_shape == (1, 28, 28) and bundle.num_classes == 10


def test_incomplete_directory_is_skipped(make_idx_set, data_env):
    make_idx_set(data_env["data"] / "mnist")
    (data_env["data"] / "mnist" / GZ_FILES[2]).unlink()
    cache_arrays = make_idx_set(data_env["cache"] / "trainlab" / "mnist", seed=3)
    assert_matches(load_dataset("mnist", download=False), cache_arrays)


def test_dataset_info_reads_headers_and_never_downloads(make_idx_set, data_env):
    info = dataset_info("mnist")
    assert info["found"] is False and info["source"] is None
    assert info["looked_in"] == [
        str(data_env["data"] / "mnist"),
        str(data_env["cache"] / "trainlab" / "mnist"),
    ]
    assert not data_env["cache"].exists()  # nothing created or fetched
    make_idx_set(data_env["data"] / "mnist", n_train=9, n_test=4)
    info = dataset_info("mnist")
    assert info["found"] and (info["train_size"], info["test_size"]) == (9, 4)
    assert info["input_shape"] == (1, 28, 28)


def test_download_file_cleans_up_on_mismatch(http_server, tmp_path):
    served, url, _ = http_server
    (served / "blob.bin").write_bytes(b"x" * 5000)
    dest_dir = tmp_path / "dest"
    with pytest.raises(DownloadError, match="MD5 mismatch"):
        download_file(url + "blob.bin", dest_dir / "blob.bin", "f" * 32)
    assert list(dest_dir.iterdir()) == []
    good = hashlib.md5(b"x" * 5000).hexdigest()
    assert download_file(url + "blob.bin", dest_dir / "blob.bin", good).read_bytes() == b"x" * 5000
