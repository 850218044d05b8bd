"""One contract over every alias in the registry, plus bad-input errors."""

from __future__ import annotations

import io

import pytest
import torch

import trainlab.optim as to

# Per-alias arguments that make a 2-tensor quadratic converge within 300 steps.
ARGS = {
    "sgd": dict(lr=0.1, momentum=0.9),
    "adagrad": dict(lr=0.5),
    "rmsprop": dict(lr=0.01),
    "adadelta": dict(lr=10.0),
    "adam": dict(lr=0.05),
    "adamw": dict(lr=0.05, weight_decay=0.0),
    "nadam": dict(lr=0.05),
}


def test_registry_is_covered() -> None:
    assert set(ARGS) == set(to.ALIASES)


def _quadratic(dtype: torch.dtype):
    target = [torch.full((3, 2), 2.0, dtype=dtype), torch.full((2,), -1.0, dtype=dtype)]

    def loss(ps):
        return sum(((p - t) ** 2).sum() for p, t in zip(ps, target, strict=True))

    return loss


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", sorted(ARGS))
def test_contract_converges_keeps_dtype_round_trips(name: str, dtype: torch.dtype) -> None:
    loss = _quadratic(dtype)
    params = [
        torch.zeros(3, 2, dtype=dtype, requires_grad=True),
        torch.zeros(2, dtype=dtype, requires_grad=True),
    ]
    opt = to.Optimizer(params, to.get_optimizer(name, **ARGS[name]))
    start = float(loss(params).detach())
    for _ in range(300):
        opt.zero_grad()
        loss(params).backward()
        opt.step()
    assert float(loss(params).detach()) < 1e-2 * start
    assert all(p.dtype == dtype for p in params)
    for t in to.find_states(opt.transform_state(), to.AdamState):
        assert all(m.dtype == dtype for m in t.mu)
    buf = io.BytesIO()
    torch.save(opt.state_dict(), buf)
    buf.seek(0)
    twin = to.Optimizer([p.detach().clone() for p in params], to.get_optimizer(name, **ARGS[name]))
    twin.load_state_dict(torch.load(buf, weights_only=True))
    a, b = _tensors(opt.transform_state()), _tensors(twin.transform_state())
    assert len(a) == len(b) > 0
    for x, y in zip(a, b, strict=True):
        torch.testing.assert_close(x, y, rtol=0, atol=0)


def _tensors(state) -> list[torch.Tensor]:
    if isinstance(state, torch.Tensor):
        return [state]
    if isinstance(state, tuple | list):
        return [t for s in state for t in _tensors(s)]
    return []


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: to.adam(lr=-1.0), r"^adam: lr=-1.0 is outside the valid range \[0.0, inf\]$"),
        (lambda: to.sgd(lr=-0.1), r"^sgd: lr=-0.1 is outside the valid range \[0.0, inf\]$"),
        (
            lambda: to.adam(betas=(0.9, 1.0)),
            r"^adam: betas\[1\]=1.0 is outside the valid range \[0.0, 1.0\)$",
        ),
        (
            lambda: to.adamw(betas=(-0.1, 0.9)),
            r"^adamw: betas\[0\]=-0.1 is outside the valid range \[0.0, 1.0\)$",
        ),
        (lambda: to.sgd(momentum=1.5), r"^sgd: momentum=1.5 is outside the valid range"),
        (lambda: to.rmsprop(alpha=1.0), r"^scale_by_rms: alpha=1.0 is outside the valid range"),
        (lambda: to.scale_by_lr(lambda t: -1.0), r"^scale_by_lr: lr=-1.0 is outside"),
        (
            lambda: to.get_optimizer("adamm"),
            r"^unknown optimizer 'adamm' \(did you mean 'adam'\?\)",
        ),
        (lambda: to.get_optimizer("SGDW"), r"^unknown optimizer 'SGDW' \(did you mean 'sgd'\?\)"),
        (lambda: to.lookahead(to.sgd(), k=0), r"^lookahead: k=0 must be an integer >= 1$"),
        (lambda: to.use_backend("cuda").__enter__(), r"^backend='cuda' is not one of"),
    ],
)
def test_bad_input_fails_at_once_in_one_line(call, message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        call()
    assert "\n" not in str(info.value)
