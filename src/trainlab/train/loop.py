"""The training step generator and gradient-free evaluation."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from trainlab.data import InMemoryLoader, TensorSplit
from trainlab.train.losses import LossFn
from trainlab.train.precision import autocast_to
from trainlab.train.records import StepRecord
from trainlab.train.world import SINGLE, StepSync, World, all_sum, share_buffers

Schedule = Callable[[int], float]


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or Inf; the step that produced it was not applied."""

    def __init__(self, value: float, step: int = 0, epoch: int = 0, batch: int = 0) -> None:
        super().__init__(
            f"loss became {value} at step {step} (epoch {epoch + 1}, batch {batch + 1}); "
            "the step was not applied"
        )
        self.value, self.step = value, step


def _as_input(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    if channels_last and x.dim() == 4:
        return x.contiguous(memory_format=torch.channels_last)
    return x


def count_correct(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Number of argmax hits for (N,) class labels; 0 for regression targets and for the
    (N, K) label columns of multi-task learning (see `trainlab.nn.multitask`)."""
    if targets.dtype != torch.int64 or targets.dim() != 1:
        return torch.zeros((), dtype=torch.int64)
    return (outputs.argmax(dim=1) == targets).sum()


def lr_scales(optimizer: torch.optim.Optimizer) -> list[float]:
    """Each param group's rate as a multiple of the schedule: its lr over group 0's, taken the
    first time and kept in ``group["lr_scale"]`` (so checkpoints carry it). A schedule then
    scales every group as torch's ``LambdaLR`` scales each group's base rate."""
    groups = optimizer.param_groups
    lr0 = groups[0]["lr"]
    for i, group in enumerate(groups):
        if "lr_scale" not in group:
            if lr0 == 0 and group["lr"] != 0:
                raise ValueError(
                    f"fit: param group 0 has lr 0, so group {i}'s lr {group['lr']} is no multiple "
                    "of it; give group 0 a nonzero lr or set group['lr_scale']"
                )
            group["lr_scale"] = 1.0 if group["lr"] == lr0 else group["lr"] / lr0
    return [float(g["lr_scale"]) for g in groups]


Adversary = Callable[
    [torch.Tensor, torch.Tensor, torch.Generator], tuple[torch.Tensor, torch.Tensor]
]
"""A batch transform that sees the labels: ``(x, y, generator) -> (x, y)``."""


def epoch_steps(
    model: nn.Module,
    loader: InMemoryLoader,
    optimizer: torch.optim.Optimizer,
    loss_fn: LossFn,
    schedule: Schedule | None,
    *,
    epoch: int,
    start_batch: int = 0,
    start_step: int = 0,
    channels_last: bool = False,
    penalty: Callable[[], torch.Tensor] | None = None,
    augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None,
    seed: int = 0,
    adversary: Adversary | None = None,
    sync: StepSync | None = None,
    autocast: torch.dtype | None = None,
) -> Iterator[StepRecord]:
    """Run the steps of one epoch from `start_batch`, yielding a record after each.

    Before step t (0-indexed) group 0's lr is set to `schedule(t)` and every other group's to
    `schedule(t)` times its `lr_scales` ratio (no schedule: the groups' rates are left alone,
    the record shows group 0's); the batch goes through `augment` with a generator seeded from
    (seed, t), then through `adversary` (e.g. adversarial examples mixed in, with labels) with
    another. With `sync` (data-parallel ranks, `trainlab.train.world`) the records hold the
    global batch's loss, correct count and size. A non-finite
    loss raises NonFiniteLossError before backward, so the parameters stay at the last good
    values."""
    model.train()
    step = start_step
    scales = lr_scales(optimizer) if schedule is not None else []
    for batch, (x, y) in enumerate(loader.epoch(epoch, start_batch), start=start_batch):
        if schedule is None:
            lr = optimizer.param_groups[0]["lr"]
        else:
            lr = schedule(step)
            for group, scale in zip(optimizer.param_groups, scales, strict=True):
                group["lr"] = lr * scale
        if augment is not None:  # seeded by (seed, step): resumable with no saved state
            x = augment(x, torch.Generator().manual_seed(seed * 1_000_003 + step))
        if adversary is not None:
            x, y = adversary(x, y, torch.Generator().manual_seed(seed * 1_000_033 + step))
        try:
            x = _as_input(x, channels_last)
            value, correct = train_step(model, optimizer, loss_fn, x, y, penalty, sync, autocast)
        except NonFiniteLossError as err:
            raise NonFiniteLossError(err.value, step + 1, epoch, batch) from None
        step += 1
        size = len(y) if sync is None else sync.total
        yield StepRecord(epoch, batch, step, value, correct, size, lr)


def train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: LossFn,
    x: torch.Tensor,
    y: torch.Tensor,
    penalty: Callable[[], torch.Tensor] | None = None,
    sync: StepSync | None = None,
    autocast: torch.dtype | None = None,
) -> tuple[float, int]:
    """One `optimizer.step(closure)` on the objective loss + penalty(); returns the data loss
    and the number of correct predictions at the weights before the step. The closure form
    serves one-pass optimizers and two-pass ones (SAM and its variants call it twice) alike.
    A non-finite loss on the first evaluation raises NonFiniteLossError before backward, so
    no step is applied. With `sync` the loss and count are the global batch's (every rank sees
    the same, so all stop together on a NaN) and this rank's loss is weighted by its share of
    the batch (`StepSync.reduce`). With `autocast` (torch.bfloat16) the forward pass runs
    under ``torch.autocast`` and the loss is taken of the logits cast back to fp32
    (`trainlab.train.precision`)."""
    first: list[tuple[float, int, float]] = []

    def closure() -> torch.Tensor:
        if autocast is None:
            outputs = model(x)
        else:
            with autocast_to(autocast, x.device.type):
                outputs = model(x)
            outputs = outputs.float()
        loss = loss_fn(outputs, y)
        if not first:
            correct = int(count_correct(outputs.detach(), y))
            if sync is None:  # one host read per step: the NaN check and the running sums
                value, weight = loss.item(), 1.0
            else:
                value, correct, _, weight = sync.reduce(loss, correct, len(y))
            if not math.isfinite(value):
                raise NonFiniteLossError(value)
            first.append((value, correct, weight))
        weight = first[0][2]
        objective = loss if weight == 1.0 else loss * weight
        objective = objective if penalty is None else objective + penalty()
        optimizer.zero_grad(set_to_none=True)
        objective.backward()
        return loss

    if getattr(optimizer, "needs_batch", False):  # second-order steps (trainlab.optim.Newton)
        optimizer.set_batch(loss_fn, x, y)  # type: ignore[attr-defined]
    optimizer.step(closure)
    return first[0][0], first[0][1]


def shifted(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """Images (N, C, H, W) translated by (dy, dx) pixels, the uncovered border zero (the fill of
    random crops with zero padding), in x's memory format."""
    h, w = x.shape[-2:]
    p = max(abs(dy), abs(dx))
    padded = F.pad(x, (p, p, p, p))
    out = padded[..., p - dy : p - dy + h, p - dx : p - dx + w]
    fmt = torch.channels_last if x.dim() == 4 and not x.is_contiguous() else torch.contiguous_format
    return out.contiguous(memory_format=fmt)


ONE_PIXEL = ((1, 0), (-1, 0), (0, 1), (0, -1))
TTA_FLIPS = {"hflip": -1, "vflip": -2}  # test-time flip name -> flipped image dim
TTA_VIEWS = (*TTA_FLIPS, "shift")  # the names a recipe's train.tta may hold


def tta_views(x: torch.Tensor, tta: tuple[str, ...]) -> list[torch.Tensor]:
    """The test-time views of a batch: each of (x and its named flips) taken as is and, with
    "shift", moved one pixel in each of the four directions (flips x shifts, as Krizhevsky et
    al. 2012 averaged over flips and crops); the first view is x itself."""
    flipped = [x] + [x.flip(TTA_FLIPS[n]) for n in tta if n in TTA_FLIPS]
    if "shift" not in tta:
        return flipped
    return [v for f in flipped for v in (f, *(shifted(f, dy, dx) for dy, dx in ONE_PIXEL))]


def predict_logits(model: nn.Module, x: torch.Tensor, tta: tuple[str, ...] = ()) -> torch.Tensor:
    """The model's logits for ``x``; with test-time augmentation (``tta``, e.g. ``("hflip",)``)
    the log of the class probabilities averaged over the views of `tta_views`, usable wherever
    logits are."""
    if not tta:
        return model(x)
    logps = [model(v).log_softmax(-1) for v in tta_views(x, tta)]
    return torch.logsumexp(torch.stack(logps), 0) - math.log(len(logps))


@torch.inference_mode()
def evaluate(
    model: nn.Module,
    split: TensorSplit,
    loss_fn: LossFn,
    batch_size: int = 1000,
    channels_last: bool = False,
    tta: tuple[str, ...] = (),
    world: World = SINGLE,
) -> tuple[float, float | None]:
    """(mean loss, accuracy or None for regression) over `split`, in eval mode, no gradients,
    optionally with test-time flips (`predict_logits`; classification only).
    The model's train/eval mode is restored afterwards. Across data-parallel ranks (`world`)
    each rank scores its slice with rank 0's buffers and the sums are added
    (`trainlab.train.world`): every rank gets the whole split's figures."""
    unknown = [n for n in tta if n not in TTA_VIEWS]
    if unknown:
        raise ValueError(f"tta: unknown {unknown[0]!r}; expected some of {sorted(TTA_VIEWS)}")
    was_training = model.training
    model.eval()
    share_buffers(world, model)
    part = world.slice(len(split))
    xs, ys = split.x[part], split.y[part]
    loss_sum, correct = 0.0, 0
    for lo in range(0, len(ys), batch_size):
        x, y = xs[lo : lo + batch_size], ys[lo : lo + batch_size]
        outputs = predict_logits(model, _as_input(x, channels_last), tta)
        loss_sum += loss_fn(outputs, y).item() * len(y)
        correct += int(count_correct(outputs, y))
    model.train(was_training)
    if world.distributed:
        sums = all_sum(world, torch.tensor([loss_sum, float(correct)], dtype=torch.float64))
        loss_sum, correct = float(sums[0]), int(sums[1])
    n = max(len(split), 1)
    accuracy = correct / n if split.y.dtype == torch.int64 and split.y.dim() == 1 else None
    return loss_sum / n, accuracy
