"""Models of different widths in one stack: the padded units never change an output or a
gradient, and each model cut back out equals the same model trained alone (float64, 1e-10)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from trainlab import optim
from trainlab.data import InMemoryLoader, TensorSplit
from trainlab.stack import StackedModel, fit_stacked, stacked_optimizer
from trainlab.stack.widths import (
    hidden_widths,
    mlp_flops,
    pad_mlp,
    padding_waste,
    plan_buckets,
    unpad,
)
from trainlab.train import fit, get_loss

WIDTHS = [3, 7, 12]


def _mlp(h: int, seed: int, norm: bool = False, act: type = nn.ReLU) -> nn.Sequential:
    torch.manual_seed(seed)
    norms = [nn.BatchNorm1d(h)] if norm else []
    return nn.Sequential(
        nn.Linear(10, h), *norms, act(), nn.Linear(h, h), act(), nn.Linear(h, 4)
    ).double()


def _data() -> TensorSplit:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(120, 10, generator=g, dtype=torch.float64)
    return TensorSplit(x, (x[:, :4].argmax(1) + (x[:, 5] > 1).long()) % 4)


@pytest.mark.parametrize("act", [nn.ReLU, nn.Sigmoid], ids=["relu", "sigmoid"])
def test_padding_changes_no_output_and_no_real_gradient(act: type) -> None:
    """Sigmoid(0) = 1/2, so without the mask padded units would leak into the next layer."""
    model = _mlp(5, 0, norm=True, act=act)
    padded = pad_mlp(model, [9, 9])
    x = torch.randn(16, 10, dtype=torch.float64)
    out, out_p = model(x), padded(x)
    assert torch.allclose(out, out_p, atol=1e-14, rtol=0)
    out.square().sum().backward()
    out_p.square().sum().backward()
    for (name, p), q in zip(model.named_parameters(), padded.parameters(), strict=True):
        real = q.grad[tuple(slice(0, s) for s in p.shape)]
        assert torch.allclose(p.grad, real, atol=1e-13, rtol=0), name
        outside = q.grad.clone()
        outside[tuple(slice(0, s) for s in p.shape)] = 0
        assert torch.count_nonzero(outside) == 0, f"{name}: a padded unit got a gradient"


@pytest.mark.parametrize("rule", ["sgd", "adamw"])
def test_padded_stack_of_widths_equals_each_model_alone(rule: str) -> None:
    alias, options, lr = {"sgd": (optim.sgd, {"momentum": 0.9}, 0.05),
                          "adamw": (optim.adamw, {}, 3e-3)}[rule]  # fmt: skip
    data, top = _data(), max(WIDTHS)
    plain = [_mlp(h, k) for k, h in enumerate(WIDTHS)]
    stack = StackedModel([pad_mlp(m, [top, top]) for m in plain])
    opt = stacked_optimizer(stack, alias, rule, [lr] * 3, [1e-2] * 3, **options)
    loaders = [InMemoryLoader(data, 20, seed=k) for k in range(3)]
    fit_stacked(stack, loaders, opt, get_loss("cross_entropy"), epochs=4)
    for k, h in enumerate(WIDTHS):
        alone = _mlp(h, k)
        o = optim.Optimizer(alone.parameters(), alias(lr=lr, weight_decay=1e-2, **options))
        fit(alone, InMemoryLoader(data, 20, seed=k), o, get_loss("cross_entropy"), epochs=4)
        mine = unpad(stack.unstack(k), plain[k])
        assert hidden_widths(mine) == [h, h]
        for a, b in zip(mine.parameters(), alone.parameters(), strict=True):
            assert float((a - b).detach().abs().max()) < 1e-10


def test_pad_refuses_what_it_cannot_pad_and_narrower_widths() -> None:
    with pytest.raises(ValueError, match="cannot pad a Conv1d"):
        pad_mlp(nn.Sequential(nn.Linear(3, 4), nn.Conv1d(1, 1, 1), nn.Linear(4, 2)), [5])
    with pytest.raises(ValueError, match="must cover"):
        pad_mlp(_mlp(8, 0), [4, 4])


def test_buckets_trade_overhead_against_padding() -> None:
    widths = [2, 3, 4, 6, 50, 60, 400]

    def cost(h: int) -> float:
        return mlp_flops([h, h], 40, 10)

    assert plan_buckets(widths, cost, overhead=0.0) == [[i] for i in range(7)]
    assert plan_buckets(widths, cost, overhead=1e12) == [list(range(7))]
    middle = plan_buckets(widths, cost, overhead=cost(60))
    assert sorted(i for b in middle for i in b) == list(range(7))
    assert [6] in middle and len(middle) < 7  # 400 alone; small widths share
    assert 0 < padding_waste(widths, middle, cost) < padding_waste(widths, [list(range(7))], cost)
    assert mlp_flops([100, 100], 40, 10) == 40 * 100 + 100 * 100 + 100 * 10
