"""`trainlab predict RUN INPUT`: a trained run's predictions on new examples or on one of its
own splits, written as an .npz (predicted class, class probabilities, logits).

New examples are given as the dataset gives them (`trainlab data info NAME`: e.g. float32 in
[0, 1], shape (N, 1, 28, 28) for Fashion-MNIST; flat (N, 784) rows are reshaped) and go
through the run's fitted normalization and preprocessing first (`Experiment.inputs`), so they
meet the model as its training data did.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from trainlab.data import TensorSplit
from trainlab.run.config import RecipeError
from trainlab.run.load import LoadedRun
from trainlab.train.loop import predict_logits

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Predictions:
    """Per example: the predicted class, the class probabilities and the logits; the labels
    and the accuracy when the examples came from a split."""

    pred: torch.Tensor  # (N,) int64
    probs: torch.Tensor  # (N, C)
    logits: torch.Tensor  # (N, C)
    labels: torch.Tensor | None = None

    @property
    def accuracy(self) -> float | None:
        if self.labels is None:
            return None
        return int((self.pred == self.labels).sum()) / max(len(self.labels), 1)

    def save(self, path: Path) -> Path:
        from trainlab.durable import replacing

        arrays = {"pred": self.pred, "probs": self.probs, "logits": self.logits}
        if self.labels is not None:
            arrays["labels"] = self.labels
        with replacing(path) as tmp:
            np.savez(tmp, **{k: v.numpy() for k, v in arrays.items()})
        return path


@torch.inference_mode()
def predict(run: LoadedRun, x: torch.Tensor, batch_size: int = 1000) -> Predictions:
    """The run's model on prepared inputs `x` (eval mode, with the recipe's test-time
    augmentation), in batches."""
    tta = tuple(run.recipe.train.tta)
    logits = torch.cat([predict_logits(run.model, x[i : i + batch_size], tta)
                        for i in range(0, len(x), batch_size)])  # fmt: skip
    return Predictions(logits.argmax(1), logits.softmax(1), logits)


def split_of(run: LoadedRun, name: str) -> TensorSplit:
    return {"train": run.train, "val": run.val, "test": run.test}[name]


def load_inputs(run: LoadedRun, path: Path) -> torch.Tensor:
    """Raw examples from a .npy or .pt file, checked against the model's input shape, then
    transformed as the training data was; one-line RecipeError otherwise."""
    if path.suffix not in (".npy", ".pt"):
        raise RecipeError(f"predict: {path}: expected a .npy or .pt file, or one of {SPLITS}")
    if not path.is_file():
        raise RecipeError(f"predict: {path}: no such file")
    try:
        raw = np.load(path) if path.suffix == ".npy" else torch.load(path, weights_only=True)
    except Exception as err:  # any reader error: a damaged or foreign file
        raise RecipeError(f"predict: {path}: unreadable ({type(err).__name__})") from None
    x = torch.as_tensor(np.asarray(raw) if path.suffix == ".npy" else raw)
    shape = tuple(run.train.x.shape[1:])
    if x.dim() >= 1 and x.dim() != len(shape) + 1 and x[0].numel() == math.prod(shape):
        x = x.reshape(len(x), *shape)
    if not x.is_floating_point() or tuple(x.shape[1:]) != shape:
        want = ", ".join(map(str, shape))
        raise RecipeError(
            f"predict: {path}: expected float examples of shape (N, {want}), "
            f"got {x.dtype} {tuple(x.shape)}"
        )
    x = x.to(run.train.x.dtype)
    return run.experiment.inputs(x) if run.experiment.inputs is not None else x
