"""Penalties against their formulas; early stopping against a hand-played metric sequence."""

import pytest
import torch
from torch import nn

from trainlab.train import STOP
from trainlab.train.early_stopping import EarlyStopping
from trainlab.train.records import EpochRecord
from trainlab.train.regularizers import ActivityPenalty, WeightPenalty, penalized_params


def net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3)).double()


def test_weight_penalty_values_and_gradient_skip_biases():
    model = net()
    params = penalized_params(model)
    assert [p.shape for p in params] == [(6, 4), (3, 6)]
    w1, w2 = model[0].weight, model[2].weight
    penalty = WeightPenalty(params, l1=0.01, l2=0.1, group=0.5)()
    hand = (0.05 * (w1.pow(2).sum() + w2.pow(2).sum()) + 0.01 * (w1.abs().sum() + w2.abs().sum())
            + 0.5 * (w1.norm() + w2.norm()))  # fmt: skip
    torch.testing.assert_close(penalty, hand)
    WeightPenalty(params, l2=0.1)().backward()
    torch.testing.assert_close(w1.grad, 0.1 * w1.detach())  # d/dw λ/2‖w‖² = λw
    assert model[0].bias.grad is None


def test_include_1d_penalizes_biases_too():
    assert len(penalized_params(net(), include_1d=True)) == 4


def test_activity_penalty_on_a_named_layer():
    model = net()
    act = ActivityPenalty(model, ["1"], l1=0.2, l2=0.3)
    x = torch.randn(8, 4, dtype=torch.float64)
    hidden = torch.relu(model[0](x))
    model(x)
    torch.testing.assert_close(act(), (0.2 * hidden.abs().sum() + 0.3 * hidden.pow(2).sum()) / 8)
    assert act().item() == 0.0, "terms are cleared after each read"
    act.remove()
    model(x)
    assert act().item() == 0.0
    with pytest.raises(ValueError, match="no layer 'fc9'"):
        ActivityPenalty(model, ["fc9"])


def record(epoch, val_loss):
    return EpochRecord(epoch, epoch * 10, 0.0, None, val_loss, None, 0.1, 1.0, 1.0)


def test_early_stopping_stops_after_patience_and_restores_best():
    model = net()
    stopper = EarlyStopping(model, patience=2, min_delta=0.01)
    losses = [1.0, 0.8, 0.795, 0.9, 0.7]  # 0.795 is not an improvement of more than 0.01
    signals, snapshots = [], []
    for epoch, loss in enumerate(losses, start=1):
        with torch.no_grad():
            model[0].weight.fill_(epoch)
        snapshots.append(epoch)
        signals.append(stopper.on_epoch_end(record(epoch, loss)))
        if signals[-1] == STOP:
            break
    assert signals == [None, None, None, STOP] and stopper.best_epoch == 2
    stopper.on_fit_end([])
    assert torch.all(model[0].weight == 2.0)


def test_early_stopping_state_round_trip():
    a = EarlyStopping(net(), patience=3)
    a.on_epoch_end(record(1, 0.5))
    a.on_epoch_end(record(2, 0.6))
    b = EarlyStopping(net(), patience=3)
    b.load_state_dict(a.state_dict())
    assert (b.best, b.best_epoch, b.wait) == (0.5, 1, 1)
