"""SAM and its policies against updates computed by hand from the papers' equations (float64).

The problem is the quadratic L(w) = 1/2 w^T A w - b^T w (gradient A w - b), its 5 coordinates
split over two parameter tensors so that norms run over all parameters together. The hand
references below use plain tensor math on the whole vector and share no code with the
implementation.
"""

from __future__ import annotations

import copy
import io
import socket

import pytest
import torch
from torch import Tensor

from trainlab.optim.aliases import adamw, sgd
from trainlab.optim.sam_policies import (
    AdaptiveState,
    adaptive_policy,
    ao_sam_policy,
    asam_policy,
    eg_sam_policy,
    get_policy,
    og_sam_policy,
    sam_policy,
)
from trainlab.optim.sharpness import SAM, bn_frozen
from trainlab.optim.transform import Transform

F64 = torch.float64
SPLIT = 3  # params: w[:3] and w[3:]


def quadratic(seed: int = 0, n: int = 5) -> tuple[Tensor, Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    m = torch.randn(n, n, generator=g, dtype=F64)
    a = m @ m.T / n + 0.5 * torch.eye(n, dtype=F64)
    a = (a + a.T) / 2
    return a, torch.randn(n, generator=g, dtype=F64), torch.randn(n, generator=g, dtype=F64)


A, B, W0 = quadratic()


def grad(w: Tensor, s: float = 1.0) -> Tensor:
    """Gradient of s * L at w, by hand."""
    return s * (A @ w - B)


def rel(a: Tensor, b: Tensor) -> float:
    return float((a - b).norm() / b.norm())


class Run:
    """SAM on the quadratic; ``scales[t]`` multiplies the loss at step t (both passes)."""

    def __init__(self, base, policy, **kwargs) -> None:
        self.p = [W0[:SPLIT].clone().requires_grad_(), W0[SPLIT:].clone().requires_grad_()]
        params = self.p if isinstance(base, Transform) else None
        base = base if isinstance(base, Transform) else base(self.p)  # a torch.optim factory
        self.opt = SAM(params, base, policy, **kwargs)
        self.calls: list[int] = []  # step index of every closure call
        self.two_pass: list[bool] = []

    def closure_for(self, t: int, s: float, scaler=None, bad_call: int | None = None):
        def closure() -> Tensor:
            self.calls.append(t)
            w = torch.cat(self.p)
            loss = s * (0.5 * w @ A @ w - B @ w)
            if bad_call is not None and len(self.calls) == bad_call:
                loss = loss * float("inf")
            (loss if scaler is None else scaler.scale(loss)).backward()
            return loss

        return closure

    def steps(self, n: int, scales: list[float] | None = None, **kw) -> Tensor:
        for t in range(n):
            self.opt.step(self.closure_for(t, 1.0 if scales is None else scales[t], **kw))
            self.two_pass.append(self.opt.last_two_pass)
        return self.w

    @property
    def w(self) -> Tensor:
        return torch.cat(self.p).detach().clone()


# ---------------------------------------------------------------- hand references


def hand_sam(steps: int, lr: float, rho: float, momentum: float = 0.0) -> Tensor:
    """Foret et al.: e = rho g/||g||; g^ = grad(w + e); torch-style SGD momentum on g^."""
    w, v = W0.clone(), None
    for _ in range(steps):
        g = grad(w)
        gh = grad(w + rho * g / g.norm())
        v = gh if v is None else momentum * v + gh
        w = w - lr * (v if momentum else gh)
    return w


def hand_asam(steps: int, lr: float, rho: float, eta: float, mask: Tensor) -> Tensor:
    """Kwon et al.: T = |w| + eta (1 where mask is 0); e = rho T^2 g / ||T g||."""
    w = W0.clone()
    for _ in range(steps):
        g = grad(w)
        t = torch.where(mask, w.abs() + eta, torch.ones_like(w))
        e = rho * t * t * g / (t * g).norm()
        w = w - lr * grad(w + e)
    return w


def hand_eg(steps: int, lrs: list[float], rho: float, eta: list[float]) -> Tensor:
    """EG-SAM: w~ = w + (rho/||g|| - eta) g; w <- w - lr grad(w~)."""
    w = W0.clone()
    for t in range(steps):
        g = grad(w)
        w = w - lrs[t] * grad(w + (rho / g.norm() - eta[t]) * g)
    return w


def hand_og(steps: int, lr: float, rho: float, eta: float) -> Tensor:
    """OG-SAM: w~ = w + rho g/||g|| - eta g^_prev (g^_prev = g at step 0); g^ = grad(w~)."""
    w, prev = W0.clone(), None
    for _ in range(steps):
        g = grad(w)
        look = g if prev is None else prev
        prev = grad(w + rho * g / g.norm() - eta * look)
        w = w - lr * prev
    return w


def hand_ao(
    scales: list[float], lr: float, rho: float, eta: float, c: float, decay: float
) -> tuple[Tensor, list[bool]]:
    """AO-SAM: OG-SAM when ||g||^2 > mu + c sigma of past values (EMA), else w -= lr g."""
    w, prev, mu, var, runs = W0.clone(), None, 0.0, 0.0, []
    for t, s in enumerate(scales):
        g = grad(w, s)
        x = float(g @ g)
        if t == 0:
            run, mu, var = True, x, 0.0
        else:
            run = x > mu + c * var**0.5
            mu = decay * mu + (1 - decay) * x
            var = decay * var + (1 - decay) * (x - mu) ** 2
        if run:
            look = g if prev is None else prev
            prev = grad(w + rho * g / g.norm() - eta * look, s)
        else:
            prev = g
        w = w - lr * prev
        runs.append(run)
    return w, runs


# ---------------------------------------------------------------- policies vs hand


@pytest.mark.parametrize("rho", [0.05, 0.5])
def test_sam_over_sgd_matches_hand(rho: float) -> None:
    run = Run(sgd(0.1), sam_policy(rho))
    assert rel(run.steps(8), hand_sam(8, 0.1, rho)) <= 1e-12
    assert rel(run.w, hand_sam(8, 0.1, 0.0)) > 1e-3  # the perturbation matters here
    assert run.calls == [t for t in range(8) for _ in range(2)]


def test_sam_over_sgd_momentum_and_over_torch_sgd_match_hand() -> None:
    want = hand_sam(8, 0.05, 0.1, momentum=0.9)
    ours = Run(sgd(0.05, momentum=0.9), sam_policy(0.1)).steps(8)
    theirs = Run(lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9), sam_policy(0.1))
    assert rel(ours, want) <= 1e-12
    assert rel(theirs.steps(8), want) <= 1e-12


