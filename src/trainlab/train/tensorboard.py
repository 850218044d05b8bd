"""TensorBoard logging as a callback: scalars per step and per epoch, weight and gradient
histograms, and the run's hyperparameters with its final metrics (HParams plugin).

Optional: needs the tensorboard package (`pip install 'trainlab[tensorboard]'`). The import
happens when a `TensorBoardLogger` is built, so importing this module never fails."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from trainlab.train.callbacks import Hooks, Signal
from trainlab.train.records import EpochRecord, StepRecord

__all__ = ["TensorBoardLogger", "flatten_hparams"]

MISSING = "train.tensorboard needs the tensorboard package: pip install 'trainlab[tensorboard]'"
_EPOCH_SCALARS = {
    "train/loss": "train_loss",
    "train/acc": "train_acc",
    "val/loss": "val_loss",
    "val/acc": "val_acc",
    "samples_per_s": "samples_per_s",
}


def _summary_writer_class() -> type:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ImportError(MISSING) from None
    return SummaryWriter


def flatten_hparams(hparams: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts flattened to dotted keys; values other than int/float/str/bool become str."""
    flat: dict[str, Any] = {}
    for key, value in hparams.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten_hparams(value, prefix=f"{name}."))
        else:
            flat[name] = value if isinstance(value, int | float | str | bool) else str(value)
    return flat


class TensorBoardLogger(Hooks):
    """Write a run's training curves to TensorBoard event files under `log_dir`.

    Per step: `train/step_loss`, `lr`, and `momentum` / `beta1` when `optimizer`'s first
    param group has them. Per epoch, at global step `record.step`: `train/loss`, `train/acc`,
    `val/loss`, `val/acc`, `samples_per_s` (None values skipped) and `lr` (unless the step
    already wrote it); every `histogram_every` epochs (0: never) and if `model` is given,
    `weights/<name>` and `grads/<name>` histograms and `weight_norm/<name>` scalars. At fit end,
    `hparams` (flattened with dots) with `hparam/final_val_acc` and `hparam/final_val_loss`,
    then the files are flushed and closed. A later fit (or a resume) opens a new event file;
    on a resume, events past the resumed step from the interrupted run are purged."""

    def __init__(
        self,
        log_dir: str | Path,
        *,
        hparams: Mapping[str, Any] | None = None,
        model: nn.Module | None = None,
        optimizer: torch.optim.Optimizer | None = None,
        histogram_every: int = 1,
    ) -> None:
        if histogram_every < 0:
            raise ValueError(f"histogram_every must be >= 0, got {histogram_every}")
        self._writer_class = _summary_writer_class()
        self.log_dir = Path(log_dir)
        self.hparams = dict(hparams) if hparams is not None else None
        self.model, self.optimizer, self.histogram_every = model, optimizer, histogram_every
        self._writer: Any = None
        self._lr_step: int | None = None

    @property
    def writer(self) -> Any:
        """The open `SummaryWriter`, opened on first use."""
        if self._writer is None:
            self._open()
        return self._writer

    def _open(self, purge_step: int | None = None) -> None:
        self._writer = self._writer_class(log_dir=str(self.log_dir), purge_step=purge_step)

    def on_fit_start(self, total_steps: int, start_step: int) -> None:
        self.close()
        self._open(purge_step=start_step + 1 if start_step > 0 else None)

    def on_step_end(self, record: StepRecord) -> None:
        w = self.writer
        w.add_scalar("train/step_loss", record.loss, record.step)
        w.add_scalar("lr", record.lr, record.step)
        self._lr_step = record.step
        for tag, value in self._optimizer_scalars().items():
            w.add_scalar(tag, value, record.step)

    def _optimizer_scalars(self) -> dict[str, float]:
        if self.optimizer is None:
            return {}
        group = self.optimizer.param_groups[0]
        found = {}
        if isinstance(group.get("momentum"), int | float):
            found["momentum"] = float(group["momentum"])
        if isinstance(group.get("betas"), tuple | list):
            found["beta1"] = float(group["betas"][0])
        return found

    def on_epoch_end(self, record: EpochRecord) -> Signal:
        w = self.writer
        for tag, field in _EPOCH_SCALARS.items():
            value = getattr(record, field)
            if value is not None:
                w.add_scalar(tag, value, record.step)
        if self._lr_step != record.step:
            w.add_scalar("lr", record.lr, record.step)
        every = self.histogram_every
        if self.model is not None and every and record.epoch % every == 0:
            self.log_parameters(self.model, record.step)
        w.flush()
        return None

    def log_parameters(self, model: nn.Module, step: int) -> None:
        """Histograms of each parameter and its gradient, and each parameter's L2 norm."""
        w = self.writer
        for name, p in model.named_parameters():
            weights = p.detach().float().cpu()
            if weights.numel() == 0 or not torch.isfinite(weights).all():
                continue
            w.add_histogram(f"weights/{name}", weights, step)
            w.add_scalar(f"weight_norm/{name}", weights.norm().item(), step)
            if p.grad is not None:
                grad = p.grad.detach().float().cpu()
                if torch.isfinite(grad).all():
                    w.add_histogram(f"grads/{name}", grad, step)

    def log_layer_stats(self, stats: Mapping[str, Mapping[str, Any]], step: int) -> None:
        """Per-layer statistics (e.g. probes) as `probes/<layer>/<stat>`: finite numbers only."""
        w = self.writer
        for layer, values in stats.items():
            for stat, value in values.items():
                if isinstance(value, int | float) and math.isfinite(value):
                    w.add_scalar(f"probes/{layer}/{stat}", value, step)

    def log_probe_row(self, step: int, row: Mapping[str, Any], edges: Mapping[str, Any]) -> None:
        """One row of `trainlab.diagnose.Probes` (its listener): per-layer activation
        histograms as `activations/<layer>`, the other finite numbers as `probes/<key>`."""
        scalars: dict[str, dict[str, Any]] = {}
        for key, value in row.items():
            layer, _, stat = key.rpartition("/")
            if stat == "hist" and layer in edges:
                self._histogram(f"activations/{layer}", value, edges[layer], step)
            else:
                scalars.setdefault(layer, {})[stat] = value
        self.log_layer_stats(scalars, step)

    def _histogram(self, tag: str, counts: Any, edges: Any, step: int) -> None:
        """A histogram from bin counts and edges (sums from the bin centres)."""
        import numpy as np

        counts, edges = np.asarray(counts, dtype=float), np.asarray(edges, dtype=float)
        total = counts.sum()
        if total <= 0 or not np.isfinite(edges).all():
            return
        centres = (edges[:-1] + edges[1:]) / 2
        self.writer.add_histogram_raw(
            tag, min=float(edges[0]), max=float(edges[-1]), num=int(total),
            sum=float((counts * centres).sum()), sum_squares=float((counts * centres**2).sum()),
            bucket_limits=edges[1:].tolist(), bucket_counts=counts.tolist(), global_step=step,
        )  # fmt: skip

    def on_fit_end(self, history: list[dict]) -> None:
        if self.hparams is not None:
            final = history[-1] if history else {}
            metrics = {
                f"hparam/final_{key}": float(final[key])
                for key in ("val_acc", "val_loss")
                if final.get(key) is not None
            }
            self.writer.add_hparams(flatten_hparams(self.hparams), metrics, run_name=".")
        self.close()

    def close(self) -> None:
        """Flush and close the event file; safe to call more than once."""
        if self._writer is not None:
            self._writer.flush()
            self._writer.close()
            self._writer = None
