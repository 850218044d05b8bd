"""Hessian-vector products against exact Hessians: a quadratic's A and autograd's hessian."""

from __future__ import annotations

import pytest
import torch
from land_cases import SHAPES, data, flat, params_for, quadratic, spectrum_matrix, tiny_mlp

from trainlab.landscape import (
    HVP_METHODS,
    loss_of_params,
    make_hvp,
    model_params,
    split_batches,
)
from trainlab.landscape._vectors import unflatten


@pytest.mark.parametrize("method", HVP_METHODS)
def test_hvp_of_quadratic_is_a_times_v(method: str) -> None:
    a, _ = spectrum_matrix([3.0, -2.0, 1.0, 0.5, 0.0, -0.1, 7.0, 2.0, 1.5, -4.0, 0.3, 0.2])
    b = torch.linspace(-1, 1, 12, dtype=torch.float64)
    params = params_for(SHAPES)
    hvp = make_hvp(quadratic(a, b), params, method)
    for seed in range(3):  # the kept graph serves several vectors
        v = params_for(SHAPES, seed=10 + seed)
        out = hvp(v)
        assert [t.shape for t in out] == [p.shape for p in params]
        torch.testing.assert_close(flat(out), a @ flat(v), rtol=0, atol=1e-12)


def _exact_hessian(loss, params: list[torch.Tensor]) -> torch.Tensor:
    return torch.autograd.functional.hessian(lambda w: loss(unflatten(w, params)), flat(params))


@pytest.mark.parametrize("batchnorm", ["eval", "batch"])
def test_hvp_of_mlp_matches_autograd_hessian(batchnorm: str) -> None:
    model = tiny_mlp()
    x, y = data()
    batches = split_batches(x, y, 10)  # batches of 10, 10, 4: weights by size
    loss = loss_of_params(model, torch.nn.functional.cross_entropy, batches, batchnorm=batchnorm)
    params = model_params(model)
    h = _exact_hessian(loss, params)
    torch.testing.assert_close(h, h.T, rtol=0, atol=1e-12)
    v = params_for([tuple(p.shape) for p in params], seed=5)
    for method in HVP_METHODS:
        out = make_hvp(loss, params, method)(v)
        torch.testing.assert_close(flat(out), h @ flat(v), rtol=1e-10, atol=1e-12)


def test_hvp_methods_agree_on_a_cnn_with_batchnorm() -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 3, 3),
        torch.nn.BatchNorm2d(3),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(2),
        torch.nn.Flatten(),
        torch.nn.Linear(12, 4),
    ).double()
    x = torch.randn(8, 1, 6, 6, dtype=torch.float64)
    y = torch.randint(0, 4, (8,))
    loss = loss_of_params(model, torch.nn.functional.cross_entropy, (x, y), batchnorm="batch")
    params = model_params(model)
    v = [torch.randn_like(p) for p in params]
    results = [flat(make_hvp(loss, params, m)(v)) for m in HVP_METHODS]
    for other in results[1:]:
        torch.testing.assert_close(other, results[0], rtol=1e-10, atol=1e-12)


def test_hvp_rejects_misshapen_vector() -> None:
    params = params_for(SHAPES)
    a, _ = spectrum_matrix([1.0] * 12)
    for method in HVP_METHODS:
        with pytest.raises(ValueError, match="shaped like the parameters"):
            make_hvp(quadratic(a), params, method)([torch.zeros(12, dtype=torch.float64)])
    with pytest.raises(ValueError, match="hvp method must be one of"):
        make_hvp(quadratic(a), params, "pearlmutter")


def test_unused_parameters_and_linear_parts_have_zero_hessian() -> None:
    # L(w, b, u) = ½ wᵀAw + cᵀb, u unused: H = diag(A, 0, 0).
    a, _ = spectrum_matrix([2.0, -1.0, 0.5])
    c = torch.tensor([1.0, -2.0], dtype=torch.float64)

    def loss(params: list[torch.Tensor]) -> torch.Tensor:
        w, b, _ = params
        return 0.5 * w @ a @ w + c @ b

    params = [torch.randn(3, dtype=torch.float64) for _ in range(2)]
    params = [params[0], params[1][:2], torch.randn(4, dtype=torch.float64)]
    v = [torch.randn_like(p) for p in params]
    for method in HVP_METHODS:
        out = make_hvp(loss, params, method)(v)
        torch.testing.assert_close(out[0], a @ v[0], rtol=0, atol=1e-12)
        assert torch.equal(out[1], torch.zeros(2, dtype=torch.float64))
        assert torch.equal(out[2], torch.zeros(4, dtype=torch.float64))


def test_batch_renorm_in_batch_mode_with_double_backward() -> None:
    from trainlab.nn.norms import BatchRenorm1d

    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(3, 4), BatchRenorm1d(4), torch.nn.Tanh(), torch.nn.Linear(4, 2)
    ).double()
    x, y = data(12)
    y = y % 2
    before = {k: v.clone() for k, v in model.state_dict().items()}
    loss = loss_of_params(model, torch.nn.functional.cross_entropy, (x, y), batchnorm="batch")
    params = model_params(model)
    assert loss(params) == loss(params)  # buffers copied per call: no drift between calls
    h = _exact_hessian(loss, params)
    v = [torch.randn_like(p) for p in params]
    for method in ("double_backward", "rebuild"):
        out = make_hvp(loss, params, method)(v)
        torch.testing.assert_close(flat(out), h @ flat(v), rtol=1e-10, atol=1e-12)
    assert all(torch.equal(model.state_dict()[k], t) for k, t in before.items())
