"""Tests for trainlab.train.ensembles: averaging, voting, bagging, snapshot ensembles."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from trainlab.data import InMemoryLoader, TensorSplit, load_dataset
from trainlab.train.callbacks import Hooks
from trainlab.train.ensembles import (
    SnapshotEnsemble,
    bootstrap_split,
    ensemble_accuracy,
    predict_proba,
    snapshot_schedule,
    vote,
)
from trainlab.train.fit import fit
from trainlab.train.records import StepRecord


class Fixed(nn.Module):
    """Returns fixed logits per sample (indexed by x[:, 0]), ignoring weights."""

    def __init__(self, logits: list[list[float]]) -> None:
        super().__init__()
        self.logits = torch.tensor(logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits[x[:, 0].long()]


def test_predict_proba_is_mean_of_softmaxes_by_hand() -> None:
    a = [[1.0, 0.0, 0.0], [0.0, 2.0, 0.0]]
    b = [[0.0, 0.0, 0.0], [math.log(3.0), 0.0, 0.0]]
    x = torch.tensor([[0.0], [1.0]])
    probs = predict_proba([Fixed(a), Fixed(b)], x)
    e = math.e
    expected = [
        [(e / (e + 2) + 1 / 3) / 2, (1 / (e + 2) + 1 / 3) / 2, (1 / (e + 2) + 1 / 3) / 2],
        [
            (1 / (e**2 + 2) + 3 / 5) / 2,
            (e**2 / (e**2 + 2) + 1 / 5) / 2,
            (1 / (e**2 + 2) + 1 / 5) / 2,
        ],
    ]
    assert torch.allclose(probs, torch.tensor(expected), atol=1e-6)
    assert torch.allclose(probs.sum(dim=1), torch.ones(2))


def test_predict_proba_eval_mode_no_grad_and_modes_restored() -> None:
    torch.manual_seed(0)
    net1 = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.5), nn.Linear(8, 3))
    net2 = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.5), nn.Linear(8, 3))
    net1.train()
    net2.eval()
    x = torch.randn(16, 4)
    probs = predict_proba([net1, net2], x, batch_size=5)
    assert not probs.requires_grad
    assert net1.training and all(m.training for m in net1.modules())
    assert not net2.training and not any(m.training for m in net2.modules())
    net1.eval()
    with torch.no_grad():
        by_hand = (torch.softmax(net1(x), 1) + torch.softmax(net2(x), 1)) / 2
    assert torch.allclose(probs, by_hand, atol=1e-6)


def test_vote_matches_hand_majority_with_tie() -> None:
    # 3 samples, 3 classes, 4 models.
    m1 = Fixed([[5.0, 0.0, 0.0], [0.0, 5.0, 0.0], [3.0, 0.0, 0.0]])
    m2 = Fixed([[4.0, 0.0, 0.0], [0.0, 0.0, 5.0], [3.0, 0.0, 0.0]])
    m3 = Fixed([[0.0, 1.0, 0.0], [0.0, 0.0, 5.0], [0.0, 9.0, 0.0]])
    m4 = Fixed([[0.0, 9.0, 9.5], [0.0, 0.0, 5.0], [0.0, 9.0, 0.0]])
    x = torch.tensor([[0.0], [1.0], [2.0]])
    # sample 0: votes 0,0,1,2 -> class 0 (majority although averaged probs favour others less)
    # sample 1: votes 1,2,2,2 -> class 2
    # sample 2: votes 0,0,1,1 -> tie 0 vs 1; class 1 has higher mean prob (sharper logits)
    models = [m1, m2, m3, m4]
    assert vote(models, x).tolist() == [0, 2, 1]
    probs = predict_proba(models, x)
    assert probs[2, 1] > probs[2, 0]
    # majority differs from averaging where a confident minority dominates the mean
    m5 = Fixed([[1.0, 0.0, 0.0]] * 3)
    m6 = Fixed([[1.0, 0.0, 0.0]] * 3)
    m7 = Fixed([[0.0, 20.0, 0.0]] * 3)
    three = [m5, m6, m7]
    assert vote(three, x).tolist() == [0, 0, 0]
    assert predict_proba(three, x).argmax(1).tolist() == [1, 1, 1]
    split = TensorSplit(x, torch.tensor([0, 0, 1]))
    assert ensemble_accuracy(three, split, "vote") == pytest.approx(2 / 3)
    assert ensemble_accuracy(three, split, "average") == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="method"):
        ensemble_accuracy(three, split, "median")  # type: ignore[arg-type]


def test_bootstrap_seeded_with_replacement() -> None:
    n = 200
    split = TensorSplit(torch.arange(n, dtype=torch.float32)[:, None], torch.arange(n))
    boot = bootstrap_split(split, torch.Generator().manual_seed(7))
    again = bootstrap_split(split, torch.Generator().manual_seed(7))
    other = bootstrap_split(split, torch.Generator().manual_seed(8))
    assert len(boot) == n
    assert torch.equal(boot.x, again.x) and torch.equal(boot.y, again.y)
    assert not torch.equal(boot.y, other.y)
    assert torch.equal(boot.x[:, 0].long(), boot.y)  # rows stay aligned
    distinct = len(torch.unique(boot.y))
    assert distinct < n  # duplicates: drawn with replacement
    assert abs(distinct / n - (1 - 1 / math.e)) < 0.1  # ~63.2% distinct


def test_snapshot_schedule_matches_paper_formula() -> None:
    lr0, total, cycles = 0.2, 100, 4  # cycle length ceil(100/4) = 25
    sched = snapshot_schedule(lr0, total, cycles)

    def paper(t: int) -> float:  # t is 1-indexed in the paper
        c = math.ceil(total / cycles)
        return lr0 / 2 * (math.cos(math.pi * ((t - 1) % c) / c) + 1)

    for step in (0, 1, 7, 12, 24, 25, 26, 49, 50, 74, 99):
        assert sched(step) == pytest.approx(paper(step + 1), abs=1e-12)
    for start in (0, 25, 50, 75):
        assert sched(start) == pytest.approx(lr0)  # restart
        assert sched(start + 24) < 0.005 * lr0  # ~0 at the cycle's last step
        assert sched(start + 24) < sched(start + 25)
    assert sched(12) == pytest.approx(lr0 / 2 * (math.cos(math.pi * 12 / 25) + 1))
    # uneven: ceil(10/3) = 4
    uneven = snapshot_schedule(1.0, 10, 3)
    assert uneven(4) == pytest.approx(1.0) and uneven(2) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="cycles"):
        snapshot_schedule(0.1, 10, 0)


def _mlp(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))


def test_snapshot_callback_keeps_last_m_at_cycle_ends_digits() -> None:
    bundle = load_dataset("digits")
    loader = InMemoryLoader(bundle.train, 64, seed=0)
    per_epoch = len(loader)
    epochs, cycles = 8, 4
    total = epochs * per_epoch
    model = _mlp(0)
    snaps = SnapshotEnsemble(model, total, cycles, keep=3)
    lrs: list[float] = []

    class LogLr(Hooks):
        def on_step_end(self, record: StepRecord) -> None:
            lrs.append(record.lr)

    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    fit(
        model, loader, opt, nn.functional.cross_entropy, epochs=epochs,
        schedule=snaps.schedule(0.2), callbacks=[snaps, LogLr()],
    )  # fmt: skip
    c = math.ceil(total / cycles)
    assert snaps.cycle_length == c
    assert len(snaps.snapshots) == 3
    assert snaps.steps == [2 * c, 3 * c, 4 * c]
    assert all(s % c == 0 for s in snaps.steps)
    # each snapshot was taken at the low point of the schedule
    for s in snaps.steps:
        assert lrs[s - 1] < 0.01 * 0.2
    # the last snapshot equals the final model; snapshots are independent copies
    last = snaps.models[-1]
    assert last is not model
    for p, q in zip(last.parameters(), model.parameters(), strict=True):
        assert torch.equal(p, q) and not p.requires_grad
    assert not torch.equal(snaps.models[0][1].weight, model[1].weight)
    model.train()
    members = snaps.member_accuracies(bundle.test)
    ens = snaps.accuracy(bundle.test)
    voted = snaps.accuracy(bundle.test, "vote")
    assert model.training and all(m.training for m in snaps.models)  # modes restored
    assert min(members) > 0.8
    hand_avg, hand_vote = _hand_ensemble(snaps.models, bundle.test)
    assert ens == hand_avg and voted == hand_vote
    assert ens == ensemble_accuracy(snaps.models, bundle.test)


def test_bagged_members_on_digits() -> None:
    bundle = load_dataset("digits")
    models = []
    for k in range(3):
        boot = bootstrap_split(bundle.train, torch.Generator().manual_seed(k))
        model = _mlp(k)
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        fit(
            model, InMemoryLoader(boot, 64, seed=k), opt, nn.functional.cross_entropy,
            epochs=3,
        )  # fmt: skip
        models.append(model)
    hand_avg, hand_vote = _hand_ensemble(models, bundle.test)
    assert ensemble_accuracy(models, bundle.test) == hand_avg
    assert ensemble_accuracy(models, bundle.test, "vote") == hand_vote
    singles = [ensemble_accuracy([m], bundle.test) for m in models]
    assert len(set(singles)) > 1  # the bootstrap resamples made different members


def _hand_ensemble(models: list[nn.Module], split) -> tuple[float, float]:
    """Accuracy of the averaged softmax and of the majority vote (ties to the lowest class
    with the highest mean probability), computed member by member with a Python loop."""
    probs = []
    for m in models:
        was = m.training
        with torch.no_grad():
            probs.append(torch.softmax(m.eval()(split.x), dim=1))
        m.train(was)
    mean = sum(probs) / len(probs)
    avg = int((mean.argmax(1) == split.y).sum()) / len(split.y)
    correct = 0
    for i in range(len(split.y)):
        votes = [int(p[i].argmax()) for p in probs]
        top = max(votes.count(c) for c in set(votes))
        tied = [c for c in set(votes) if votes.count(c) == top]
        pick = max(tied, key=lambda c: (mean[i, c].item(), -c))
        correct += pick == int(split.y[i])
    return avg, correct / len(split.y)
