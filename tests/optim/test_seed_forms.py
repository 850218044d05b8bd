"""The seeds' alternative formulations, written independently in numpy, equal our aliases.

Seed 000 is CS231n's optimizer lecture, seed 001 Goodfellow et al.-style slides, seed 003 the
"Summary: Some Optimizers" tables.
"""

from __future__ import annotations

import numpy as np
import torch

import trainlab.optim as to

STEPS = 120


def _problem(seed: int = 0):
    """A 5-d ill-conditioned quadratic f = 0.5 (x-c)^T H (x-c) in numpy."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((5, 5))
    h = a @ a.T / 5 + 0.05 * np.eye(5)
    c = rng.standard_normal(5)
    x0 = rng.standard_normal(5)
    return x0, (lambda x: h @ (x - c))


def _ours(transform: to.Transform, x0: np.ndarray, grad, steps: int = STEPS) -> np.ndarray:
    x = [torch.tensor(x0)]
    state = transform.init(x)
    for _ in range(steps):
        g = [torch.tensor(grad(x[0].numpy()))]
        u, state = transform.update(g, state, x)
        x = [x[0] + u[0]]
    return x[0].numpy()


def _close(a: np.ndarray, b: np.ndarray, tol: float = 1e-12) -> None:
    assert np.linalg.norm(a - b) <= tol * np.linalg.norm(b), (a, b)


def test_cs231n_momentum_v_equals_rho_v_plus_dx() -> None:
    """Seed 000 "SGD+Momentum": vx = rho*vx + dx; x -= lr*vx  ==  sgd(lr, momentum=rho)."""
    x0, grad = _problem()
    rho, lr = 0.9, 0.05
    x, vx = x0.copy(), np.zeros(5)
    for _ in range(STEPS):
        vx = rho * vx + grad(x)
        x = x - lr * vx
    _close(_ours(to.sgd(lr, momentum=rho), x0, grad), x)


def test_velocity_form_v_equals_beta_v_minus_alpha_g() -> None:
    """Seed 001/004: v = beta*v - alpha*g; theta += v  ==  sgd(alpha, momentum=beta), since
    v = -alpha*b for a constant alpha (with a changing alpha the two differ)."""
    x0, grad = _problem(1)
    beta, alpha = 0.8, 0.1
    x, v = x0.copy(), np.zeros(5)
    for _ in range(STEPS):
        v = beta * v - alpha * grad(x)
        x = x + v
    _close(_ours(to.sgd(alpha, momentum=beta), x0, grad), x)
    # Seed 003 "Algorithm 5": m = beta1*m + eta*g; theta -= m  (the same with m = -v).
    x3, m = x0.copy(), np.zeros(5)
    for _ in range(STEPS):
        m = beta * m + alpha * grad(x3)
        x3 = x3 - m
    _close(x3, x)


def test_nesterov_change_of_variables_form() -> None:
    """Seed 000 "Nesterov Momentum": old_v = v; v = rho*v - lr*dx; x += -rho*old_v + (1+rho)*v
    == sgd(nesterov=True); and the look-ahead form v = rho*v - lr*grad(x + rho*v), x += v has
    iterates x~ = x + rho*v equal to ours."""
    x0, grad = _problem(2)
    rho, lr = 0.9, 0.05
    x, v = x0.copy(), np.zeros(5)
    for _ in range(STEPS):
        old_v = v
        v = rho * v - lr * grad(x)
        x = x + (-rho * old_v + (1 + rho) * v)
    ours = _ours(to.sgd(lr, momentum=rho, nesterov=True), x0, grad)
    _close(ours, x)

    y, w = x0.copy(), np.zeros(5)  # look-ahead form, y_0 = x~_0 since v_0 = 0
    for _ in range(STEPS):
        w = rho * w - lr * grad(y + rho * w)
        y = y + w
    _close(ours, y + rho * w)


def test_adam_alpha_t_form_equals_up_to_eps_rescaling() -> None:
    """Seed 001 "Adam (2014)" second form: alpha_t = alpha*sqrt(1-b2^t)/(1-b1^t);
    theta -= alpha_t * s / (sqrt(r) + eps_hat). Equals adam(eps) exactly when
    eps_hat = eps*sqrt(1-b2^t); with eps_hat = eps it differs only through eps."""
    x0, grad = _problem(3)
    a, b1, b2, eps = 0.05, 0.9, 0.999, 1e-3
    x, s, r = x0.copy(), np.zeros(5), np.zeros(5)
    for t in range(1, STEPS + 1):
        g = grad(x)
        s = b1 * s + (1 - b1) * g
        r = b2 * r + (1 - b2) * g * g
        alpha_t = a * np.sqrt(1 - b2**t) / (1 - b1**t)
        x = x - alpha_t * s / (np.sqrt(r) + eps * np.sqrt(1 - b2**t))
    _close(_ours(to.adam(a, betas=(b1, b2), eps=eps), x0, grad), x)


def test_adam_full_form_cs231n() -> None:
    """Seed 000 "Adam (full form)" with unbiasing, t from 1; eps outside the root."""
    x0, grad = _problem(4)
    lr, b1, b2 = 0.05, 0.9, 0.99
    x, m1, m2 = x0.copy(), np.zeros(5), np.zeros(5)
    for t in range(1, STEPS + 1):
        dx = grad(x)
        m1 = b1 * m1 + (1 - b1) * dx
        m2 = b2 * m2 + (1 - b2) * dx * dx
        x = x - lr * (m1 / (1 - b1**t)) / (np.sqrt(m2 / (1 - b2**t)) + 1e-7)
    _close(_ours(to.adam(lr, betas=(b1, b2), eps=1e-7), x0, grad), x)


def test_adagrad_and_rmsprop_seed_forms() -> None:
    """Seed 000 AdaGrad / RMSProp (eps outside) and seed 001 (eps inside the root)."""
    x0, grad = _problem(5)
    lr, dr = 0.1, 0.9
    x, gs = x0.copy(), np.zeros(5)
    for _ in range(STEPS):
        dx = grad(x)
        gs = gs + dx * dx
        x = x - lr * dx / (np.sqrt(gs) + 1e-7)
    _close(_ours(to.adagrad(lr, eps=1e-7), x0, grad), x)

    x, r = x0.copy(), np.zeros(5)
    for _ in range(STEPS):
        g = grad(x)
        r = r + g * g
        x = x - lr / np.sqrt(r + 1e-8) * g
    inside = to.chain(to.scale_by_adagrad(eps=0.0, eps_root=1e-8), to.scale_by_lr(lr))
    _close(_ours(inside, x0, grad), x)

    x, gs = x0.copy(), np.zeros(5)
    for _ in range(STEPS):
        dx = grad(x)
        gs = dr * gs + (1 - dr) * dx * dx
        x = x - 0.01 * dx / (np.sqrt(gs) + 1e-7)
    _close(_ours(to.rmsprop(0.01, alpha=dr, eps=1e-7), x0, grad), x)


def test_adadelta_seed_003() -> None:
    """Seed 003 eq. 8 (Zeiler 2012): delta = RMS(dtheta)_{t-1} / RMS(g)_t * g."""
    x0, grad = _problem(6)
    rho, eps = 0.9, 1e-4
    x, eg, ed = x0.copy(), np.zeros(5), np.zeros(5)
    for _ in range(STEPS):
        g = grad(x)
        eg = rho * eg + (1 - rho) * g * g
        d = np.sqrt(ed + eps) / np.sqrt(eg + eps) * g
        ed = rho * ed + (1 - rho) * d * d
        x = x - d
    _close(_ours(to.adadelta(1.0, rho=rho, eps=eps), x0, grad), x)
