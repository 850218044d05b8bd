"""Fixtures for trainlab.data tests: an isolated data environment, small generated datasets in
the real on-disk formats, and a local HTTP server, so no test touches the network or caches."""

from __future__ import annotations

import functools
import http.server
import io
import pickle
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest

from trainlab.data import write_idx

PROXY_VARS = ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY")


@pytest.fixture(autouse=True)
def data_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """TRAINLAB_DATA and XDG_CACHE_HOME under tmp_path; proxies off so 127.0.0.1 is direct."""
    env = {"data": tmp_path / "trainlab_data", "cache": tmp_path / "xdg_cache"}
    monkeypatch.setenv("TRAINLAB_DATA", str(env["data"]))
    monkeypatch.setenv("XDG_CACHE_HOME", str(env["cache"]))
    for var in PROXY_VARS:
        monkeypatch.delenv(var, raising=False)
    return env


def _idx_arrays(n_train: int, n_test: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8),
    }


@pytest.fixture
def make_idx_set():
    """make_idx_set(directory, compress=True, seed=0) -> arrays by file stem, written as IDX."""

    def make(directory: Path, *, compress: bool = True, seed: int = 0, n_train=12, n_test=5):
        directory.mkdir(parents=True, exist_ok=True)
        arrays = _idx_arrays(n_train, n_test, seed)
        for stem, array in arrays.items():
            write_idx(directory / (f"{stem}.gz" if compress else stem), array)
        return arrays

    return make


def cifar_batch(n: int, seed: int) -> dict:
    """One batch in the official format (python-pickle dict with bytes keys)."""
    rng = np.random.default_rng(seed)
    return {
        b"batch_label": b"generated batch",
        b"labels": [int(v) for v in rng.integers(0, 10, n)],
        b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
        b"filenames": [f"img_{i}.png".encode() for i in range(n)],
    }


CIFAR_BATCHES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]


@pytest.fixture
def make_cifar():
    """make_cifar(directory, archive=False) -> batches by name, as cifar-10-batches-py/ or
    as cifar-10-python.tar.gz in `directory`."""

    def make(directory: Path, *, archive: bool = False, n: int = 4) -> dict[str, dict]:
        batches = {name: cifar_batch(n, seed) for seed, name in enumerate(CIFAR_BATCHES)}
        directory.mkdir(parents=True, exist_ok=True)
        if archive:
            with tarfile.open(directory / "cifar-10-python.tar.gz", "w:gz") as tar:
                for name, batch in batches.items():
                    data = pickle.dumps(batch, protocol=2)
                    info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
        else:
            (directory / "cifar-10-batches-py").mkdir()
            for name, batch in batches.items():
                (directory / "cifar-10-batches-py" / name).write_bytes(pickle.dumps(batch, 2))
        return batches

    return make


class _RecordingHandler(http.server.SimpleHTTPRequestHandler):
    def __init__(self, *args, requests: list[str], **kwargs):
        self._requests = requests
        super().__init__(*args, **kwargs)

    def do_GET(self) -> None:
        self._requests.append(self.path)
        super().do_GET()

    def log_message(self, format: str, *args) -> None:  # keep test output clean
        pass


@pytest.fixture
def http_server(tmp_path: Path):
    """(directory served, base URL, list of requested paths) for a server on 127.0.0.1."""
    root = tmp_path / "www"
    root.mkdir()
    requests: list[str] = []
    handler = functools.partial(_RecordingHandler, directory=str(root), requests=requests)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}/", requests
    server.shutdown()
    server.server_close()
    thread.join()
