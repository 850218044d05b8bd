"""Backend "compiled" (torch.compile of the adam/adamw elementwise math) equals the reference,
and does not recompile from step to step (the step count and schedules arrive as a tensor)."""

from __future__ import annotations

import pytest
import torch

import trainlab.optim as to
from trainlab.optim import fused

SHAPES = [(3,), (fused.SMALL + 7,), (2, 3), (), (5, 4)]

CASES = {
    "adamw_scheduled": lambda: to.adamw(lambda t: 0.05 / (1 + t), weight_decay=0.1),
    "adam_l2_amsgrad": lambda: to.adam(0.05, weight_decay=0.01, amsgrad=True),
}


def _run(transform: to.Transform, params, grads_seq) -> list[torch.Tensor]:
    ps = [p.clone().requires_grad_() for p in params]
    opt = to.Optimizer(ps, transform)
    for grads in grads_seq:
        for p, g in zip(ps, grads, strict=True):
            p.grad = g.clone()
        opt.step()
    return [p.detach() for p in ps]


@pytest.mark.parametrize("name", sorted(CASES))
def test_compiled_equals_reference_without_recompiles(name: str) -> None:
    from torch._dynamo.utils import counters

    g = torch.Generator().manual_seed(0)
    params = [torch.randn(s, generator=g, dtype=torch.float64) for s in SHAPES]
    grads_seq = [
        [torch.randn(s, generator=g, dtype=torch.float64) for s in SHAPES] for _ in range(20)
    ]
    with to.use_backend("reference"):
        want = _run(CASES[name](), params, grads_seq)
    with to.use_backend("compiled"):
        compiled = CASES[name]()
    warm = _run(compiled, params, grads_seq[:2])  # compiles (a few seconds)
    assert len(warm) == len(params)
    graphs = counters["stats"]["unique_graphs"]
    with to.use_backend("compiled"):
        got = _run(CASES[name](), params, grads_seq)
    assert counters["stats"]["unique_graphs"] == graphs, "recompiled after warm-up"
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-13)


def test_unknown_backend_fails_in_one_line() -> None:
    with pytest.raises(ValueError, match="not one of"), to.use_backend("jit"):
        pass
