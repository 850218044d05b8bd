"""EMA of the weights (trainlab.train.ema) and the final metrics of a run (trainlab.run.evaluation):
the average against the hand-computed recurrence and against optim.ema_weights, decay 0 equal
to the raw model, and the training accuracy measured in eval mode at the end."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from trainlab import optim
from trainlab.data import InMemoryLoader, TensorSplit
from trainlab.run.config import Recipe, validate_recipe
from trainlab.run.runner import train_recipe
from trainlab.train import Hooks, evaluate, fit
from trainlab.train.ema import EMAWeights
from trainlab.train.losses import get_loss

# No probes or report: this file measures the run's metrics, not its diagnosis.
QUIET = (
    {"diagnose": {"probes": False, "report": False}} if "diagnose" in Recipe.model_fields else {}
)


class Snapshots(Hooks):
    """Copies of the model's state after every step."""

    def __init__(self, model: nn.Module) -> None:
        self.model, self.states = model, []

    def on_step_end(self, record):  # noqa: ANN001, ANN201
        self.states.append({k: v.detach().clone() for k, v in self.model.state_dict().items()})


def _setup(seed: int = 0) -> tuple[nn.Module, InMemoryLoader]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(64, 4, generator=g)
    y = (x[:, 0] + x[:, 1] > 0).long()
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2))
    return model, InMemoryLoader(TensorSplit(x, y), batch_size=16, seed=seed)


def test_ema_matches_hand_computed_average_including_batchnorm_buffers() -> None:
    model, loader = _setup()
    start = {k: v.detach().clone() for k, v in model.state_dict().items()}
    ema, seen = EMAWeights(model, 0.8), Snapshots(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    fit(model, loader, opt, get_loss("cross_entropy"), epochs=2, callbacks=[ema, seen])
    assert len(seen.states) == 8
    for key, value in start.items():
        if not value.is_floating_point():
            continue
        hand = value.clone()
        for state in seen.states:  # avg_t = 0.8 avg_{t-1} + 0.2 x_t
            hand = 0.8 * hand + 0.2 * state[key]
        assert torch.allclose(ema.avg[key], hand, atol=1e-6), key
    for key in ("3.weight", "1.running_mean"):  # the average lags the raw weights
        assert not torch.allclose(ema.avg[key], seen.states[-1][key]), key
    twin = ema.averaged_model()
    assert int(twin[1].num_batches_tracked) == 8
    assert torch.equal(twin[0].weight, ema.avg["0.weight"])


def test_ema_callback_equals_the_ema_weights_transform() -> None:
    model, loader = _setup(1)
    other, _ = _setup(1)
    ema = EMAWeights(model, 0.9)
    plain = torch.optim.SGD(model.parameters(), lr=0.3)
    fit(model, loader, plain, get_loss("cross_entropy"), epochs=1, callbacks=[ema])
    chained = optim.Optimizer(
        other.parameters(), optim.chain(optim.sgd(lr=0.3), optim.ema_weights(0.9))
    )
    fit(other, loader, chained, get_loss("cross_entropy"), epochs=1)
    averaged = optim.averaged_params(chained.transform_state())
    names = [name for name, _ in other.named_parameters()]
    for name, avg in zip(names, averaged, strict=True):
        assert torch.allclose(ema.avg[name], avg, atol=1e-6), name


def test_ema_decay_out_of_range() -> None:
    model, _ = _setup()
    with pytest.raises(ValueError, match="0 <= decay < 1"):
        EMAWeights(model, 1.0)


def test_run_with_decay_zero_reports_ema_equal_to_raw_and_eval_mode_train_accuracy(
    tmp_path,  # noqa: ANN001
) -> None:
    recipe = validate_recipe({
        "name": "ema0", "runs_dir": str(tmp_path), **QUIET,
        "data": {"name": "digits", "batch_size": 64},
        "model": {"name": "mlp", "widths": [32], "dropout": 0.5, "norm": "batch"},
        "optimizer": {"name": "sgd", "lr": 0.1, "momentum": 0.9},
        "schedule": {"name": "constant"},
        "train": {"epochs": 3, "threads": 1, "ema_decay": 0.0},
    })  # fmt: skip
    result = train_recipe(recipe, quiet=True)
    m, exp = result.metrics, result.experiment
    assert exp is not None
    assert m["ema_test_acc"] == result.test_acc
    assert m["ema_test_loss"] == result.test_loss
    args = (exp.loss_fn, 1000, True)
    assert (m["ema_val_loss"], m["ema_val_acc"]) == evaluate(exp.model, exp.val, *args)
    # the train side of the gap: eval mode (dropout off), final weights, whole training split
    assert (m["train_loss"], m["train_acc"]) == evaluate(exp.model, exp.loader.split, *args)
    assert m["train_acc"] != result.history[-1]["train_acc"]
