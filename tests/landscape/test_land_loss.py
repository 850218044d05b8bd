"""L(θ) via functional_call equals the model's loss, and no function modifies the model."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from land_cases import data, tiny_mlp

from trainlab.landscape import (
    HVP_METHODS,
    eigenvalue_density,
    hutchinson_trace,
    loss_of_params,
    make_hvp,
    model_params,
    sam_sharpness,
    sharpness_report,
    split_batches,
    top_eigenvalues_lanczos,
    top_eigenvalues_power,
)


def test_eval_mode_loss_equals_model_loss_however_batched() -> None:
    model = tiny_mlp(dropout=0.5)
    x, y = data()
    expected = F.cross_entropy(copy.deepcopy(model).eval()(x), y)
    params = model_params(model)
    whole = loss_of_params(model, F.cross_entropy, (x, y))
    split = loss_of_params(model, F.cross_entropy, split_batches(x, y, 7))  # 7, 7, 7, 3
    assert whole.num_examples == split.num_examples == 24
    assert len(split.terms) == 4
    torch.testing.assert_close(whole(params), expected, rtol=1e-14, atol=0)
    torch.testing.assert_close(split(params), expected, rtol=1e-14, atol=0)


def test_batch_mode_uses_batch_statistics_and_no_dropout() -> None:
    model = tiny_mlp(dropout=0.5)
    x, y = data()
    reference = copy.deepcopy(model).eval()
    reference[1].train()  # BatchNorm in training mode, dropout off
    expected = F.cross_entropy(reference(x), y)
    loss = loss_of_params(model, F.cross_entropy, (x, y), batchnorm="batch")
    params = model_params(model)
    torch.testing.assert_close(loss(params), expected, rtol=1e-14, atol=0)
    torch.testing.assert_close(loss(params), expected, rtol=1e-14, atol=0)  # no drift


def test_loss_uses_the_given_parameters() -> None:
    model = tiny_mlp()
    x, y = data()
    loss = loss_of_params(model, F.cross_entropy, (x, y))
    params = [p + 0.1 for p in model_params(model)]
    shifted = copy.deepcopy(model).eval()
    with torch.no_grad():
        for p in shifted.parameters():
            p.add_(0.1)
    torch.testing.assert_close(loss(params), F.cross_entropy(shifted(x), y), rtol=1e-14, atol=0)


def test_bad_arguments_fail_with_one_line() -> None:
    model = tiny_mlp()
    x, y = data()
    with pytest.raises(ValueError, match="batchnorm must be one of"):
        loss_of_params(model, F.cross_entropy, (x, y), batchnorm="train")
    with pytest.raises(ValueError, match="at least one"):
        loss_of_params(model, F.cross_entropy, [])
    with pytest.raises(ValueError, match="expected 6 parameter tensors, got 1"):
        loss_of_params(model, F.cross_entropy, (x, y))([torch.zeros(3)])
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        split_batches(x, y, 0)


def _snapshot(model: torch.nn.Module) -> dict:
    return {
        "state": {k: v.clone() for k, v in model.state_dict().items()},
        "modes": [m.training for m in model.modules()],
        "grads": [p.grad for p in model.parameters()],
        "track": [getattr(m, "track_running_stats", None) for m in model.modules()],
    }


def _assert_unchanged(model: torch.nn.Module, before: dict) -> None:
    state = model.state_dict()
    assert state.keys() == before["state"].keys()
    for key, value in before["state"].items():
        assert torch.equal(state[key], value), key  # bit-identical
        assert state[key].dtype == value.dtype
    assert [m.training for m in model.modules()] == before["modes"]
    assert all(p.grad is None for p in model.parameters())
    assert [getattr(m, "track_running_stats", None) for m in model.modules()] == before["track"]


@pytest.mark.parametrize("batchnorm", ["eval", "batch"])
def test_no_function_modifies_the_model(batchnorm: str) -> None:
    model = tiny_mlp(dropout=0.3).train()  # training mode: the flags must survive too
    x, y = data(40)
    before = _snapshot(model)
    loss = loss_of_params(model, F.cross_entropy, split_batches(x, y, 8), batchnorm=batchnorm)
    params = model_params(model)
    loss(params)
    _assert_unchanged(model, before)
    for method in HVP_METHODS:
        hvp = make_hvp(loss, params, method)
        hvp([torch.ones_like(p) for p in params])
        _assert_unchanged(model, before)
        top_eigenvalues_power(hvp, params, 2, max_iter=5)
        _assert_unchanged(model, before)
    top_eigenvalues_lanczos(hvp, params, 2, steps=6)
    _assert_unchanged(model, before)
    hutchinson_trace(hvp, params, samples=3)
    _assert_unchanged(model, before)
    eigenvalue_density(hvp, params, steps=5, starts=2)
    _assert_unchanged(model, before)
    sam_sharpness(loss, params, 0.1)
    _assert_unchanged(model, before)
    sharpness_report(
        model, F.cross_entropy, x, y, n_examples=16, batch_size=8, max_iter=5,
        trace_samples=3, batchnorm=batchnorm,
    )  # fmt: skip
    _assert_unchanged(model, before)
