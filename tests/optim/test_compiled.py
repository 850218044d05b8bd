"""The compiled whole-list kernels (`trainlab.optim.compiled`) equal the reference, do not
recompile from step to step (the step count and schedules arrive as a tensor), switch on by
themselves for big tensors under the "fast" backend, and fall back to eager if compiling fails."""

from __future__ import annotations

import pytest
import torch

import trainlab.optim as to
from trainlab.optim import compiled, fused

SHAPES = [(3,), (fused.SMALL + 7,), (2, 3), (), (5, 4)]

CASES = {
    "adamw_scheduled": lambda: to.adamw(lambda t: 0.05 / (1 + t), weight_decay=0.1),
    "adam_l2_amsgrad": lambda: to.adam(0.05, weight_decay=0.01, amsgrad=True),
    "sgd_nesterov_l2": lambda: to.sgd(0.05, momentum=0.9, nesterov=True, weight_decay=0.01),
    "sgd_dampened": lambda: to.sgd(lambda t: 0.05 / (1 + t), momentum=0.8, dampening=0.3),
}


def _run(transform: to.Transform, params, grads_seq) -> list[torch.Tensor]:
    ps = [p.clone().requires_grad_() for p in params]
    opt = to.Optimizer(ps, transform)
    for grads in grads_seq:
        for p, g in zip(ps, grads, strict=True):
            p.grad = g.clone()
        opt.step()
    return [p.detach() for p in ps]


def _spy_on_runs(monkeypatch) -> list[bool]:
    """Record what every compiled call returned (False: it fell back to the eager kernels)."""
    results: list[bool] = []
    real = compiled.run

    def spy(name, *args):
        results.append(real(name, *args))
        return results[-1]

    monkeypatch.setattr(compiled, "run", spy)
    return results


@pytest.mark.parametrize("name", sorted(CASES))
def test_compiled_equals_reference_without_recompiles(name: str, monkeypatch) -> None:
    """The compiled pass really ran at every step (no silent fallback to eager), equals the
    reference chain, and compiled once."""
    from torch._dynamo.utils import counters

    results = _spy_on_runs(monkeypatch)

    g = torch.Generator().manual_seed(0)
    params = [torch.randn(s, generator=g, dtype=torch.float64) for s in SHAPES]
    grads_seq = [
        [torch.randn(s, generator=g, dtype=torch.float64) for s in SHAPES] for _ in range(20)
    ]
    with to.use_backend("reference"):
        want = _run(CASES[name](), params, grads_seq)
    with to.use_backend("compiled"):
        transform = CASES[name]()
    warm = _run(transform, params, grads_seq[:2])  # compiles (a few seconds)
    assert len(warm) == len(params)
    graphs = counters["stats"]["unique_graphs"]
    with to.use_backend("compiled"):
        got = _run(CASES[name](), params, grads_seq)
    assert counters["stats"]["unique_graphs"] == graphs, "recompiled after warm-up"
    assert results == [True] * (2 + len(grads_seq)), "torch.compile failed: eager fallback ran"
    assert compiled._broken == []
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-13)


def test_unknown_backend_fails_in_one_line() -> None:
    with pytest.raises(ValueError, match="not one of"), to.use_backend("jit"):
        pass


def _problem(steps: int = 8):
    g = torch.Generator().manual_seed(1)
    params = [torch.randn(s, generator=g, dtype=torch.float64) for s in SHAPES]
    grads_seq = [
        [torch.randn(s, generator=g, dtype=torch.float64) for s in SHAPES] for _ in range(steps)
    ]
    return params, grads_seq


def test_fast_backend_compiles_big_tensors_only_from_auto_min(monkeypatch) -> None:
    calls: list[str] = []
    real = compiled.run

    def spy(name, *args):
        calls.append(name)
        return real(name, *args)

    monkeypatch.setattr(compiled, "run", spy)
    params, grads_seq = _problem()
    _run(to.adamw(0.05), params, grads_seq)
    assert calls == [], "compiled below AUTO_MIN"
    monkeypatch.setattr(compiled, "AUTO_MIN", fused.SMALL)
    with to.use_backend("reference"):
        want = _run(to.adamw(0.05), params, grads_seq)
    got = _run(to.adamw(0.05), params, grads_seq)
    assert calls == ["adam"] * len(grads_seq)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-13)


def test_compile_failure_warns_once_and_falls_back_to_eager(monkeypatch) -> None:
    def broken(name, fn):
        raise RuntimeError("no C++ compiler\nlong log")

    monkeypatch.setattr(compiled, "_get", broken)
    monkeypatch.setattr(compiled, "_broken", [])
    params, grads_seq = _problem()
    with to.use_backend("reference"):
        want = _run(to.sgd(0.05, momentum=0.9), params, grads_seq)
    with to.use_backend("compiled"):
        t = to.sgd(0.05, momentum=0.9)
    with pytest.warns(RuntimeWarning, match="no C\\+\\+ compiler\\); using the eager"):
        got = _run(t, params, grads_seq)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-13)
