"""MNIST and Fashion-MNIST from IDX files: find them on disk, or download and verify them.

MNIST: LeCun, Cortes & Burges (1998); files from the ossci-datasets S3 mirror that torchvision
uses, with the MD5s torchvision publishes. Fashion-MNIST: Xiao, Rasul & Vollgraf (2017),
arXiv:1708.07747; URLs and MD5s from the dataset's README. Debian's `dataset-fashion-mnist`
re-gzipped the files (their .gz MD5s differ from the README's), so MD5s are checked on
download only; files found on disk are checked through their IDX headers instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .bundle import DataBundle, TensorSplit
from .errors import DataFormatError, DataNotFoundError
from .fetch import DEFAULT_TIMEOUT, DownloadError, download_dir, download_files, search_dirs
from .idx import read_idx, read_idx_header

TRAIN_IMAGES, TRAIN_LABELS = "train-images-idx3-ubyte", "train-labels-idx1-ubyte"
TEST_IMAGES, TEST_LABELS = "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"
IDX_FILES = (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS)


@dataclass(frozen=True)
class IdxDataset:
    """What is needed to find, fetch and describe one MNIST-format dataset."""

    name: str
    mirror: str  # base URL; files are mirror + "/" + "<file>.gz"
    md5s: Mapping[str, str]  # "<file>.gz" -> MD5 of the published gzip file
    classes: tuple[str, ...]
    apt_package: str | None = None


FASHION_MNIST = IdxDataset(
    name="fashion_mnist",
    mirror="http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    md5s={
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    },
    classes=(
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ),
    apt_package="dataset-fashion-mnist",
)

MNIST = IdxDataset(
    name="mnist",
    mirror="https://ossci-datasets.s3.amazonaws.com/mnist/",
    md5s={
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    },
    classes=tuple(str(d) for d in range(10)),
)


def _find_file(directory: Path, stem: str) -> Path | None:
    """`stem.gz` or raw `stem` inside `directory`, whichever exists (gzip preferred)."""
    for candidate in (directory / f"{stem}.gz", directory / stem):
        if candidate.is_file():
            return candidate
    return None


def find_idx_files(directory: Path) -> dict[str, Path] | None:
    """The four IDX files in `directory`, or None unless all four are there."""
    found = {}
    for stem in IDX_FILES:
        path = _find_file(directory, stem)
        if path is None:
            return None
        found[stem] = path
    return found


def locate(spec: IdxDataset, root: str | Path | None = None) -> Path | None:
    """First directory of the lookup order holding all four files of `spec`."""
    for directory in search_dirs(spec.name, root):
        if find_idx_files(directory) is not None:
            return directory
    return None


def how_to_get(spec: IdxDataset, download: str = "allow download=True") -> str:
    """One-line advice on getting the files, for error messages and `dataset_info`."""
    ways = [f"apt-get install {spec.apt_package}"] if spec.apt_package else []
    ways += [f"put the 4 IDX files in $TRAINLAB_DATA/{spec.name}/", f"or {download}"]
    return ", ".join(ways)


def _read_split(images_path: Path, labels_path: Path, num_classes: int) -> TensorSplit:
    """Images (N, H, W) uint8 -> float32 (N, 1, H, W) in [0, 1]; labels -> int64 (N,)."""
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DataFormatError(
            f"{images_path}: expected uint8 images (N, H, W), got {images.dtype} {images.shape}"
        )
    if labels.shape != images.shape[:1] or labels.dtype != np.uint8:
        raise DataFormatError(
            f"{labels_path}: expected {images.shape[0]} uint8 labels, "
            f"got {labels.dtype} {labels.shape}"
        )
    if labels.size and int(labels.max()) >= num_classes:
        raise DataFormatError(f"{labels_path}: label {labels.max()} >= {num_classes} classes")
    x = torch.from_numpy(images.astype(np.float32)[:, None]).div_(255.0)
    return TensorSplit(x=x, y=torch.from_numpy(labels.astype(np.int64)))


def _read_directory(spec: IdxDataset, directory: Path) -> DataBundle:
    files = find_idx_files(directory)
    if files is None:
        raise DataFormatError(f"{directory}: incomplete {spec.name} files")
    n = len(spec.classes)
    train = _read_split(files[TRAIN_IMAGES], files[TRAIN_LABELS], n)
    test = _read_split(files[TEST_IMAGES], files[TEST_LABELS], n)
    return DataBundle(spec.name, train, test, num_classes=n, source=str(directory))


def load_idx_dataset(
    spec: IdxDataset,
    *,
    root: str | Path | None = None,
    download: bool = True,
    mirror: str | None = None,
    md5s: Mapping[str, str] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> DataBundle:
    """Load `spec` from the first directory that has it, else download it (if allowed).

    `mirror` and `md5s` override the published base URL and checksums (tests serve files
    from a local HTTP server).
    """
    directory = locate(spec, root)
    if directory is not None:
        return _read_directory(spec, directory)
    looked = ", ".join(str(d) for d in search_dirs(spec.name, root))
    if not download:
        raise DataNotFoundError(
            f"{spec.name} not found in {looked} and download=False; to get it: {how_to_get(spec)}"
        )
    dest = download_dir(spec.name, root)
    try:
        download_files(mirror or spec.mirror, md5s or spec.md5s, dest, timeout=timeout)
    except DownloadError as err:
        retry = f"retry when {mirror or spec.mirror} is reachable"
        raise DataNotFoundError(
            f"{spec.name} not found in {looked}, and {err}; to get it: {how_to_get(spec, retry)}"
        ) from err
    return _read_directory(spec, dest)


def idx_dataset_info(spec: IdxDataset, root: str | Path | None = None) -> dict:
    """Where `spec` is (or would be looked for), with sizes read from the IDX headers if found."""
    directory = locate(spec, root)
    info: dict = {
        "found": directory is not None,
        "source": str(directory) if directory else None,
        "looked_in": [str(d) for d in search_dirs(spec.name, root)],
        "download_url": spec.mirror,
        "download_to": str(download_dir(spec.name, root)),
        "how_to_get": how_to_get(spec),
        "classes": list(spec.classes),
    }
    files = find_idx_files(directory) if directory is not None else None
    if files is not None:
        _, train_dims = read_idx_header(files[TRAIN_IMAGES])
        _, test_dims = read_idx_header(files[TEST_IMAGES])
        info.update(
            input_shape=(1, *train_dims[1:]), train_size=train_dims[0], test_size=test_dims[0]
        )
    return info
