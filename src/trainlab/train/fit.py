"""`fit`: drive the step generator over epochs, validate, checkpoint, and call callbacks."""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from trainlab.data import InMemoryLoader, TensorSplit
from trainlab.train.callbacks import STOP, Callback
from trainlab.train.loop import Adversary, Schedule, epoch_steps, evaluate
from trainlab.train.losses import LossFn
from trainlab.train.records import EpochRecord, Position
from trainlab.train.world import SINGLE, StepSync, World


class Interrupted(KeyboardInterrupt):
    """Training stopped on request (Ctrl-C) after a checkpoint was written."""


def _restores_global_rng(fn: Callable[..., Position]) -> Callable[..., Position]:
    """Run `fn` with the global torch RNG forked: it draws as usual (dropout), and the
    caller's state is back when it returns or raises."""

    @functools.wraps(fn)
    def forked(*args: Any, **kwargs: Any) -> Position:
        with torch.random.fork_rng(devices=[]):
            return fn(*args, **kwargs)

    return forked


@_restores_global_rng
def fit(
    model: nn.Module,
    loader: InMemoryLoader,
    optimizer: torch.optim.Optimizer,
    loss_fn: LossFn,
    *,
    epochs: int,
    schedule: Schedule | None = None,
    val: TensorSplit | None = None,
    callbacks: Sequence[Callback] = (),
    position: Position | None = None,
    checkpoint: Callable[[Position], None] | None = None,
    checkpoint_every: int = 1,
    checkpoint_every_steps: int | None = None,
    interrupt: threading.Event | None = None,
    eval_batch_size: int = 1000,
    channels_last: bool = False,
    penalty: Callable[[], torch.Tensor] | None = None,
    augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None,
    seed: int = 0,
    adversary: Adversary | None = None,
    world: World = SINGLE,
    autocast: torch.dtype | None = None,
) -> Position:
    """Train for `epochs` epochs (continuing from `position` if given) and return where it ends.

    Per epoch: the mean training loss/accuracy of the steps taken, then validation loss and
    accuracy on `val` without gradients. `penalty()` (e.g. a weight or activity penalty) is
    added to the loss being minimised; the reported training loss is the data loss. `augment`
    changes the inputs, `adversary` the (inputs, labels) of each batch (`epoch_steps`).
    `schedule(t)` sets group 0's rate before step t and the other groups' in proportion to their
    starting rates (`lr_scales`); without one the optimizer's rates are left as they are.
    `checkpoint(position)` is called every `checkpoint_every` epochs and every
    `checkpoint_every_steps` steps; when `interrupt` is set
    (e.g. by a Ctrl-C handler) a checkpoint is written after the current step and
    `Interrupted` is raised. A callback returning STOP from `on_epoch_end` ends training.
    Dropout draws from the global torch RNG; its state is restored when `fit` returns, so
    training leaves a caller's random numbers as they were.

    Data parallel (`world` of torchrun's ranks; `model` wrapped in DistributedDataParallel and
    `loader` giving this rank's part of each batch): the records, the validation and the stop
    on `interrupt` are the whole run's, the same on every rank (`trainlab.train.world`);
    `checkpoint` is called on every rank at the same steps. `autocast` (torch.bfloat16) runs
    the training forward passes in mixed precision (`trainlab.train.precision`)."""
    pos = position or Position()
    sync = StepSync(world, interrupt) if world.distributed else None
    for cb in callbacks:
        cb.on_fit_start(loader.total_steps(epochs), pos.step)
    while pos.epoch < epochs:
        started = time.perf_counter()
        steps = epoch_steps(
            model, loader, optimizer, loss_fn, schedule, epoch=pos.epoch,
            start_batch=pos.batch, start_step=pos.step, channels_last=channels_last,
            penalty=penalty, augment=augment, seed=seed, adversary=adversary, sync=sync,
            autocast=autocast,
        )  # fmt: skip
        lr = optimizer.param_groups[0]["lr"] if schedule is None else schedule(max(pos.step - 1, 0))
        for rec in steps:
            # The epoch's running sums live in `pos`, so a resumed epoch adds the same terms
            # in the same order as an uninterrupted one.
            pos.loss_sum += rec.loss * rec.size
            pos.correct += rec.correct
            pos.seen, pos.batch, pos.step, lr = pos.seen + rec.size, rec.batch + 1, rec.step, rec.lr
            for cb in callbacks:
                cb.on_step_end(rec)
            stop_now = interrupt is not None and interrupt.is_set() if sync is None else sync.stop
            if checkpoint and (stop_now or _due(pos.step, checkpoint_every_steps)):
                started = _add_seconds(pos, started)
                checkpoint(pos)
            if stop_now:
                raise Interrupted(f"interrupted at step {pos.step}")
        _add_seconds(pos, started)
        record = _end_epoch(pos, model, val, loss_fn, lr, eval_batch_size, channels_last, loader,
                            world)  # fmt: skip
        pos.history.append(record.as_dict())
        pos.epoch, pos.batch, pos.loss_sum, pos.correct, pos.seen = pos.epoch + 1, 0, 0.0, 0, 0
        signals = [cb.on_epoch_end(record) for cb in callbacks]
        if checkpoint and (pos.epoch % checkpoint_every == 0 or pos.epoch == epochs):
            checkpoint(pos)
        if STOP in signals:
            break
    for cb in callbacks:
        cb.on_fit_end(pos.history)
    return pos


def _due(step: int, every: int | None) -> bool:
    return every is not None and step % every == 0


def _add_seconds(pos: Position, started: float) -> float:
    """Add the wall time since `started` to `pos`; return the new start time."""
    now = time.perf_counter()
    pos.seconds += now - started
    return now


def _end_epoch(
    pos: Position,
    model: nn.Module,
    val: TensorSplit | None,
    loss_fn: LossFn,
    lr: float,
    eval_batch_size: int,
    channels_last: bool,
    loader: InMemoryLoader,
    world: World,
) -> EpochRecord:
    seen = max(pos.seen, 1)
    classify = loader.split.y.dtype == torch.int64 and loader.split.y.dim() == 1
    val_loss, val_acc = None, None
    if val is not None and len(val) > 0:
        inner = model.module if isinstance(model, DistributedDataParallel) else model
        val_loss, val_acc = evaluate(inner, val, loss_fn, eval_batch_size, channels_last,
                                     world=world)  # fmt: skip
    epoch_seconds = pos.seconds - sum(h["seconds"] for h in pos.history)
    return EpochRecord(
        epoch=pos.epoch + 1,
        step=pos.step,
        train_loss=pos.loss_sum / seen,
        train_acc=pos.correct / seen if classify else None,
        val_loss=val_loss,
        val_acc=val_acc,
        lr=lr,
        seconds=epoch_seconds,
        samples_per_s=pos.seen / max(epoch_seconds, 1e-9),
    )
