"""`fit_stacked`: train K stacked models with one optimizer step per batch, each model on its
own data order (its own `InMemoryLoader`: seed, bootstrap), and report per model what `fit`
reports for one (the same epoch records), so the results read like K ordinary runs.

What one model sees is what it would see trained alone by `trainlab.train.fit`: the same
batches in the same order, its own mean loss, the schedule's rate at each step and its own
learning rate and weight decay (`trainlab.stack.hyper`); tested equal to 1e-10 in float64.
A model whose loss becomes non-finite stops there, as `fit` would: its weights are kept from
before that step and its history ends, while the others train on.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor
from torch.func import vmap

from trainlab.data import InMemoryLoader, TensorSplit
from trainlab.stack.hyper import StackedOptimizer
from trainlab.stack.model import StackedModel
from trainlab.stack.relu_mlp import ReluMLPStep, is_plain_cross_entropy, relu_mlp_linears
from trainlab.train.loop import count_correct
from trainlab.train.losses import LossFn


@dataclass
class StackedRun:
    """What `fit_stacked` leaves: per model, its epoch records (`EpochRecord.as_dict()`
    keys) and, for a model that diverged, the step and its last good state."""

    histories: list[list[dict]]
    diverged: dict[int, int] = field(default_factory=dict)  # model -> step of the bad loss
    last_good: dict[int, dict[str, Tensor]] = field(default_factory=dict)
    seconds: float = 0.0

    def model(self, stack: StackedModel, k: int) -> torch.nn.Module:
        """Model k as a plain module (its last good weights if it diverged)."""
        model = stack.unstack(k)
        if k in self.last_good:
            model.load_state_dict(self.last_good[k])
        return model


def check_loaders(loaders: Sequence[InMemoryLoader]) -> None:
    """The models must take equal-sized steps: same split length, batch size and growth."""
    first = loaders[0]
    for i, ld in enumerate(loaders[1:], start=1):
        same = (len(ld.split), ld.batch_size, ld.drop_last, ld.grow_at, ld.grow_factor) == (
            len(first.split), first.batch_size, first.drop_last, first.grow_at, first.grow_factor
        )  # fmt: skip
        if not same:
            raise ValueError(
                f"fit_stacked: loader {i} differs from loader 0 in split size, batch size or "
                "batch growth; stacked models must take the same steps"
            )


def stacked_batches(loaders: Sequence[InMemoryLoader], epoch: int) -> list[tuple[Tensor, Tensor]]:
    """Epoch ``epoch``'s batches for every model, as (K, B, ...) inputs and (K, B) targets:
    batch b of model k is batch b of ``loaders[k].epoch(epoch)``. One gather when the loaders
    share their input tensor (the usual case; labels may differ per model, e.g. label noise),
    one per model otherwise (bootstraps)."""
    first = loaders[0]
    size, count, n = first.batch_size_at(epoch), first.batches_in(epoch), len(first.split)
    shared_x = all(ld.split.x is first.split.x for ld in loaders)
    shared_y = all(ld.split.y is first.split.y for ld in loaders)
    ys = None if shared_y else torch.stack([ld.split.y for ld in loaders])
    orders = torch.stack([_order(ld, epoch, n) for ld in loaders])
    out = []
    for b in range(count):
        idx = orders[:, b * size : min((b + 1) * size, n)]
        if not shared_x:
            xs = [ld.split.x[i] for ld, i in zip(loaders, idx, strict=True)]
            out.append(
                (torch.stack(xs), ys.gather(1, idx) if ys is not None else first.split.y[idx])
            )
        else:
            out.append(
                (first.split.x[idx], first.split.y[idx] if ys is None else ys.gather(1, idx))
            )
    return out


def _order(loader: InMemoryLoader, epoch: int, n: int) -> Tensor:
    order = loader.order(epoch)
    return torch.arange(n) if order is None else order


def fit_stacked(
    stack: StackedModel,
    loaders: Sequence[InMemoryLoader],
    optimizer: StackedOptimizer,
    loss_fn: LossFn,
    *,
    epochs: int,
    schedule: Callable[[int], float] | None = None,
    val: TensorSplit | None = None,
    eval_batch_size: int = 1000,
    on_epoch: Callable[[int, StackedRun], None] | None = None,
) -> StackedRun:
    """Train the stack for ``epochs`` epochs; ``schedule(t)`` is the param group's rate before
    step t (the shared lr's schedule, or the factor the per-model rates are multiplied by).
    ``on_epoch(epoch, run)`` is called after each epoch's records are added."""
    if len(loaders) != stack.k:
        raise ValueError(f"fit_stacked: {stack.k} models but {len(loaders)} loaders")
    check_loaders(loaders)
    run = StackedRun(histories=[[] for _ in range(stack.k)])
    fast = fast_step(stack, loss_fn)
    step = 0
    for epoch in range(epochs):
        started = time.perf_counter()
        sums = torch.zeros(stack.k, dtype=torch.float64)
        correct = torch.zeros(stack.k, dtype=torch.int64)
        seen = 0
        stack.train()
        for x, y in stacked_batches(loaders, epoch):
            group = optimizer.optimizer.param_groups[0]
            lr = group["lr"] if schedule is None else schedule(step)
            group["lr"] = optimizer.rate.value = lr
            losses, hits = _step(stack, optimizer.optimizer, loss_fn, x, y, run, step, fast)
            sums += losses.detach().double() * y.shape[1]
            correct += hits
            seen += y.shape[1]
            step += 1
        seconds = time.perf_counter() - started
        run.seconds += seconds
        _end_epoch(stack, run, loss_fn, val, eval_batch_size, epoch, step, optimizer, seconds,
                   sums / seen, correct, seen, loaders[0])  # fmt: skip
        if on_epoch is not None:
            on_epoch(epoch, run)
    return run


def _step(
    stack: StackedModel,
    optimizer: torch.optim.Optimizer,
    loss_fn: LossFn,
    x: Tensor,
    y: Tensor,
    run: StackedRun,
    step: int,
    fast: ReluMLPStep | None,
) -> tuple[Tensor, Tensor]:
    """One optimizer step of every model: per-model mean losses (K,), summed for one backward
    (the models share nothing, so each gets its own gradient), and per-model correct counts.
    ``fast`` (ReLU MLPs under cross-entropy) computes the same gradients by hand."""
    if fast is not None:
        losses, hits = fast(x, y)
        _note_diverged(stack, losses, run, step)
        optimizer.step()
        return losses, hits
    outputs = stack(x)
    losses = vmap(loss_fn)(outputs, y)
    _note_diverged(stack, losses, run, step)
    optimizer.zero_grad(set_to_none=True)
    losses.sum().backward()
    optimizer.step()
    hits = vmap(count_correct)(outputs.detach(), y) if y.dtype == torch.int64 else None
    return losses, hits if hits is not None else torch.zeros(stack.k, dtype=torch.int64)


def _note_diverged(stack: StackedModel, losses: Tensor, run: StackedRun, step: int) -> None:
    """Models whose loss is non-finite stop here, as `fit` would stop before the step."""
    bad = ~torch.isfinite(losses.detach())
    for k in bad.nonzero().flatten().tolist():
        if k not in run.diverged:  # as `fit` would: stop before applying this step
            run.diverged[k] = step + 1
            run.last_good[k] = stack.state_of(k)


def fast_step(stack: StackedModel, loss_fn: LossFn) -> ReluMLPStep | None:
    """The hand-written step (`trainlab.stack.relu_mlp`) where it applies, else None."""
    linears = relu_mlp_linears(stack.template)
    if linears is None or not is_plain_cross_entropy(loss_fn):
        return None
    return ReluMLPStep(stack, linears)


@torch.no_grad()
def evaluate_stacked(
    stack: StackedModel, split: TensorSplit, loss_fn: LossFn, batch_size: int = 1000
) -> tuple[Tensor, Tensor | None]:
    """Per model: mean loss (K,) and accuracy (K,) (None for regression) over ``split``, in eval
    mode; the split is shared by all models (`StackedModel.forward(shared=True)`)."""
    was_training = stack.training
    stack.eval()
    loss_sum = torch.zeros(stack.k, dtype=torch.float64)
    correct = torch.zeros(stack.k, dtype=torch.int64)
    for lo in range(0, len(split), batch_size):
        x, y = split.x[lo : lo + batch_size], split.y[lo : lo + batch_size]
        outputs = stack(x, shared=True)
        loss_sum += vmap(loss_fn, in_dims=(0, None))(outputs, y).double() * len(y)
        correct += vmap(count_correct, in_dims=(0, None))(outputs, y)
    stack.train(was_training)
    n = max(len(split), 1)
    classify = split.y.dtype == torch.int64 and split.y.dim() == 1
    return loss_sum / n, (correct.double() / n if classify else None)


def _end_epoch(stack: StackedModel, run: StackedRun, loss_fn: LossFn, val: TensorSplit | None,
               eval_batch_size: int, epoch: int, step: int, optimizer: StackedOptimizer,
               seconds: float,
               train_loss: Tensor, correct: Tensor, seen: int,
               loader: InMemoryLoader) -> None:  # fmt: skip
    """Append each live model's epoch record (the keys of `EpochRecord.as_dict()`)."""
    classify = loader.split.y.dtype == torch.int64 and loader.split.y.dim() == 1
    val_loss = val_acc = None
    if val is not None and len(val) > 0:
        val_loss, val_acc = evaluate_stacked(stack, val, loss_fn, eval_batch_size)
    for k, history in enumerate(run.histories):
        if k in run.diverged:
            continue
        history.append({
            "kind": "epoch", "epoch": epoch + 1, "step": step,
            "train_loss": float(train_loss[k]),
            "train_acc": float(correct[k]) / seen if classify else None,
            "val_loss": None if val_loss is None else _finite(float(val_loss[k])),
            "val_acc": None if val_acc is None else float(val_acc[k]),
            "lr": optimizer.lr_of(k), "seconds": seconds,
            "samples_per_s": seen / max(seconds, 1e-9),
            "stacked": stack.k,
        })  # fmt: skip


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None
