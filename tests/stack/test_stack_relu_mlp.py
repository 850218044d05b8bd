"""The hand-written stacked ReLU-MLP step gives autograd's losses and gradients (float64), with
and without padded (masked) units, and is used only where it applies."""

from __future__ import annotations

from functools import partial

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import vmap

from trainlab.stack import StackedModel, pad_mlp
from trainlab.stack.fit import fast_step
from trainlab.stack.relu_mlp import ReluMLPStep, is_plain_cross_entropy, relu_mlp_linears
from trainlab.train import get_loss


def _mlp(h: int, seed: int) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Flatten(), nn.Linear(12, h), nn.ReLU(), nn.Linear(h, h), nn.ReLU(), nn.Linear(h, 5)
    ).double()


def _autograd(stack: StackedModel, x: torch.Tensor, y: torch.Tensor) -> tuple:
    stack.zero_grad(set_to_none=True)
    losses = vmap(F.cross_entropy)(stack(x), y)
    losses.sum().backward()
    return losses.detach(), [p.grad.clone() for p in stack.parameters()]


@pytest.mark.parametrize("padded", [False, True], ids=["equal-widths", "padded-widths"])
def test_hand_written_step_equals_autograd(padded: bool) -> None:
    widths = [4, 9, 6] if padded else [8, 8, 8]
    models = [_mlp(h, k) for k, h in enumerate(widths)]
    if padded:
        models = [pad_mlp(m, [9, 9]) for m in models]
    stack = StackedModel(models)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 32, 1, 12, generator=g, dtype=torch.float64)
    y = torch.randint(0, 5, (3, 32), generator=g)
    ref_losses, ref_grads = _autograd(stack, x, y)
    step = ReluMLPStep(stack, relu_mlp_linears(stack.template))
    stack.zero_grad(set_to_none=True)
    losses, correct = step(x, y)
    assert torch.allclose(losses, ref_losses, atol=1e-14, rtol=0)
    for p, ref in zip(stack.parameters(), ref_grads, strict=True):
        assert torch.allclose(p.grad, ref, atol=1e-14, rtol=0)
    logits = stack(x).detach()
    assert torch.equal(correct, (logits.argmax(-1) == y).sum(-1))


def test_only_relu_mlps_under_plain_cross_entropy_take_it() -> None:
    assert relu_mlp_linears(_mlp(4, 0)) == [1, 3, 5]
    assert relu_mlp_linears(nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))) is None
    assert relu_mlp_linears(nn.Sequential(nn.Linear(3, 4), nn.ReLU())) is None
    assert relu_mlp_linears(nn.Sequential(nn.Linear(3, 4, bias=False))) is None
    assert is_plain_cross_entropy(get_loss("cross_entropy"))
    assert not is_plain_cross_entropy(partial(F.cross_entropy, label_smoothing=0.1))
    assert not is_plain_cross_entropy(F.mse_loss)
    stack = StackedModel([_mlp(4, 0), _mlp(4, 1)])
    assert fast_step(stack, get_loss("cross_entropy")) is not None
    assert fast_step(stack, get_loss("mse")) is None
