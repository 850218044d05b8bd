"""Datasets, the in-memory loader, splits and normalization (issue 2, "Data").

Real sets (Fashion-MNIST, MNIST, CIFAR-10) are found on disk or downloaded with MD5 checks;
small sets (MNIST-1D, digits, spirals, blobs, 1-D regression) are built locally. Everything is
held in memory as tensors: `DataBundle` -> `prepare_splits` -> `InMemoryLoader`.
"""

from .bundle import DataBundle, TensorSplit
from .errors import DataFormatError, DataNotFoundError, UnknownDatasetError
from .idx import read_idx, write_idx
from .loader import InMemoryLoader
from .registry import DATASETS, dataset_info, load_dataset
from .splits import prepare_splits, train_val_split
from .standardize import Standardizer

__all__ = [
    "DATASETS",
    "DataBundle",
    "DataFormatError",
    "DataNotFoundError",
    "InMemoryLoader",
    "Standardizer",
    "TensorSplit",
    "UnknownDatasetError",
    "dataset_info",
    "load_dataset",
    "prepare_splits",
    "read_idx",
    "train_val_split",
    "write_idx",
]

from .augment import AUGMENTATIONS, Augment
from .kfold import kfold_splits, kfold_subsets
from .label_noise import inject_label_noise, with_label_noise
from .preprocess import PCA, Centerer, Preprocessor, load_preprocessor, make_preprocessor

__all__ += [
    "AUGMENTATIONS",
    "PCA",
    "Augment",
    "Centerer",
    "Preprocessor",
    "load_preprocessor",
    "inject_label_noise",
    "kfold_splits",
    "kfold_subsets",
    "make_preprocessor",
    "with_label_noise",
]