def test_default_policy_is_sam_rho_005() -> None:
    assert rel(Run(sgd(0.1), None).steps(5), hand_sam(5, 0.1, 0.05)) <= 1e-12


@pytest.mark.parametrize("masked", [False, True])
def test_asam_matches_hand(masked: bool) -> None:
    flags = [True, not masked]  # masked: the second tensor gets T = 1 (ASAM's code for biases)
    mask = torch.tensor([flags[0]] * SPLIT + [flags[1]] * (5 - SPLIT))
    run = Run(sgd(0.1), asam_policy(rho=0.5, eta=0.01, mask=flags if masked else None))
    want = hand_asam(8, 0.1, 0.5, 0.01, mask)
    assert rel(run.steps(8), want) <= 1e-12
    assert rel(want, hand_sam(8, 0.1, 0.5)) > 1e-4


def test_eg_sam_matches_hand_with_explicit_eta() -> None:
    run = Run(sgd(0.1), eg_sam_policy(rho=0.2, eta=0.3))
    want = hand_eg(8, [0.1] * 8, 0.2, [0.3] * 8)
    assert rel(run.steps(8), want) <= 1e-12
    assert rel(want, hand_sam(8, 0.1, 0.2)) > 1e-4


def test_eg_sam_eta_none_follows_the_base_lr_under_a_torch_scheduler() -> None:
    run = Run(sgd(0.2), eg_sam_policy(rho=0.1))
    sched = torch.optim.lr_scheduler.StepLR(run.opt, step_size=2, gamma=0.5)
    lrs = [0.2 * 0.5 ** (t // 2) for t in range(7)]
    for t in range(7):
        run.opt.step(run.closure_for(t, 1.0))
        sched.step()
    assert rel(run.w, hand_eg(7, lrs, 0.1, lrs)) <= 1e-12


def test_og_sam_matches_hand_and_step_zero_is_an_eg_step() -> None:
    run = Run(sgd(0.1), og_sam_policy(rho=0.2, eta=0.3))
    first = run.steps(1)
    assert rel(first, hand_eg(1, [0.1], 0.2, [0.3])) <= 1e-12  # step 0 uses g_0
    run.steps(7)
    want = hand_og(8, 0.1, 0.2, 0.3)
    assert rel(run.w, want) <= 1e-12
    assert rel(want, hand_eg(8, [0.1] * 8, 0.2, [0.3] * 8)) > 1e-4  # OG differs from EG later
    assert int(run.opt.policy_state().count) == 8


def test_ao_sam_switches_between_og_sam_and_plain_steps() -> None:
    # The loss scale jumps up and down, so ||g||^2 crosses its running mean both ways.
    scales = [1.0, 1.0, 4.0, 0.3, 0.3, 5.0, 0.2, 6.0, 1.0, 0.1]
    want, runs = hand_ao(scales, 0.05, 0.2, 0.1, c=0.5, decay=0.8)
    assert True in runs[1:] and False in runs  # both branches are exercised
    run = Run(sgd(0.05), ao_sam_policy(rho=0.2, eta=0.1, c=0.5, decay=0.8))
    assert rel(run.steps(len(scales), scales), want) <= 1e-12
    assert run.two_pass == runs
    assert len(run.calls) == len(scales) + sum(runs)  # skipped steps call the closure once
    state: AdaptiveState = run.opt.policy_state()
    assert int(state.applied) == sum(runs) and int(state.count) == len(scales)


def test_adaptive_gate_over_plain_sam_is_ae_sam() -> None:
    scales = [1.0, 3.0, 0.5, 4.0, 0.2]
    run = Run(sgd(0.05), adaptive_policy(sam_policy(0.2), c=0.0, decay=0.9))
    run.steps(len(scales), scales)
    # by hand: steps 0, 1, 3 are above the running mean of the past ||g||^2
    assert run.two_pass == [True, True, False, True, False]


# ---------------------------------------------------------------- wrapper behaviour


def test_step_without_closure_fails_at_once_in_one_line() -> None:
    run = Run(sgd(0.1), sam_policy())
    with pytest.raises(ValueError, match=r"^SAM\.step: closure is required [^\n]*got None$"):
        run.opt.step()
    assert rel(run.w, W0) == 0.0


def test_bad_policy_arguments_fail_in_one_line() -> None:
    with pytest.raises(ValueError, match=r"^sam_policy: rho=-0\.1 is outside the valid range"):
        sam_policy(-0.1)
    with pytest.raises(ValueError, match=r"^adaptive_policy: decay=1\.0 is outside"):
        ao_sam_policy(decay=1.0)
    with pytest.raises(
        ValueError, match=r"unknown SAM policy .* \(did you mean 'og-sam'\?\); valid: "
    ):
        get_policy("og_sam")
    with pytest.raises(ValueError, match=r"^SAM policy 'sam': unknown argument 'eta'; accepted"):
        get_policy("sam", eta=0.1)
    assert get_policy("eg-sam", rho=0.1).sync_first is False
    with pytest.raises(ValueError, match=r"^eg_sam_policy: eta=None uses the base"):
        p = [torch.zeros(2, requires_grad=True)]
        opt = SAM(None, torch.optim.SGD(p, lr=0.1), eg_sam_policy())
        del opt.param_groups[0]["lr"]
        opt.step(lambda: (p[0] - 1).pow(2).sum().backward())


def test_sam_over_adamw_uses_the_perturbed_gradient() -> None:
    run = Run(adamw(0.05, weight_decay=0.1), sam_policy(0.3))
    w = W0.clone().requires_grad_()
    oracle = torch.optim.AdamW([w], lr=0.05, weight_decay=0.1)
    for _ in range(10):
        with torch.no_grad():
            g = grad(w)
            w.grad = grad(w + 0.3 * g / g.norm())
        oracle.step()
    assert rel(run.steps(10), w.detach()) <= 1e-12


def _roundtrip(sd: dict) -> dict:
    buf = io.BytesIO()
    torch.save(sd, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


POLICIES = {
    "sam-adamw": (lambda: adamw(0.05), lambda: sam_policy(0.1)),
    "asam": (lambda: sgd(0.1, momentum=0.9), lambda: asam_policy()),
    "og-sam": (lambda: sgd(0.1), lambda: og_sam_policy(0.2, eta=0.3)),
    "ao-sam": (lambda: sgd(0.05, momentum=0.5), lambda: ao_sam_policy(0.2, eta=0.1, c=0.5)),
}


@pytest.mark.parametrize("name", list(POLICIES))
def test_state_dict_round_trip_continues_identically(name: str) -> None:
    make_base, make_policy = POLICIES[name]
    scales = [1.0, 1.0, 4.0, 0.3, 0.3, 5.0, 0.2, 6.0, 1.0, 0.1]
    run = Run(make_base(), make_policy())
    run.steps(4, scales)
    saved = _roundtrip(run.opt.state_dict())
    twin, fresh = Run(make_base(), make_policy()), Run(make_base(), make_policy())
    for other in (twin, fresh):
        with torch.no_grad():
            for q, p in zip(other.p, run.p, strict=True):
                q.copy_(p)
    twin.opt.load_state_dict(saved)
    for r in (run, twin, fresh):
        for t in range(4, len(scales)):
            r.opt.step(r.closure_for(t, scales[t]))
    assert rel(twin.w, run.w) == 0.0
    assert rel(fresh.w, run.w) > 1e-8  # without the state the continuation differs


def test_load_state_dict_with_another_policy_fails_in_one_line() -> None:
    sd = Run(sgd(0.1), og_sam_policy(eta=0.1)).opt.state_dict()
    other = Run(sgd(0.1), ao_sam_policy(eta=0.1)).opt
    with pytest.raises(ValueError, match=r"^SAM policy: expected AdaptiveState, got OgState$"):
        other.load_state_dict(sd)


# ---------------------------------------------------------------- BatchNorm, AMP, DDP


def _bn_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(4, 6), torch.nn.BatchNorm1d(6), torch.nn.Tanh(), torch.nn.Linear(6, 1)
    ).to(F64)


def _bn_closure(model: torch.nn.Module, x: Tensor, y: Tensor):
    def closure() -> Tensor:
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        return loss

    return closure


def test_batchnorm_statistics_update_on_the_first_pass_only() -> None:
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(16, 4, generator=g, dtype=F64), torch.randn(16, 1, generator=g, dtype=F64)
    model = _bn_model()
    reference = copy.deepcopy(model)
    careless = copy.deepcopy(model)
    with torch.no_grad():
        reference(x)  # one forward at the unperturbed weights
    SAM(model.parameters(), sgd(0.5), sam_policy(1.0), model=model).step(_bn_closure(model, x, y))
    SAM(careless.parameters(), sgd(0.5), sam_policy(1.0)).step(_bn_closure(careless, x, y))
    bn, ref, bad = model[1], reference[1], careless[1]
    torch.testing.assert_close(bn.running_mean, ref.running_mean, rtol=0, atol=0)
    torch.testing.assert_close(bn.running_var, ref.running_var, rtol=0, atol=0)
    assert int(bn.num_batches_tracked) == 1
    assert int(bad.num_batches_tracked) == 2  # without model=..., both passes update
    assert not torch.equal(bad.running_mean, ref.running_mean)


def test_bn_frozen_restores_buffers_and_none_is_a_no_op() -> None:
    model = _bn_model()
    before = [b.clone() for b in model.buffers()]
    with bn_frozen(model):
        model(torch.randn(8, 4, dtype=F64))
        assert not torch.equal(model[1].running_mean, before[0])
    for b, s in zip(model.buffers(), before, strict=True):
        torch.testing.assert_close(b, s, rtol=0, atol=0)
    with bn_frozen(None):
        pass


def test_grad_scaler_scales_each_pass_and_clips_only_the_descent() -> None:
    lr, rho, eta, max_norm = 0.1, 0.2, 0.3, 0.5
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**12, growth_interval=3)
    run = Run(sgd(lr), eg_sam_policy(rho, eta), scaler=scaler, max_grad_norm=max_norm)
    run.steps(8, scaler=scaler)
    w = W0.clone()
    for _ in range(8):
        g = grad(w)  # the extrapolation uses the unclipped g
        gh = grad(w + (rho / g.norm() - eta) * g)
        gh = gh * min(1.0, max_norm / (float(gh.norm()) + 1e-6))  # clip_grad_norm_
        w = w - lr * gh
    assert float(grad(W0).norm()) > 2 * max_norm  # clipping is active
    assert rel(run.w, w) <= 1e-12
    assert scaler.get_scale() == 2.0**14  # two growth intervals of clean steps: it was updated


@pytest.mark.parametrize("bad_call", [3, 4])  # step 1's first / second pass overflows
def test_grad_scaler_inf_skips_the_step(bad_call: int) -> None:
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    run = Run(sgd(0.1), og_sam_policy(0.2, eta=0.1), scaler=scaler)
    run.steps(1, scaler=scaler)
    after_one, state = run.w, run.opt.policy_state()
    prev = [p.clone() for p in state.prev]
    run.opt.step(run.closure_for(1, 1.0, scaler=scaler, bad_call=bad_call))
    assert rel(run.w, after_one) == 0.0
    assert run.calls.count(1) == (1 if bad_call == 3 else 2)  # pass 2 skipped after a bad pass 1
    assert scaler.get_scale() == 2.0**9
    assert int(run.opt.policy_state().count) == 1
    for a, b in zip(run.opt.policy_state().prev, prev, strict=True):
        assert torch.equal(a, b)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


DDP_POLICIES = {"sam": lambda: sam_policy(0.2), "ao-sam": lambda: ao_sam_policy(0.2, eta=0.1)}


@pytest.mark.parametrize("policy", list(DDP_POLICIES))
def test_ddp_first_pass_skips_gradient_sync(policy: str) -> None:
    import torch.distributed as dist

    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{_free_port()}", rank=0, world_size=1
    )
    try:
        g = torch.Generator().manual_seed(1)
        x = torch.randn(16, 4, generator=g, dtype=F64)
        y = torch.randn(16, 1, generator=g, dtype=F64)
        plain = _bn_model()
        ddp = torch.nn.parallel.DistributedDataParallel(copy.deepcopy(plain))
        opt = SAM(ddp.parameters(), sgd(0.1), DDP_POLICIES[policy](), model=ddp)
        syncs: list[bool] = []
        loss_step = _bn_closure(ddp, x, y)

        def closure() -> Tensor:
            syncs.append(ddp.require_backward_grad_sync)
            return loss_step()

        opt.step(closure)
        ref = SAM(plain.parameters(), sgd(0.1), DDP_POLICIES[policy](), model=plain)
        ref.step(_bn_closure(plain, x, y))
    finally:
        dist.destroy_process_group()
    # AO-SAM may descend with the first gradient, so it keeps the first pass synchronised.
    assert syncs == ([False, True] if policy == "sam" else [True, True])
    for a, b in zip(ddp.module.parameters(), plain.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=0)
    torch.testing.assert_close(ddp.module[1].running_mean, plain[1].running_mean)


def test_grad_scaler_with_ao_sam_unscales_once_on_one_pass_steps() -> None:
    scales = [1.0, 1.0, 4.0, 0.3, 0.3, 5.0, 0.2, 6.0]
    want, runs = hand_ao(scales, 0.05, 0.2, 0.1, c=0.5, decay=0.8)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    run = Run(sgd(0.05), ao_sam_policy(rho=0.2, eta=0.1, c=0.5, decay=0.8), scaler=scaler)
    assert rel(run.steps(len(scales), scales, scaler=scaler), want) <= 1e-12
    assert run.two_pass == runs and False in runs
