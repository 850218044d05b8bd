"""The training step generator and gradient-free evaluation."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import torch
from torch import nn

from trainlab.data import InMemoryLoader, TensorSplit
from trainlab.train.losses import LossFn
from trainlab.train.records import StepRecord

Schedule = Callable[[int], float]


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or Inf; the step that produced it was not applied."""

    def __init__(self, value: float, epoch: int, batch: int, step: int) -> None:
        super().__init__(
            f"loss became {value} at step {step} (epoch {epoch + 1}, batch {batch + 1}); "
            "the step was not applied"
        )
        self.step = step


def _as_input(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    if channels_last and x.dim() == 4:
        return x.contiguous(memory_format=torch.channels_last)
    return x


def count_correct(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Number of argmax hits for class labels; 0 for regression targets."""
    if targets.dtype != torch.int64:
        return torch.zeros((), dtype=torch.int64)
    return (outputs.argmax(dim=1) == targets).sum()


def epoch_steps(
    model: nn.Module,
    loader: InMemoryLoader,
    optimizer: torch.optim.Optimizer,
    loss_fn: LossFn,
    schedule: Schedule,
    *,
    epoch: int,
    start_batch: int = 0,
    start_step: int = 0,
    channels_last: bool = False,
) -> Iterator[StepRecord]:
    """Run the steps of one epoch from `start_batch`, yielding a record after each.

    Before step t (0-indexed) every parameter group's lr is set to `schedule(t)`. A non-finite
    loss raises NonFiniteLossError before backward, so the parameters stay at the last good
    values."""
    model.train()
    step = start_step
    for batch, (x, y) in enumerate(loader.epoch(epoch, start_batch), start=start_batch):
        lr = schedule(step)
        for group in optimizer.param_groups:
            group["lr"] = lr
        outputs = model(_as_input(x, channels_last))
        loss = loss_fn(outputs, y)
        value = loss.item()  # one host read per step: the NaN check and the running sums
        if not math.isfinite(value):
            raise NonFiniteLossError(value, epoch, batch, step + 1)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1
        correct = int(count_correct(outputs.detach(), y))
        yield StepRecord(epoch, batch, step, value, correct, len(y), lr)


@torch.inference_mode()
def evaluate(
    model: nn.Module,
    split: TensorSplit,
    loss_fn: LossFn,
    batch_size: int = 1000,
    channels_last: bool = False,
) -> tuple[float, float | None]:
    """(mean loss, accuracy or None for regression) over `split`, in eval mode, no gradients.
    The model's train/eval mode is restored afterwards."""
    was_training = model.training
    model.eval()
    loss_sum, correct = 0.0, 0
    for lo in range(0, len(split), batch_size):
        x, y = split.x[lo : lo + batch_size], split.y[lo : lo + batch_size]
        outputs = model(_as_input(x, channels_last))
        loss_sum += loss_fn(outputs, y).item() * len(y)
        correct += int(count_correct(outputs, y))
    model.train(was_training)
    n = max(len(split), 1)
    accuracy = correct / n if split.y.dtype == torch.int64 else None
    return loss_sum / n, accuracy
