"""Model ensembles (issue 4, item 6): prediction averaging, majority voting, bagging and
snapshot ensembles.

* Averaging: the ensemble's class probabilities are the mean of each member's softmax.
* Voting: each member votes for its argmax class; the most votes win, and a tie is broken by
  the averaged probabilities.
* Bagging (Breiman 1996, "Bagging predictors", Machine Learning 24:123-140): train each member
  on a bootstrap resample of the training set, N draws with replacement (`bootstrap_split`).
* Snapshot ensembles (Huang et al. 2017, "Snapshot Ensembles: Train 1, get M for free",
  ICLR): one run with a cyclic cosine-annealed learning rate; the model at the end of each
  cycle (a low-lr local minimum) is kept, and the last M snapshots are ensembled
  (`snapshot_schedule`, `SnapshotEnsemble`).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from typing import Literal

import torch
from torch import nn

from trainlab.data import TensorSplit
from trainlab.train.callbacks import Hooks
from trainlab.train.records import StepRecord

Method = Literal["average", "vote"]

__all__ = [
    "Method",
    "SnapshotEnsemble",
    "bootstrap_indices",
    "bootstrap_split",
    "combine",
    "ensemble_accuracy",
    "member_probabilities",
    "predict_proba",
    "snapshot_schedule",
    "vote",
]


def _check_models(models: Sequence[nn.Module]) -> None:
    if len(models) == 0:
        raise ValueError("models: expected at least one model, got an empty sequence")


def _member_probs(models: Sequence[nn.Module], x: torch.Tensor, batch_size: int) -> torch.Tensor:
    """(M, N, C) softmax outputs of each model, computed in eval mode without gradients.
    Every model's train/eval mode is restored afterwards."""
    _check_models(models)
    modes = [m.training for m in models]
    try:
        with torch.no_grad():
            out = []
            for model in models:
                model.eval()
                chunks = [
                    torch.softmax(model(x[lo : lo + batch_size]).float(), dim=1)
                    for lo in range(0, len(x), batch_size)
                ]
                out.append(torch.cat(chunks) if chunks else x.new_zeros((0, 0)))
            return torch.stack(out)
    finally:
        for model, mode in zip(models, modes, strict=True):
            model.train(mode)


def member_probabilities(
    models: Sequence[nn.Module], x: torch.Tensor, batch_size: int = 1000
) -> torch.Tensor:
    """(M, N, C) softmax probabilities of each member on `x` (eval mode, no gradients; each
    model's train/eval mode is restored)."""
    return _member_probs(models, x, batch_size)


def combine(probs: torch.Tensor, method: Method = "average") -> torch.Tensor:
    """(N,) predicted classes from (M, N, C) member probabilities: argmax of their mean
    (`"average"`) or the majority vote (`"vote"`, ties broken by the mean)."""
    if method not in ("average", "vote"):
        raise ValueError(f"method: expected 'average' or 'vote', got {method!r}")
    return probs.mean(dim=0).argmax(dim=1) if method == "average" else _vote_from(probs)


def predict_proba(
    models: Sequence[nn.Module], x: torch.Tensor, batch_size: int = 1000
) -> torch.Tensor:
    """(N, C) mean of the members' softmax probabilities on `x` (eval mode, no gradients;
    each model's train/eval mode is restored)."""
    return _member_probs(models, x, batch_size).mean(dim=0)


def _vote_from(probs: torch.Tensor) -> torch.Tensor:
    """Majority vote from (M, N, C) member probabilities; ties go to the tied class with the
    highest averaged probability (then the lowest index)."""
    num_classes = probs.shape[2]
    ballots = probs.argmax(dim=2)  # (M, N)
    counts = nn.functional.one_hot(ballots, num_classes).sum(dim=0)  # (N, C)
    tied = counts == counts.max(dim=1, keepdim=True).values
    mean = probs.mean(dim=0)
    return torch.where(tied, mean, torch.full_like(mean, -1.0)).argmax(dim=1)


