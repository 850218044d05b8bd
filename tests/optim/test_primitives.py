"""Weight decay placement, clipping, averaging, Lookahead, natural gradient, masking."""

from __future__ import annotations

import copy

import pytest
import torch
from optim_problems import functional_run, quadratic_grad_fn, rel_err

import trainlab.optim as to


def test_l2_equals_decoupled_decay_under_sgd_and_differs_under_adam() -> None:
    """Seed 000 "L2 Regularization vs Weight Decay": L = L_data + lam*|w|^2 gives the gradient
    term 2*lam*w, so add_l2(2*lam) before the optimizer == add_decayed_weights(2*lam) after it
    for SGD (and torch's SGD(weight_decay=2*lam)); for Adam the two trajectories differ."""
    lam, lr = 0.05, 0.1
    params, grad_fn = quadratic_grad_fn()

    def with_seed_l2(ps):  # gradient of L_data + lam*|w|^2, written out
        return [g + 2 * lam * p for g, p in zip(grad_fn(ps), ps, strict=True)]

    l2 = functional_run(to.sgd(lr), params, with_seed_l2, 80)
    coupled = functional_run(to.chain(to.add_l2(2 * lam), to.scale_by_lr(lr)), params, grad_fn, 80)
    decoupled = functional_run(
        to.chain(to.add_decayed_weights(2 * lam), to.scale_by_lr(lr)), params, grad_fn, 80
    )
    assert rel_err(coupled, l2) <= 1e-13
    assert rel_err(decoupled, l2) <= 1e-13

    adam_l2 = functional_run(
        to.chain(to.add_l2(2 * lam), to.scale_by_adam(), to.scale_by_lr(lr)), params, grad_fn, 80
    )
    adamw = functional_run(
        to.chain(to.scale_by_adam(), to.add_decayed_weights(2 * lam), to.scale_by_lr(lr)),
        params,
        grad_fn,
        80,
    )
    assert rel_err(adam_l2, adamw) > 1e-2


def test_l1_adds_sign() -> None:
    p = [torch.tensor([-2.0, 0.0, 3.0], dtype=torch.float64)]
    g = [torch.zeros(3, dtype=torch.float64)]
    t = to.add_l1(0.5)
    u, _ = t.update(g, t.init(p), p)
    torch.testing.assert_close(u[0], torch.tensor([-0.5, 0.0, 0.5], dtype=torch.float64))


@pytest.mark.parametrize("max_norm", [0.1, 1.0, 100.0])
def test_clip_by_global_norm_matches_torch(max_norm: float) -> None:
    g = torch.Generator().manual_seed(0)
    grads = [torch.randn(s, generator=g, dtype=torch.float64) for s in [(3, 4), (5,), ()]]
    params = [torch.zeros_like(x, requires_grad=True) for x in grads]
    for p, x in zip(params, grads, strict=True):
        p.grad = x.clone()
    torch.nn.utils.clip_grad_norm_(params, max_norm)
    for backend in to.transform.BACKENDS:
        with to.use_backend(backend):
            t = to.clip_by_global_norm(max_norm)
        out, _ = t.update(grads, t.init(grads), grads)
        for a, p in zip(out, params, strict=True):
            torch.testing.assert_close(a, p.grad, rtol=1e-14, atol=0)


def test_clip_by_value() -> None:
    x = [torch.tensor([-3.0, 0.2, 5.0])]
    t = to.clip(1.0)
    out, _ = t.update(x, t.init(x), x)
    torch.testing.assert_close(out[0], torch.tensor([-1.0, 0.2, 1.0]))


def test_ema_matches_averaged_model_and_seed_formula() -> None:
    """Seed 000: x_test = 0.995*x_test + 0.005*x, with x_test starting at x_0; matches
    torch.optim.swa_utils.AveragedModel with an EMA avg_fn updated before and after each step."""
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2).double()
    averaged = torch.optim.swa_utils.AveragedModel(
        model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(0.995)
    )
    averaged.update_parameters(model)  # copies x_0
    opt = to.Optimizer(model.parameters(), to.chain(to.sgd(0.1), to.ema_weights(0.995)))
    x = torch.randn(16, 3, dtype=torch.float64)
    hand = [p.detach().clone() for p in model.parameters()]
    for _ in range(50):
        opt.zero_grad()
        model(x).pow(2).mean().backward()
        opt.step()
        averaged.update_parameters(model)
        hand = [
            0.995 * h + 0.005 * p.detach() for h, p in zip(hand, model.parameters(), strict=True)
        ]
    ours = to.averaged_params(opt.transform_state())
    theirs = list(averaged.module.parameters())
    assert rel_err(ours, [t.detach() for t in theirs]) <= 1e-12
    assert rel_err(ours, hand) <= 1e-12
    assert rel_err(ours, [p.detach() for p in model.parameters()]) > 1e-3


