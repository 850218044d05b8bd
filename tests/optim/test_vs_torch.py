"""Every alias follows its torch.optim counterpart for 100 steps, float64, rel. error <= 1e-10."""

from __future__ import annotations

import copy

import pytest
import torch
from optim_problems import make_model, rel_err, run_torch_style

import trainlab.optim as to

STEPS = 100
TOL = 1e-10

# (our alias, torch class, kwargs shared by both) -- lr values include large ones.
CASES = [
    (to.sgd, torch.optim.SGD, dict(lr=0.1)),
    (to.sgd, torch.optim.SGD, dict(lr=1.0)),
    (to.sgd, torch.optim.SGD, dict(lr=0.05, momentum=0.9)),
    (to.sgd, torch.optim.SGD, dict(lr=0.5, momentum=0.9, dampening=0.3)),
    (to.sgd, torch.optim.SGD, dict(lr=0.1, momentum=0.9, nesterov=True)),
    (to.sgd, torch.optim.SGD, dict(lr=0.8, momentum=0.5, nesterov=True, weight_decay=0.01)),
    (to.sgd, torch.optim.SGD, dict(lr=0.1, weight_decay=0.1)),
    (to.sgd, torch.optim.SGD, dict(lr=0.1, momentum=0.99, dampening=0.5, weight_decay=1e-3)),
    (to.adagrad, torch.optim.Adagrad, dict()),
    (to.adagrad, torch.optim.Adagrad, dict(lr=1.0, lr_decay=0.01, weight_decay=0.1)),
    (to.adagrad, torch.optim.Adagrad, dict(lr=0.1, initial_accumulator_value=0.5, eps=1e-6)),
    (to.rmsprop, torch.optim.RMSprop, dict()),
    (to.rmsprop, torch.optim.RMSprop, dict(lr=0.1, centered=True)),
    (to.rmsprop, torch.optim.RMSprop, dict(lr=0.01, momentum=0.9)),
    (to.rmsprop, torch.optim.RMSprop, dict(lr=0.1, momentum=0.5, centered=True, alpha=0.9)),
    (to.rmsprop, torch.optim.RMSprop, dict(lr=0.01, weight_decay=0.1, eps=1e-3)),
    (to.adadelta, torch.optim.Adadelta, dict()),
    (to.adadelta, torch.optim.Adadelta, dict(lr=10.0, rho=0.5, eps=1e-3, weight_decay=0.01)),
    (to.adam, torch.optim.Adam, dict()),
    (to.adam, torch.optim.Adam, dict(lr=0.5)),
    (to.adam, torch.optim.Adam, dict(lr=0.05, amsgrad=True)),
    (to.adam, torch.optim.Adam, dict(lr=0.1, betas=(0.5, 0.9), weight_decay=0.1, eps=1e-4)),
    (to.adam, torch.optim.Adam, dict(lr=1.0, betas=(0.0, 0.99), amsgrad=True, weight_decay=1e-3)),
    (to.adamw, torch.optim.AdamW, dict()),
    (to.adamw, torch.optim.AdamW, dict(lr=0.5, weight_decay=0.1)),
    (to.adamw, torch.optim.AdamW, dict(lr=0.05, weight_decay=0.5, amsgrad=True)),
    (to.nadam, torch.optim.NAdam, dict()),
    (to.nadam, torch.optim.NAdam, dict(lr=0.5, betas=(0.8, 0.99), momentum_decay=0.1)),
    (to.nadam, torch.optim.NAdam, dict(lr=0.05, weight_decay=0.1)),
    (to.nadam, torch.optim.NAdam, dict(lr=0.05, weight_decay=0.1, decoupled_weight_decay=True)),
]


def _ids(case) -> str:
    ours, _, kw = case
    return ours.__name__ + "-" + "-".join(f"{k}={v}" for k, v in kw.items())


@pytest.mark.parametrize("backend", ["fast", "reference"])
@pytest.mark.parametrize("case", CASES, ids=[_ids(c) for c in CASES])
def test_alias_matches_torch(case, backend: str) -> None:
    ours, theirs, kwargs = case
    # torch keeps NAdam's mu_product in the default dtype; float64 makes it a fair oracle.
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        _compare(ours, theirs, kwargs, backend)
    finally:
        torch.set_default_dtype(old)


def _compare(ours, theirs, kwargs: dict, backend: str) -> None:
    model = make_model()
    model_t = copy.deepcopy(model)
    with to.use_backend(backend):
        transform = ours(**kwargs)
    got = run_torch_style(model, to.Optimizer(model.parameters(), transform), STEPS)
    want = run_torch_style(model_t, theirs(model_t.parameters(), **kwargs), STEPS)
    moved = rel_err([p for p in want], [p for p in list(make_model().parameters())[:2]])
    assert moved > 1e-3, "the problem must actually move the parameters"
    assert rel_err(got, want) <= TOL


def test_torch_defaults_match() -> None:
    """Our aliases' defaults are torch.optim's defaults (a step with no arguments agrees)."""
    for ours, theirs in [(to.sgd, torch.optim.SGD), (to.adamw, torch.optim.AdamW)]:
        model = make_model()
        model_t = copy.deepcopy(model)
        got = run_torch_style(model, to.Optimizer(model.parameters(), ours()), 5)
        want = run_torch_style(model_t, theirs(model_t.parameters()), 5)
        assert rel_err(got, want) <= TOL