def vote(models: Sequence[nn.Module], x: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """(N,) int64 majority vote of the members' argmax predictions on `x`. Ties between classes
    with equally many votes are broken by the averaged softmax probabilities."""
    return _vote_from(_member_probs(models, x, batch_size))


def ensemble_accuracy(
    models: Sequence[nn.Module],
    split: TensorSplit,
    method: Method = "average",
    batch_size: int = 1000,
) -> float:
    """Accuracy of the ensemble on a classification split: argmax of the averaged
    probabilities (`method="average"`) or the majority vote (`method="vote"`)."""
    if split.y.dtype != torch.int64:
        raise ValueError("ensemble_accuracy: split.y must hold int64 class labels")
    if method not in ("average", "vote"):
        raise ValueError(f"method: expected 'average' or 'vote', got {method!r}")
    if len(split) == 0:
        return 0.0
    pred = combine(_member_probs(models, split.x, batch_size), method)
    return int((pred == split.y).sum()) / len(split)  # exact, as `evaluate` counts


def bootstrap_indices(n: int, generator: torch.Generator) -> torch.Tensor:
    """(n,) int64 indices drawn uniformly from 0..n-1 with replacement (Breiman 1996)."""
    if n < 0:
        raise ValueError(f"n: expected >= 0, got {n}")
    return torch.randint(0, max(n, 1), (n,), generator=generator)


def bootstrap_split(split: TensorSplit, generator: torch.Generator) -> TensorSplit:
    """A bootstrap resample of `split` for bagging (Breiman 1996, "Bagging predictors"):
    N = len(split) samples drawn with replacement, reproducible given the generator's seed.
    About 1 - 1/e ≈ 63.2% of the distinct samples appear in each resample."""
    idx = bootstrap_indices(len(split), generator)
    return TensorSplit(split.x[idx], split.y[idx])


def _cycle_length(total_steps: int, cycles: int) -> int:
    if total_steps < 1:
        raise ValueError(f"total_steps: expected >= 1, got {total_steps}")
    if not 1 <= cycles <= total_steps:
        raise ValueError(f"cycles: expected in 1..total_steps ({total_steps}), got {cycles}")
    return math.ceil(total_steps / cycles)


def snapshot_schedule(lr0: float, total_steps: int, cycles: int) -> Callable[[int], float]:
    """Cyclic cosine annealing of Huang et al. 2017 (eq. 2) as a 0-indexed step schedule.

    The paper's α(t) = α0/2 · (cos(π · mod(t−1, ⌈T/M⌉) / ⌈T/M⌉) + 1) for iterations
    t = 1..T; `fit` calls the schedule with the 0-indexed step s = t − 1, so this returns
    lr0/2 · (cos(π · (s mod c) / c) + 1) with c = ⌈T/M⌉: lr0 at the start of every cycle,
    falling to near 0 at its last step, then restarting."""
    if lr0 <= 0:
        raise ValueError(f"lr0: expected > 0, got {lr0}")
    c = _cycle_length(total_steps, cycles)

    def schedule(step: int) -> float:
        return lr0 / 2 * (math.cos(math.pi * (step % c) / c) + 1)

    return schedule


class SnapshotEnsemble(Hooks):
    """A `fit` callback that keeps snapshots of `model` at the end of each cosine cycle
    (Huang et al. 2017, "Snapshot Ensembles: Train 1, get M for free").

    Use it with `schedule=self.schedule(lr0)` and the same `total_steps` as the run. After
    each step whose 1-based count is a multiple of the cycle length ⌈T/M⌉ a deep copy of the
    model is stored (with its step); only the last `keep` (default: `cycles`) are retained.
    A truncated final cycle (when T is not a multiple of ⌈T/M⌉) gives no snapshot, as it
    does not end at the low point of the schedule."""

    def __init__(
        self, model: nn.Module, total_steps: int, cycles: int, keep: int | None = None
    ) -> None:
        self.model = model
        self.total_steps, self.cycles = total_steps, cycles
        self.cycle_length = _cycle_length(total_steps, cycles)
        self.keep = cycles if keep is None else keep
        if self.keep < 1:
            raise ValueError(f"keep: expected >= 1, got {self.keep}")
        self.snapshots: list[tuple[int, nn.Module]] = []

    def schedule(self, lr0: float) -> Callable[[int], float]:
        """The matching `snapshot_schedule(lr0, total_steps, cycles)`."""
        return snapshot_schedule(lr0, self.total_steps, self.cycles)

    def on_step_end(self, record: StepRecord) -> None:
        if record.step % self.cycle_length == 0:
            snap = copy.deepcopy(self.model)
            for p in snap.parameters():
                p.requires_grad_(False)
            self.snapshots.append((record.step, snap))
            del self.snapshots[: -self.keep]
        return None

    def state_dict(self) -> dict:
        """The kept snapshots' steps and weights, for checkpoints (a resumed run keeps them)."""
        return {"snapshots": [(step, m.state_dict()) for step, m in self.snapshots]}

    def load_state_dict(self, state: dict) -> None:
        self.snapshots = []
        for step, weights in state["snapshots"]:
            snap = copy.deepcopy(self.model)
            snap.load_state_dict(weights)
            for p in snap.parameters():
                p.requires_grad_(False)
            self.snapshots.append((step, snap))

    @property
    def steps(self) -> list[int]:
        """The step counts (1 after the first step) at which the kept snapshots were taken."""
        return [step for step, _ in self.snapshots]

    @property
    def models(self) -> list[nn.Module]:
        """The kept snapshot models, oldest first."""
        return [model for _, model in self.snapshots]

    def accuracy(self, split: TensorSplit, method: Method = "average") -> float:
        """Accuracy of the snapshots' ensemble on `split` (see `ensemble_accuracy`)."""
        return ensemble_accuracy(self.models, split, method)

    def member_accuracies(self, split: TensorSplit) -> list[float]:
        """Accuracy of each kept snapshot alone, oldest first."""
        return [ensemble_accuracy([m], split) for m in self.models]
