"""CIFAR-10 from the official python-pickle batches (Krizhevsky 2009, "Learning Multiple Layers
of Features from Tiny Images"; https://www.cs.toronto.edu/~kriz/cifar.html).

Each batch is a pickled dict with b"data" (uint8, N x 3072, channel-major: 1024 red, 1024
green, 1024 blue values, rows in order) and b"labels" (N ints in 0..9). Batches are looked for
as `cifar-10-batches-py/` (or loose) in the usual directories, or read straight from
`cifar-10-python.tar.gz` if only the archive is there. A download is MD5-checked, then only
the seven expected members are copied out of the archive, by name, to paths we build (no
member path is ever trusted), and the archive is removed.
"""

from __future__ import annotations

import io
import pickle
import tarfile
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import torch

from trainlab.durable import write_bytes

from .bundle import DataBundle, TensorSplit
from .errors import DataFormatError, DataNotFoundError
from .fetch import DEFAULT_TIMEOUT, DownloadError, download_dir, download_files, search_dirs

NAME = "cifar10"
MIRROR = "https://www.cs.toronto.edu/~kriz/"
ARCHIVE = "cifar-10-python.tar.gz"
ARCHIVE_MD5 = "c58f30108f718f92721af3b95e74349a"
BATCH_DIR = "cifar-10-batches-py"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
# The only globals a CIFAR batch pickle needs (numpy array reconstruction).
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
}


class _BatchUnpickler(pickle.Unpickler):
    """Refuses every global but numpy's array rebuilders, so a batch file cannot run code."""

    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed")
        return super().find_class(module, name)


def parse_batch(data: bytes, where: str) -> tuple[np.ndarray, np.ndarray]:
    """Images uint8 (N, 3, 32, 32) and labels int64 (N,) from one pickled batch."""
    try:
        batch = _BatchUnpickler(io.BytesIO(data), encoding="bytes").load()
        images = np.asarray(batch[b"data"], dtype=np.uint8)
        labels = np.asarray(batch[b"labels"], dtype=np.int64)
    except Exception as err:  # any unpickling or key error means a corrupt batch
        raise DataFormatError(
            f"{where}: not a CIFAR-10 batch ({type(err).__name__}: {err})"
        ) from err
    if images.ndim != 2 or images.shape[1] != 3072 or labels.shape != images.shape[:1]:
        raise DataFormatError(
            f"{where}: expected data (N, 3072) and N labels, got {images.shape} and {labels.shape}"
        )
    if labels.size and (labels.min() < 0 or labels.max() >= len(CLASSES)):
        raise DataFormatError(f"{where}: labels outside 0..{len(CLASSES) - 1}")
    return images.reshape(-1, 3, 32, 32), labels


def _to_split(batches: list[tuple[np.ndarray, np.ndarray]]) -> TensorSplit:
    images = np.concatenate([b[0] for b in batches])
    labels = np.concatenate([b[1] for b in batches])
    x = torch.from_numpy(images.astype(np.float32)).div_(255.0)
    return TensorSplit(x=x, y=torch.from_numpy(labels))


def _bundle(read: Callable[[str], bytes], source: str) -> DataBundle:
    """Assemble train (5 batches) and test from `read(batch_name) -> pickled bytes`."""
    train = _to_split([parse_batch(read(b), f"{source}:{b}") for b in TRAIN_BATCHES])
    test = _to_split([parse_batch(read(TEST_BATCH), f"{source}:{TEST_BATCH}")])
    return DataBundle(NAME, train, test, num_classes=len(CLASSES), source=source)


def _batch_dir(directory: Path) -> Path | None:
    """`directory/cifar-10-batches-py` or `directory` itself if it holds all six batches."""
    for candidate in (directory / BATCH_DIR, directory):
        if all((candidate / b).is_file() for b in (*TRAIN_BATCHES, TEST_BATCH)):
            return candidate
    return None


def locate(root: str | Path | None = None) -> Path | None:
    """First batch directory, or else archive, found in the lookup order."""
    for directory in search_dirs(NAME, root):
        batch_dir = _batch_dir(directory)
        if batch_dir is not None:
            return batch_dir
        if (directory / ARCHIVE).is_file():
            return directory / ARCHIVE
    return None


def _read_archive_member(archive: tarfile.TarFile, batch: str, where: Path) -> bytes:
    try:
        member = archive.getmember(f"{BATCH_DIR}/{batch}")
        handle = archive.extractfile(member) if member.isfile() else None
    except KeyError:
        handle = None
    if handle is None:
        raise DataFormatError(f"{where}: no regular file {BATCH_DIR}/{batch} in the archive")
    return handle.read()


def _read_archive(path: Path) -> dict[str, bytes]:
    """The six batch files of the archive, read into memory by their expected names."""
    try:
        with tarfile.open(path, "r:gz") as archive:
            return {b: _read_archive_member(archive, b, path) for b in (*TRAIN_BATCHES, TEST_BATCH)}
    except (tarfile.TarError, OSError, EOFError) as err:
        raise DataFormatError(f"{path}: unreadable archive ({err})") from err


def _extract(archive_path: Path) -> Path:
    """Copy the batches out of the archive into `BATCH_DIR` beside it; remove the archive."""
    try:
        contents = _read_archive(archive_path)
    finally:
        archive_path.unlink()  # verified but unreadable archives are not kept either
    batch_dir = archive_path.parent / BATCH_DIR
    batch_dir.mkdir(exist_ok=True)
    for batch, data in contents.items():
        write_bytes(batch_dir / batch, data)
    return batch_dir


def load_cifar10(
    *,
    root: str | Path | None = None,
    download: bool = True,
    mirror: str | None = None,
    md5s: Mapping[str, str] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> DataBundle:
    """CIFAR-10: x float32 (N, 3, 32, 32) in [0, 1], y int64; 50000 train, 10000 test."""
    found = locate(root)
    if found is not None and found.is_dir():
        return _bundle(lambda b: (found / b).read_bytes(), str(found))
    if found is not None:
        contents = _read_archive(found)
        return _bundle(contents.__getitem__, str(found))
    looked = ", ".join(str(d) for d in search_dirs(NAME, root))
    if not download:
        raise DataNotFoundError(
            f"{NAME} not found in {looked} and download=False; to get it: {how_to_get()}"
        )
    dest = download_dir(NAME, root)
    try:
        download_files(mirror or MIRROR, md5s or {ARCHIVE: ARCHIVE_MD5}, dest, timeout=timeout)
    except DownloadError as err:
        retry = f"retry when {mirror or MIRROR} is reachable"
        raise DataNotFoundError(
            f"{NAME} not found in {looked}, and {err}; to get it: {how_to_get(retry)}"
        ) from err
    batch_dir = _extract(dest / ARCHIVE)
    return _bundle(lambda b: (batch_dir / b).read_bytes(), str(batch_dir))


def how_to_get(download: str = f"allow download=True (from {MIRROR}{ARCHIVE})") -> str:
    """One-line advice on getting CIFAR-10."""
    return f"put {ARCHIVE} or its {BATCH_DIR}/ in $TRAINLAB_DATA/{NAME}/, or {download}"


def cifar10_info(root: str | Path | None = None) -> dict:
    """Where CIFAR-10 is (or would be looked for); sizes are the published ones."""
    found = locate(root)
    return {
        "found": found is not None,
        "source": str(found) if found else None,
        "looked_in": [str(d) for d in search_dirs(NAME, root)],
        "download_url": MIRROR + ARCHIVE,
        "download_to": str(download_dir(NAME, root)),
        "how_to_get": how_to_get(),
        "classes": list(CLASSES),
    }
