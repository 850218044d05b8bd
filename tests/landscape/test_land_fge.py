"""Fast Geometric Ensembling (Garipov et al. 2018, Sec. 4): the triangular schedule against
eq. 6 by hand, snapshots at the α2 points, BatchNorm statistics recomputed per snapshot."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainlab.data import InMemoryLoader, TensorSplit
from trainlab.landscape.curves import recompute_batchnorm
from trainlab.landscape.fge import fast_geometric_ensemble, fge_schedule
from trainlab.run.fge import describe_fge


def test_schedule_is_the_papers_triangle() -> None:
    lr = fge_schedule(0.1, 0.01, 4)
    # t = 1/4, 1/2, 3/4, 1 for steps 0..3, then the cycle repeats.
    expected = [0.055, 0.01, 0.055, 0.1, 0.055, 0.01]
    assert [lr(s) for s in range(6)] == pytest.approx(expected, rel=1e-12)
    with pytest.raises(ValueError, match="even number of steps"):
        fge_schedule(0.1, 0.01, 3)
    with pytest.raises(ValueError, match="alpha1 >= alpha2 > 0"):
        fge_schedule(0.01, 0.1, 4)


def _problem() -> tuple[nn.Module, InMemoryLoader, TensorSplit]:
    torch.manual_seed(0)
    centers = torch.randn(3, 5) * 2
    y = torch.randint(0, 3, (240,))
    x = centers[y] + torch.randn(240, 5)
    model = nn.Sequential(nn.Linear(5, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 3))
    return model, InMemoryLoader(TensorSplit(x[:180], y[:180]), 30), TensorSplit(x[180:], y[180:])


def test_snapshots_at_cycle_middles_with_recomputed_statistics() -> None:
    model, loader, test = _problem()
    before = copy.deepcopy(model.state_dict())
    result = fast_geometric_ensemble(
        model, loader, F.cross_entropy, test, cycles=3, cycle_epochs=1, alpha1=0.1, alpha2=0.001
    )
    assert [step for step, _ in result.snapshots] == [3, 9, 15]  # 6 steps per cycle
    assert len(result.member_acc) == len(result.ensemble_acc) == 3
    assert result.ensemble_acc[0] == result.member_acc[0]
    snap = result.snapshots[1][1]
    params = [p.detach() for p in snap.parameters()]
    want = recompute_batchnorm(snap, params, loader.split.x.split(128))
    torch.testing.assert_close(snap[1].running_mean, want["1.running_mean"])
    torch.testing.assert_close(snap[1].running_var, want["1.running_var"])
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    summary = {
        "start_test_acc": result.start_acc,
        "snapshot_steps": [s for s, _ in result.snapshots],
        "member_test_acc": result.member_acc,
        "ensemble_test_acc": result.ensemble_acc,
    }
    assert describe_fge(summary).count("ensemble of") == 3
