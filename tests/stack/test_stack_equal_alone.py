"""Each stacked model equals the same model trained alone by `fit` (float64, to 1e-10): SGD with
momentum, Adam and AdamW, a different learning rate and weight decay per model, an MLP and a
small CNN with BatchNorm (running statistics included; no conv bias before the norm, as in the
zoo: its gradient is pure rounding noise, which Adam rescales to eps-sized steps), and the
equal-rate fused path."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn

from trainlab import optim
from trainlab.data import InMemoryLoader, TensorSplit
from trainlab.stack import StackedModel, evaluate_stacked, fit_stacked, stacked_optimizer
from trainlab.train import evaluate, fit, get_loss

K = 3
RULES = {
    "sgd": (optim.sgd, {"momentum": 0.9}, [0.02, 0.05, 0.1]),
    "adam": (optim.adam, {}, [1e-3, 3e-3, 1e-2]),
    "adamw": (optim.adamw, {}, [1e-3, 3e-3, 1e-2]),
}
DECAYS = [0.0, 1e-3, 3e-2]


def _mlp() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(36, 16), nn.ReLU(), nn.Linear(16, 4))


def _cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
        nn.Linear(4 * 36, 4),
    )  # fmt: skip


def _data() -> TensorSplit:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 1, 6, 6, generator=g, dtype=torch.float64)
    y = (x.flatten(1)[:, :4].argmax(1) + torch.randint(0, 2, (200,), generator=g)) % 4
    return TensorSplit(x, y)


def _seeded(build: Callable[[], nn.Module], seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return build().double()


def _alone(build, rule: str, lr: float, wd: float, seed: int, data: TensorSplit) -> nn.Module:
    alias, options, _ = RULES[rule]
    model = _seeded(build, seed)
    opt = optim.Optimizer(model.parameters(), alias(lr=lr, weight_decay=wd, **options))
    fit(model, InMemoryLoader(data, 32, seed=100 + seed), opt, get_loss("cross_entropy"), epochs=3)
    return model


def _stacked(build, rule: str, lrs: list[float], wds: list[float], data: TensorSplit):
    alias, options, _ = RULES[rule]
    stack = StackedModel([_seeded(build, k) for k in range(K)])
    opt = stacked_optimizer(stack, alias, rule, lrs, wds, **options)
    loaders = [InMemoryLoader(data, 32, seed=100 + k) for k in range(K)]
    run = fit_stacked(stack, loaders, opt, get_loss("cross_entropy"), epochs=3, val=data)
    return stack, run


def _max_gap(a: nn.Module, b: nn.Module) -> float:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    return max(float((sa[n].double() - sb[n].double()).abs().max()) for n in sa)


@pytest.mark.parametrize("build", [_mlp, _cnn], ids=["mlp", "cnn-batchnorm"])
@pytest.mark.parametrize("rule", sorted(RULES))
def test_each_stacked_model_equals_it_trained_alone(build, rule: str) -> None:
    data, lrs = _data(), RULES[rule][2]
    stack, run = _stacked(build, rule, lrs, DECAYS, data)
    for k in range(K):
        alone = _alone(build, rule, lrs[k], DECAYS[k], k, data)
        assert _max_gap(stack.unstack(k), alone) < 1e-10
        val_loss, val_acc = evaluate(alone, data, get_loss("cross_entropy"))
        assert run.histories[k][-1]["val_loss"] == pytest.approx(val_loss, abs=1e-10)
        assert run.histories[k][-1]["val_acc"] == val_acc
        assert run.histories[k][-1]["lr"] == pytest.approx(lrs[k])
    # the models really are different: distinct seeds, rates and decays
    assert _max_gap(stack.unstack(0), stack.unstack(1)) > 1e-3


def test_equal_rates_take_the_fused_path_and_still_match() -> None:
    data = _data()
    stack, _ = _stacked(_mlp, "adamw", [3e-3] * K, [1e-2] * K, data)
    for k in range(K):
        assert _max_gap(stack.unstack(k), _alone(_mlp, "adamw", 3e-3, 1e-2, k, data)) < 1e-10


def test_the_training_history_matches_fit() -> None:
    data = _data()
    _, run = _stacked(_mlp, "sgd", RULES["sgd"][2], DECAYS, data)
    model = _seeded(_mlp, 1)
    opt = optim.Optimizer(model.parameters(), optim.sgd(0.05, 0.9, weight_decay=1e-3))
    pos = fit(model, InMemoryLoader(data, 32, seed=101), opt, get_loss("cross_entropy"),
              epochs=3, val=data)  # fmt: skip
    for mine, theirs in zip(run.histories[1], pos.history, strict=True):
        for key in ("epoch", "step", "train_acc", "val_acc"):
            assert mine[key] == theirs[key]
        for key in ("train_loss", "val_loss", "lr"):
            assert mine[key] == pytest.approx(theirs[key], abs=1e-10)


def test_dropout_draws_a_different_mask_per_model() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(8, 64), nn.Dropout(0.5))
    stack = StackedModel([net, net])  # identical weights: only the masks can differ
    out = stack(torch.ones(2, 4, 8)).detach()
    assert not torch.equal(out[0] == 0, out[1] == 0)
    stack.eval()
    out = stack(torch.ones(4, 8), shared=True)
    assert torch.equal(out[0], out[1])


def test_a_diverging_model_stops_alone_and_keeps_its_last_good_weights() -> None:
    data = _data()
    stack, run = _stacked(_mlp, "sgd", [0.05, 1e200, 0.1], DECAYS, data)
    assert 1 in run.diverged and 0 not in run.diverged and 2 not in run.diverged
    assert len(run.histories[1]) < 3 and len(run.histories[0]) == 3
    kept = run.model(stack, 1)
    assert all(torch.isfinite(p).all() for p in kept.parameters())
    assert _max_gap(stack.unstack(2), _alone(_mlp, "sgd", 0.1, DECAYS[2], 2, data)) < 1e-10


def test_evaluate_stacked_equals_evaluate_per_model() -> None:
    data = _data()
    models = [_seeded(_cnn, k) for k in range(K)]
    loss, acc = evaluate_stacked(StackedModel(models), data, get_loss("cross_entropy"), 64)
    for k, model in enumerate(models):
        ref_loss, ref_acc = evaluate(model, data, get_loss("cross_entropy"), 64)
        assert float(loss[k]) == pytest.approx(ref_loss, abs=1e-12)
        assert float(acc[k]) == ref_acc


def test_models_of_different_architecture_are_refused() -> None:
    with pytest.raises(ValueError, match="differ in architecture"):
        StackedModel([nn.Linear(3, 4), nn.Linear(3, 5)])
