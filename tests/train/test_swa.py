"""SWA / Polyak averaging (`trainlab.train.swa`) against torch.optim.swa_utils: the same
average after every update, the same BatchNorm statistics after `update_bn`, and the update
points (end of epoch from `start_epoch`, or every step) as documented."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, update_bn

from trainlab.train.records import EpochRecord, StepRecord
from trainlab.train.swa import SWAWeights


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3)).double()


def _perturb(model: nn.Module, gen: torch.Generator) -> None:
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen, dtype=p.dtype))


def _epoch(k: int) -> EpochRecord:
    return EpochRecord(k, 10 * k, 0.0, None, None, None, 0.1, 1.0, 1.0)


def test_average_equals_torch_averaged_model() -> None:
    model, gen = _model(), torch.Generator().manual_seed(1)
    ours, theirs = SWAWeights(model, start_epoch=0), AveragedModel(model)
    for _ in range(7):
        _perturb(model, gen)
        ours.update()
        theirs.update_parameters(model)
    for a, b in zip(ours.avg, theirs.module.parameters(), strict=True):
        torch.testing.assert_close(a, b.detach(), rtol=1e-13, atol=1e-14)
    assert ours.count == int(theirs.n_averaged) == 7


def test_batchnorm_statistics_equal_update_bn() -> None:
    model, gen = _model(), torch.Generator().manual_seed(2)
    ours, theirs = SWAWeights(model, start_epoch=0), AveragedModel(model)
    for _ in range(3):
        _perturb(model, gen)
        ours.update()
        theirs.update_parameters(model)
    batches = [torch.randn(16, 5, generator=gen, dtype=torch.float64) for _ in range(4)]
    update_bn(batches, theirs)
    averaged = ours.averaged_model(batches)
    bn_ours, bn_theirs = averaged[1], theirs.module[1]
    torch.testing.assert_close(bn_ours.running_mean, bn_theirs.running_mean, rtol=1e-12, atol=0)
    torch.testing.assert_close(bn_ours.running_var, bn_theirs.running_var, rtol=1e-12, atol=0)
    x = torch.randn(6, 5, generator=gen, dtype=torch.float64)
    averaged.eval()
    theirs.eval()
    torch.testing.assert_close(averaged(x), theirs(x), rtol=1e-12, atol=1e-13)
    assert model[1].running_mean.abs().sum() == 0  # the trained model is left alone


def test_swa_updates_at_epoch_ends_from_start_epoch() -> None:
    model = _model()
    swa = SWAWeights(model, start_epoch=2)
    seen = []
    for k in range(1, 5):
        with torch.no_grad():
            model[0].bias.fill_(float(k))
        swa.on_step_end(StepRecord(k - 1, 0, k, 0.0, 0, 1, 0.1))  # ignored: every="epoch"
        swa.on_epoch_end(_epoch(k))
        seen.append(swa.count)
    assert seen == [0, 1, 2, 3]
    torch.testing.assert_close(swa.avg[1], torch.full((8,), 3.0, dtype=torch.float64))  # (2+3+4)/3


def test_polyak_averages_every_step_from_the_first() -> None:
    model = _model()
    swa = SWAWeights(model, start_epoch=0, every="step")
    for step in range(1, 5):
        with torch.no_grad():
            model[0].bias.fill_(float(step))
        swa.on_step_end(StepRecord(0, step - 1, step, 0.0, 0, 1, 0.1))
    swa.on_epoch_end(_epoch(1))  # ignored: every="step"
    assert swa.count == 4
    torch.testing.assert_close(swa.avg[1], torch.full((8,), 2.5, dtype=torch.float64))


def test_state_round_trips_and_bad_input_is_one_line() -> None:
    model = _model()
    swa = SWAWeights(model, start_epoch=0)
    swa.update()
    twin = SWAWeights(model)
    twin.load_state_dict(swa.state_dict())
    assert twin.count == 1 and all(
        torch.equal(a, b) for a, b in zip(twin.avg, swa.avg, strict=True)
    )
    with pytest.raises(ValueError, match="expected an epoch count >= 0"):
        SWAWeights(model, start_epoch=-1)
    with pytest.raises(ValueError, match="expected 'epoch' or 'step'"):
        SWAWeights(model, every="batch")  # type: ignore[arg-type]
