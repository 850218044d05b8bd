"""The bucketed in-place fast path (`trainlab.optim.fused`) of sgd / adam / adamw: big and small
tensors, unpacked states, checkpoints, channels_last, and the adapter's in-place step."""

from __future__ import annotations

import pytest
import torch

import trainlab.optim as to
from trainlab.optim import fused

# One tensor above fused.SMALL (its own bucket), small ones packed around it, and a 0-dim one.
SHAPES = [(3,), (fused.SMALL + 7,), (2, 3), (), (4, 1, 2), (5, 4)]

ALIASES = {
    "sgd": lambda: to.sgd(0.05, momentum=0.9, dampening=0.1, weight_decay=0.01),
    "sgd_nesterov": lambda: to.sgd(0.05, momentum=0.9, nesterov=True, weight_decay=0.01),
    "sgd_nesterov_plain": lambda: to.sgd(0.05, momentum=0.8, nesterov=True),
    "adam": lambda: to.adam(0.05, weight_decay=0.01, amsgrad=True),
    "adamw": lambda: to.adamw(lambda t: 0.05 / (1 + t), weight_decay=0.1),
}


def _problem(seed: int = 0, shapes=SHAPES, steps: int = 6):
    g = torch.Generator().manual_seed(seed)
    params = [torch.randn(s, generator=g, dtype=torch.float64) for s in shapes]
    grads = [
        [torch.randn(s, generator=g, dtype=torch.float64) for s in shapes] for _ in range(steps)
    ]
    return params, grads


def _reference(name: str, params, grads_seq):
    with to.use_backend("reference"):
        t = ALIASES[name]()
    ps, state = [p.clone() for p in params], t.init(params)
    for grads in grads_seq:
        updates, state = t.update(grads, state, ps)
        ps = [p + u for p, u in zip(ps, updates, strict=True)]
    return ps


def _adapter_run(opt: to.Optimizer, ps, grads_seq) -> None:
    for grads in grads_seq:
        for p, g in zip(ps, grads, strict=True):
            p.grad = g.clone()
        opt.step()


@pytest.mark.parametrize("name", sorted(ALIASES))
def test_inplace_step_on_mixed_buckets_equals_reference(name: str) -> None:
    params, grads_seq = _problem()
    want = _reference(name, params, grads_seq)
    ps = [p.clone().requires_grad_() for p in params]
    opt = to.Optimizer(ps, ALIASES[name]())
    _adapter_run(opt, ps, grads_seq)
    for a, b in zip(ps, want, strict=True):
        torch.testing.assert_close(a.detach(), b, rtol=1e-12, atol=1e-13)


def test_fast_init_packs_small_tensors_and_keeps_big_ones_alone() -> None:
    params, _ = _problem()
    state = to.adam().init(params)
    mu = state[0].mu
    assert [p.shape for p in mu] == [p.shape for p in params]
    assert fused.bucket_runs(params) == [(0, 1), (1, 2), (2, 6)]
    assert mu[2]._base is mu[5]._base is not None  # one flat buffer for the small run
    assert all(not float(m.abs().sum()) for m in mu)


