"""Fast Geometric Ensembling (Garipov et al. 2018, Sec. 4): from a trained network, cycle the
learning rate between α1 and α2 over short cycles and keep a snapshot each time it reaches α2.
The snapshots lie in one low-loss region (mode connectivity says the optima are joined by
low-loss paths) yet differ enough that averaging their predictions beats each of them.

The schedule (their eq. 6), for iterations i = 1, 2, … and cycle length c (even):
    t(i) = (mod(i − 1, c) + 1) / c
    α(i) = (1 − 2t) α1 + 2t α2          for 0 < t ≤ ½
    α(i) = (2 − 2t) α2 + (2t − 1) α1    for ½ < t ≤ 1
so the snapshot is taken after iteration i with t(i) = ½. Each snapshot's BatchNorm statistics
are recomputed over training data before it predicts (as their code does).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from trainlab.data import InMemoryLoader, TensorSplit
from trainlab.landscape.curves import has_batchnorm, recompute_batchnorm
from trainlab.optim import Optimizer, get_optimizer
from trainlab.train import evaluate, fit
from trainlab.train.callbacks import Hooks
from trainlab.train.ensembles import ensemble_accuracy
from trainlab.train.losses import LossFn
from trainlab.train.records import StepRecord


def fge_schedule(alpha1: float, alpha2: float, cycle: int) -> Callable[[int], float]:
    """Garipov et al.'s triangular cycle as a 0-indexed step schedule (step s is iteration
    i = s + 1): α1 at each cycle's start, α2 at its middle, back towards α1 at its end."""
    if cycle < 2 or cycle % 2:
        raise ValueError(f"cycle must be an even number of steps >= 2, got {cycle}")
    if not alpha1 >= alpha2 > 0:
        raise ValueError(f"need alpha1 >= alpha2 > 0, got {alpha1} and {alpha2}")

    def schedule(step: int) -> float:
        t = (step % cycle + 1) / cycle
        if t <= 0.5:
            return (1 - 2 * t) * alpha1 + 2 * t * alpha2
        return (2 - 2 * t) * alpha2 + (2 * t - 1) * alpha1

    return schedule


class MidCycleSnapshots(Hooks):
    """A `fit` callback that copies the model after each step at the middle of a cycle (where
    `fge_schedule` reaches α2): after 1-based step k with k mod c = c/2."""

    def __init__(self, model: nn.Module, cycle: int) -> None:
        self.model, self.cycle = model, cycle
        self.snapshots: list[tuple[int, nn.Module]] = []

    def on_step_end(self, record: StepRecord) -> None:
        if record.step % self.cycle == self.cycle // 2:
            snap = copy.deepcopy(self.model)
            for p in snap.parameters():
                p.requires_grad_(False)
            self.snapshots.append((record.step, snap))


@dataclass(frozen=True)
class FGEResult:
    """Snapshots (with their step), each one's test accuracy, the accuracy of the ensemble of
    the first k snapshots for k = 1..K, and the starting model's accuracy."""

    snapshots: list[tuple[int, nn.Module]]
    member_acc: list[float]
    ensemble_acc: list[float]
    start_acc: float


def _with_recomputed_bn(model: nn.Module, inputs: TensorSplit, channels_last: bool) -> None:
    """Replace the snapshot's BatchNorm statistics by ones recomputed over `inputs`."""
    x = inputs.x.contiguous(memory_format=torch.channels_last) if channels_last else inputs.x
    params = [p.detach() for p in model.parameters()]
    buffers = recompute_batchnorm(model, params, x.split(128))
    with torch.no_grad():
        for name, b in model.named_buffers():
            b.copy_(buffers[name])


def fast_geometric_ensemble(
    model: nn.Module,
    loader: InMemoryLoader,
    loss_fn: LossFn,
    test: TensorSplit,
    *,
    cycles: int = 4,
    cycle_epochs: int = 2,
    alpha1: float = 0.05,
    alpha2: float = 0.0005,
    momentum: float = 0.9,
    weight_decay: float = 5e-4,
    bn_inputs: TensorSplit | None = None,
    channels_last: bool = False,
) -> FGEResult:
    """Train a copy of `model` for cycles × cycle_epochs epochs of SGD under `fge_schedule`
    (cycle = cycle_epochs epochs), snapshot at each cycle's middle, recompute each snapshot's
    BatchNorm statistics over `bn_inputs` (default: the loader's split) and report single and
    ensemble (averaged softmax) test accuracies. `model` is not modified."""
    if cycles < 1 or cycle_epochs < 1:
        raise ValueError(f"need cycles >= 1 and cycle_epochs >= 1, got {cycles}, {cycle_epochs}")
    cycle = cycle_epochs * len(loader) + (cycle_epochs * len(loader)) % 2
    work = copy.deepcopy(model)
    optimizer = Optimizer(
        work.parameters(),
        get_optimizer("sgd", lr=alpha1, momentum=momentum, weight_decay=weight_decay),
    )
    keeper = MidCycleSnapshots(work, cycle)
    schedule = fge_schedule(alpha1, alpha2, cycle)
    fit(work, loader, optimizer, loss_fn, epochs=cycles * cycle_epochs, schedule=schedule,
        callbacks=[keeper], channels_last=channels_last)  # fmt: skip
    members = [snap for _, snap in keeper.snapshots]
    if has_batchnorm(model):
        for snap in members:
            _with_recomputed_bn(snap, bn_inputs or loader.split, channels_last)
    x = test.x.contiguous(memory_format=torch.channels_last) if channels_last else test.x
    split = TensorSplit(x, test.y)
    member_acc = [ensemble_accuracy([m], split) for m in members]
    ensemble_acc = [ensemble_accuracy(members[: k + 1], split) for k in range(len(members))]
    _, start_acc = evaluate(model, split, loss_fn)
    return FGEResult(keeper.snapshots, member_acc, ensemble_acc, float(start_acc or 0.0))