def test_swapped_weights_restores() -> None:
    model = torch.nn.Linear(2, 1)
    before = [p.detach().clone() for p in model.parameters()]
    zeros = [torch.zeros_like(p) for p in model.parameters()]
    with pytest.raises(RuntimeError), to.swapped_weights(list(model.parameters()), zeros):
        assert all(float(p.detach().abs().sum()) == 0 for p in model.parameters())
        raise RuntimeError("evaluation failed")
    for p, b in zip(model.parameters(), before, strict=True):
        torch.testing.assert_close(p.detach(), b)


def test_polyak_is_running_mean_of_iterates() -> None:
    params, grad_fn = quadratic_grad_fn()
    t = to.chain(to.sgd(0.1), to.polyak_weights())
    ps, state, iterates = [p.clone() for p in params], t.init(params), [params]
    for _ in range(10):
        u, state = t.update(grad_fn(ps), state, ps)
        ps = [p + x for p, x in zip(ps, u, strict=True)]
        iterates.append(ps)
    mean = [torch.stack([it[i] for it in iterates]).mean(0) for i in range(len(ps))]
    assert rel_err(to.averaged_params(state), mean) <= 1e-13


def test_lookahead_matches_hand_computation_on_quadratic() -> None:
    """Zhang et al. 2019, Alg. 1: k inner SGD steps from phi, then phi += alpha*(theta - phi)."""
    params, grad_fn = quadratic_grad_fn()
    k, alpha, lr = 3, 0.5, 0.1
    got = functional_run(to.lookahead(to.sgd(lr), k=k, alpha=alpha), params, grad_fn, 4 * k + 1)
    phi = [p.clone() for p in params]
    theta = [p.clone() for p in params]
    for _ in range(4):
        for _ in range(k):
            theta = [t - lr * g for t, g in zip(theta, grad_fn(theta), strict=True)]
        phi = [f + alpha * (t - f) for f, t in zip(phi, theta, strict=True)]
        theta = [f.clone() for f in phi]
    theta = [t - lr * g for t, g in zip(theta, grad_fn(theta), strict=True)]  # one more fast step
    assert rel_err(got, theta) <= 1e-13


def test_natural_gradient_matches_hand_fisher_solve() -> None:
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2).double()
    x, y = torch.randn(8, 3, dtype=torch.float64), torch.randn(8, 2, dtype=torch.float64)
    loss_fn = torch.nn.functional.mse_loss
    per_ex = to.per_example_grads(model, loss_fn, x, y)
    # Hand assembly: per-example gradients by a Python loop over examples.
    rows = []
    for i in range(8):
        model.zero_grad()
        loss_fn(model(x[i : i + 1]), y[i : i + 1]).backward()
        rows.append(torch.cat([p.grad.reshape(-1) for p in model.parameters()]))
    jac = torch.stack(rows)
    fisher = jac.T @ jac / 8 + 0.01 * torch.eye(jac.shape[1], dtype=torch.float64)
    want = -0.5 * torch.linalg.solve(fisher, jac.mean(0))
    params = [p.detach() for p in model.parameters()]
    t = to.natural_gradient(lr=0.5, damping=0.01)
    updates, _ = t.update(per_ex, t.init(params), params)
    torch.testing.assert_close(torch.cat([u.reshape(-1) for u in updates]), want)


def test_natural_gradient_size_limit_error() -> None:
    big = [torch.zeros(100, 100)]
    with pytest.raises(ValueError, match=r"^natural_gradient: model has 10000 parameters, above"):
        to.natural_gradient(max_params=4096).init(big)


def test_masked_skips_masked_params_and_decay_mask() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.LayerNorm(4), torch.nn.Linear(4, 1))
    mask = to.decay_mask(model.named_parameters())
    assert mask == [True, False, False, False, True, False]
    params = [p.detach().clone() for p in model.parameters()]
    grads = [torch.zeros_like(p) for p in params]
    t = to.chain(to.masked(to.add_decayed_weights(0.5), mask), to.scale_by_lr(1.0))
    updates, _ = t.update(grads, t.init(params), params)
    for u, p, m in zip(updates, params, mask, strict=True):
        torch.testing.assert_close(u, -0.5 * p if m else torch.zeros_like(p))


def test_masked_state_covers_only_selected() -> None:
    params = [torch.ones(2), torch.ones(3)]
    t = to.masked(to.scale_by_adam(), [False, True])
    state = t.init(params)
    assert [m.shape for m in state.inner.mu] == [torch.Size([3])]
    model = copy.deepcopy(torch.nn.Linear(2, 2))
    assert to.decay_mask(model.named_parameters()) == [True, False]
