"""The fast (foreach, in place) path of every primitive and alias equals the reference path."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from optim_problems import functional_run, quadratic_grad_fn, rel_err

import trainlab.optim as to

FACTORIES = {
    "scale": lambda: to.scale(lambda t: 0.5 / (1 + t)),
    "scale_by_lr": lambda: to.scale_by_lr(0.1),
    "scale_by_lr_schedule": lambda: to.scale_by_lr(lambda t: 0.1 * 0.99**t),
    "trace": lambda: to.chain(to.trace(0.9, dampening=0.2), to.scale_by_lr(0.05)),
    "trace_nesterov": lambda: to.chain(to.trace(0.9, nesterov=True), to.scale_by_lr(0.05)),
    "adagrad": lambda: to.chain(to.scale_by_adagrad(lr_decay=0.01, eps_root=1e-3), to.scale(-0.3)),
    "rms": lambda: to.chain(to.scale_by_rms(0.9), to.scale_by_lr(0.01)),
    "rms_centered": lambda: to.chain(to.scale_by_rms(0.9, centered=True), to.scale_by_lr(0.01)),
    "adadelta": lambda: to.chain(to.scale_by_adadelta(0.9), to.scale_by_lr(1.0)),
    "adam": lambda: to.chain(to.scale_by_adam(), to.scale_by_lr(0.05)),
    "adam_eps_root": lambda: to.chain(to.scale_by_adam(eps_root=1e-8), to.scale_by_lr(0.05)),
    "adam_nobc_ams": lambda: to.chain(
        to.scale_by_adam(bias_correction=False, amsgrad=True), to.scale_by_lr(0.05)
    ),
    "nadam": lambda: to.chain(to.scale_by_nadam(), to.scale_by_lr(0.05)),
    "l2": lambda: to.chain(to.add_l2(0.1), to.scale_by_lr(0.05)),
    "l1": lambda: to.chain(to.add_l1(0.1), to.scale_by_lr(0.05)),
    "decoupled": lambda: to.chain(
        to.scale_by_adam(), to.add_decayed_weights(0.1), to.scale_by_lr(0.05)
    ),
    "clip": lambda: to.chain(to.clip(0.3), to.scale_by_lr(0.1)),
    "clip_norm": lambda: to.chain(to.clip_by_global_norm(0.5), to.scale_by_lr(0.1)),
    "ema": lambda: to.chain(to.scale_by_lr(0.1), to.ema_weights(0.9)),
    "polyak": lambda: to.chain(to.scale_by_lr(0.1), to.polyak_weights()),
    "sgd": lambda: to.sgd(0.05, momentum=0.9, weight_decay=0.01),
    "sgd_nesterov": lambda: to.sgd(0.05, momentum=0.9, nesterov=True),
    "sgd_plain": lambda: to.sgd(0.05),
    "adam_alias": lambda: to.adam(0.05, weight_decay=0.01, amsgrad=True),
    "adamw_alias": lambda: to.adamw(lambda t: 0.05 / (1 + t), weight_decay=0.1),
}


def _both(name: str) -> tuple[to.Transform, to.Transform]:
    with to.use_backend("reference"):
        ref = FACTORIES[name]()
    with to.use_backend("fast"):
        fast = FACTORIES[name]()
    return ref, fast


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_fast_equals_reference(name: str) -> None:
    ref, fast = _both(name)
    params, grad_fn = quadratic_grad_fn()
    want = functional_run(ref, params, grad_fn, 60)
    got = functional_run(fast, params, grad_fn, 60)
    assert rel_err(got, want) <= 1e-12
    assert rel_err(want, params) > 1e-4


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_fast_and_reference_states_have_same_structure(name: str) -> None:
    ref, fast = _both(name)
    params, grad_fn = quadratic_grad_fn()
    s_ref, s_fast = ref.init(params), fast.init(params)
    _, s_ref = ref.update(grad_fn(params), s_ref, params)
    _, s_fast = fast.update(grad_fn(params), s_fast, params)
    # A checkpoint of one path loads into the other.
    rebuilt = to.state_from_plain(ref.init(params), to.state_to_plain(s_fast))
    flat_a = [t for t in _tensors(rebuilt)]
    flat_b = [t for t in _tensors(s_ref)]
    assert len(flat_a) == len(flat_b)
    for a, b in zip(flat_a, flat_b, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def _tensors(state):
    if isinstance(state, torch.Tensor):
        yield state
    elif isinstance(state, tuple | list):
        for s in state:
            yield from _tensors(s)


@settings(max_examples=25, deadline=None)
@given(
    shapes=st.lists(
        st.lists(st.integers(1, 4), min_size=0, max_size=3).map(tuple), min_size=1, max_size=4
    ),
    seed=st.integers(0, 2**16),
    name=st.sampled_from(["adam_alias", "adamw_alias", "sgd", "sgd_nesterov", "rms_centered"]),
)
def test_fast_equals_reference_any_shapes(shapes, seed: int, name: str) -> None:
    """Property: for any list of shapes (incl. scalars), both paths agree and keep shapes."""
    g = torch.Generator().manual_seed(seed)
    params = [torch.randn(s, generator=g, dtype=torch.float64) for s in shapes]
    grads_seq = [
        [torch.randn(s, generator=g, dtype=torch.float64) for s in shapes] for _ in range(5)
    ]
    ref, fast = _both(name)
    outs = []
    for t in (ref, fast):
        ps, state = [p.clone() for p in params], t.init(params)
        for grads in grads_seq:
            updates, state = t.update(grads, state, ps)
            assert [u.shape for u in updates] == [p.shape for p in ps]
            ps = [p + u for p, u in zip(ps, updates, strict=True)]
        outs.append(ps)
    for a, b in zip(outs[0], outs[1], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-13)
