"""Dropout forms, MC dropout, Gaussian input noise and weight noise, with their numbers."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainlab.nn.dropout import (
    GaussianNoise,
    InvertedDropout,
    MCDropout,
    VanillaDropout,
    add_weight_noise,
    check_probability,
    dropout_active,
    make_dropout,
    mc_predict,
    remove_weight_noise,
)

P = 0.3
X = torch.tensor([1.0, -2.0, 0.5, 4.0])
N_MASKS = 50_000


def _many(x: torch.Tensor) -> torch.Tensor:
    """N_MASKS copies of x as rows: one pass draws N_MASKS independent masks."""
    return x.expand(N_MASKS, -1).contiguous()


def _mean_tolerance(x: torch.Tensor, p: float, scale: float) -> torch.Tensor:
    """5 standard errors of the mean of `scale · x · Bernoulli(1 − p)` over N_MASKS draws."""
    return 5 * scale * x.abs() * math.sqrt(p * (1 - p) / N_MASKS)


def test_inverted_without_generator_is_torch_dropout():
    x = torch.randn(64, 32)
    torch.manual_seed(7)
    ours = InvertedDropout(P)(x)
    torch.manual_seed(7)
    assert torch.equal(ours, nn.Dropout(P)(x))


def test_inverted_dropout_values_and_expectation():
    d = InvertedDropout(P, generator=torch.Generator().manual_seed(0))
    y = d(_many(X))
    kept = y != 0
    torch.testing.assert_close(y[kept], (_many(X) / (1 - P))[kept])
    assert abs(kept.float().mean().item() - (1 - P)) < 0.01
    # E[train output] = x = test output.
    assert ((y.mean(0) - X).abs() <= _mean_tolerance(X, P, 1 / (1 - P))).all()
    d.eval()
    assert torch.equal(d(X), X)


def test_vanilla_dropout_expected_train_output_equals_test_output():
    d = VanillaDropout(P, generator=torch.Generator().manual_seed(0))
    y = d(_many(X))
    assert set(torch.unique(y / _many(X)).tolist()) == {0.0, 1.0}  # no scaling at training
    d.eval()
    test_out = d(X)
    torch.testing.assert_close(test_out, (1 - P) * X)  # scaled at test time
    assert ((y.mean(0) - test_out).abs() <= _mean_tolerance(X, P, 1.0)).all()


def test_vanilla_and_inverted_draw_the_same_masks_and_agree_up_to_the_scale():
    x = torch.randn(100, 10)
    inv = InvertedDropout(P, generator=torch.Generator().manual_seed(3))(x)
    van = VanillaDropout(P, generator=torch.Generator().manual_seed(3))(x)
    torch.testing.assert_close(inv * (1 - P), van)


def test_generator_makes_dropout_reproducible():
    x = torch.randn(20, 20)
    a = InvertedDropout(0.5, generator=torch.Generator().manual_seed(1))(x)
    b = InvertedDropout(0.5, generator=torch.Generator().manual_seed(1))(x)
    c = InvertedDropout(0.5, generator=torch.Generator().manual_seed(2))(x)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_zero_probability_is_identity_in_both_modes():
    x = torch.randn(5, 3)
    for d in (InvertedDropout(0.0), VanillaDropout(0.0), MCDropout(0.0)):
        assert torch.equal(d(x), x)
        d.eval()
        assert torch.equal(d(x), x)


# --- Monte-Carlo dropout ----------------------------------------------------------------------


def _net(dropout: nn.Module) -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 16), nn.BatchNorm1d(16), nn.ReLU(), dropout, nn.Linear(16, 4))


def test_mc_predict_is_the_average_of_k_stochastic_passes():
    x = torch.randn(8, 6, generator=torch.Generator().manual_seed(0))
    k = 7
    model = _net(InvertedDropout(0.5, generator=torch.Generator().manual_seed(11)))
    model.train()
    bn_before = model[1].running_mean.clone()
    mean, var = mc_predict(model, x, k)
    assert model.training and all(m.training for m in model.modules())  # flags restored
    assert torch.equal(model[1].running_mean, bn_before)  # BatchNorm ran in eval mode

    replay = _net(InvertedDropout(0.5, generator=torch.Generator().manual_seed(11)))
    replay.load_state_dict(model.state_dict())
    replay.eval()
    replay[3].train()
    with torch.no_grad():
        probs = torch.stack([F.softmax(replay(x), dim=-1) for _ in range(k)])
    torch.testing.assert_close(mean, probs.mean(0))
    torch.testing.assert_close(var, probs.var(0, correction=0))
    torch.testing.assert_close(mean.sum(-1), torch.ones(8))
    assert (var > 0).any()


def test_mc_predict_without_dropout_has_zero_variance():
    x = torch.randn(8, 6)
    model = _net(nn.Identity()).eval()
    mean, var = mc_predict(model, x, 5)
    assert torch.equal(var, torch.zeros_like(var))
    with torch.no_grad():
        torch.testing.assert_close(mean, F.softmax(model(x), dim=-1))
    assert not model.training


def test_mc_predict_switches_on_torch_dropout_and_mc_dropout_stays_on_in_eval():
    x = torch.randn(8, 6)
    _, var = mc_predict(_net(nn.Dropout(0.5)).eval(), x, 4)
    assert (var > 0).any()
    d = MCDropout(0.5, generator=torch.Generator().manual_seed(0)).eval()
    y = d(torch.ones(1000))
    assert set(torch.unique(y).tolist()) == {0.0, 2.0}


def test_dropout_active_restores_mixed_flags():
    model = _net(nn.Dropout(0.5))
    model.train()
    model[1].eval()
    with dropout_active(model):
        assert [m.training for m in model] == [False, False, False, True, False]
    assert [m.training for m in model] == [True, False, True, True, True]


# --- Gaussian noise on inputs and weights -----------------------------------------------------


def test_gaussian_noise_train_vs_eval():
    std = 0.5
    layer = GaussianNoise(std, generator=torch.Generator().manual_seed(0))
    x = torch.randn(200, 500)
    noise = layer(x) - x
    assert abs(noise.mean().item()) < 5 * std / math.sqrt(noise.numel())
    assert abs(noise.std().item() - std) < 0.01
    expected = x + std * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    fresh = GaussianNoise(std, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(fresh(x), expected)
    layer.eval()
    assert torch.equal(layer(x), x)


def test_weight_noise_perturbs_weights_only_in_training():
    std = 0.1
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 3))
    w, b = model[0].weight.detach().clone(), model[0].bias.detach().clone()
    add_weight_noise(model, std, generator=torch.Generator().manual_seed(4))
    x = torch.randn(6, 5)
    y = model(x)
    eps = torch.randn(w.shape, generator=torch.Generator().manual_seed(4))
    torch.testing.assert_close(y, F.linear(x, w + std * eps, b))
    # The gradient reaches the clean weight, evaluated at the noisy one.
    y.sum().backward()
    grad_clean = model[0].parametrizations.weight.original.grad
    torch.testing.assert_close(grad_clean, torch.ones(6, 3).T @ x)
    model.eval()
    torch.testing.assert_close(model(x), F.linear(x, w, b))
    remove_weight_noise(model)
    assert type(model[0]) is nn.Linear and torch.equal(model[0].weight, w)


# --- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize("p", [1.0, -0.1, 1.5, float("nan"), "half"])
def test_bad_dropout_probability_fails_in_one_line(p):
    for make in (InvertedDropout, VanillaDropout, MCDropout, lambda q: make_dropout(q)):
        with pytest.raises(ValueError) as err:
            make(p)
        msg = str(err.value)
        assert "dropout p must be" in msg and "[0, 1)" in msg and "\n" not in msg
    with pytest.raises(ValueError, match=r"^model\.dropout must be"):
        check_probability(p, "model.dropout")


def test_bad_dropout_kind_and_noise_std():
    with pytest.raises(ValueError, match="unknown dropout kind 'vanila' \\(did you mean 'vanilla'"):
        make_dropout(0.5, "vanila")
    with pytest.raises(ValueError, match="gaussian noise std must be a finite number >= 0"):
        GaussianNoise(-1.0)
    with pytest.raises(ValueError, match="weight noise std"):
        add_weight_noise(nn.Linear(2, 2), float("inf"))
    with pytest.raises(ValueError, match="k \\(number of passes\\) must be >= 1"):
        mc_predict(nn.Linear(2, 2), torch.randn(1, 2), 0)
    assert isinstance(make_dropout(0.2, "vanilla"), VanillaDropout)