@pytest.mark.parametrize("name", ["adam", "sgd_nesterov"])
def test_unpacked_state_falls_back_per_tensor(name: str) -> None:
    """A state built by the reference backend (separate tensors) runs on the fast update."""
    params, grads_seq = _problem(1)
    want = _reference(name, params, grads_seq)
    with to.use_backend("reference"):
        state = ALIASES[name]().init(params)
    fast = ALIASES[name]()
    ps = [p.clone() for p in params]
    for grads in grads_seq:
        updates, state = fast.update(grads, state, ps)
        ps = [p + u for p, u in zip(ps, updates, strict=True)]
    for a, b in zip(ps, want, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("name", ["adamw", "sgd"])
def test_checkpoint_keeps_packing_and_trajectory(name: str) -> None:
    params, grads_seq = _problem(2, steps=8)
    want = _reference(name, params, grads_seq)
    ps = [p.clone().requires_grad_() for p in params]
    opt = to.Optimizer(ps, ALIASES[name]())
    _adapter_run(opt, ps, grads_seq[:4])
    saved = opt.state_dict()
    ps2 = [p.detach().clone().requires_grad_() for p in ps]
    opt2 = to.Optimizer(ps2, ALIASES[name]())
    opt2.load_state_dict(saved)
    packed = [t for s in opt2.transform_state() for t in getattr(s, "mu", getattr(s, "trace", []))]
    assert packed[2]._base is not None and packed[2]._base is packed[5]._base
    _adapter_run(opt2, ps2, grads_seq[4:])
    for a, b in zip(ps2, want, strict=True):
        torch.testing.assert_close(a.detach(), b, rtol=1e-12, atol=1e-13)


def test_channels_last_and_float32() -> None:
    """Layouts other than contiguous and float32 lists agree with torch.optim.AdamW."""
    g = torch.Generator().manual_seed(3)
    shapes = [(8, 3, 3, 3), (8,), (300, 16, 3, 3)]
    base = [torch.randn(s, generator=g) for s in shapes]
    grads_seq = [[torch.randn(s, generator=g) for s in shapes] for _ in range(5)]
    runs = []
    for make in (
        lambda ps: to.Optimizer(ps, to.adamw(0.01, weight_decay=0.1)),
        lambda ps: torch.optim.AdamW(ps, 0.01, weight_decay=0.1, foreach=False),
    ):
        ps = [
            (p.to(memory_format=torch.channels_last) if p.ndim == 4 else p.clone())
            .detach()
            .requires_grad_()
            for p in base
        ]
        opt = make(ps)
        for grads in grads_seq:
            for p, gr in zip(ps, grads, strict=True):
                p.grad = gr.to(memory_format=torch.channels_last) if gr.ndim == 4 else gr
            opt.step()
        runs.append(ps)
    for a, b in zip(*runs, strict=True):
        torch.testing.assert_close(a.detach(), b.detach(), rtol=1e-6, atol=1e-7)


def _conv_model(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1, bias=False),
        torch.nn.BatchNorm2d(8),
        torch.nn.ReLU(),
        torch.nn.Conv2d(8, 8, 3, padding=1),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(8, 4),
    ).double()
    return model.to(memory_format=torch.channels_last)


def _train(model: torch.nn.Module, opt: torch.optim.Optimizer, steps: int = 6) -> None:
    g = torch.Generator().manual_seed(5)
    for _ in range(steps):
        x = torch.randn(6, 3, 5, 5, generator=g, dtype=torch.float64)
        y = torch.randint(0, 4, (6,), generator=g)
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()


def test_home_params_moves_small_params_into_one_buffer_keeping_values_and_layout() -> None:
    model, twin = _conv_model(0), _conv_model(0)
    params = list(model.parameters())
    before = [(p.detach().clone(), p.stride()) for p in params]
    fused.home_params(params)
    bases = {p.untyped_storage().data_ptr() for p in params}
    assert len(bases) == 1  # all small: one bucket, one buffer
    for p, (value, stride) in zip(params, before, strict=True):
        assert torch.equal(p.detach(), value) and p.stride() == stride
    x = torch.randn(2, 3, 5, 5, dtype=torch.float64)
    torch.testing.assert_close(model(x), twin(x), rtol=0, atol=0)


@pytest.mark.parametrize("name", ["sgd_nesterov", "sgd", "adamw", "adam"])
def test_flat_params_train_like_separate_params(name: str) -> None:
    """The one-op step over homed parameters follows the per-tensor step (channels_last conv
    weights, BatchNorm and Linear parameters; real backward passes)."""
    runs = []
    for flat in (True, False):
        model = _conv_model(1)
        opt = to.Optimizer(model.parameters(), ALIASES[name](), flat_params=flat)
        homed = len({p.untyped_storage().data_ptr() for p in model.parameters()}) == 1
        assert homed == flat
        _train(model, opt)
        runs.append([p.detach() for p in model.parameters()])
    for a, b in zip(*runs, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


def test_params_moved_after_construction_still_step_correctly() -> None:
    """Moving parameters out of the flat buffer (as ``model.to(...)`` would) falls back to the
    per-tensor ops with the same result."""
    runs = []
    for move in (True, False):
        model = _conv_model(2)
        opt = to.Optimizer(model.parameters(), ALIASES["adamw"](), flat_params=True)
        _train(model, opt, steps=2)
        if move:
            for p in model.parameters():
                p.data = p.data.clone(memory_format=torch.contiguous_format)
        _train(model, opt, steps=3)
        runs.append([p.detach() for p in model.parameters()])
    for a, b in zip(*runs, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)
