"""Adversarial examples and adversarial training.

FGSM, the fast gradient sign method (Goodfellow, Shlens & Szegedy 2015, "Explaining and
Harnessing Adversarial Examples"): x' = x + eps * sign(grad_x L(f(x), y)), the worst case of
the loss's linearisation in the L-inf ball of radius eps.

PGD, projected gradient descent on the negative loss (Madry, Makelov, Schmidt, Tsipras & Vladu
2018, "Towards Deep Learning Models Resistant to Adversarial Attacks"): from a uniform random
point of the ball, repeat x' <- Proj_{B_inf(x, eps)}(x' + alpha * sign(grad_x L)). Training on
such points (`adversarial_batch`) approximately solves Madry et al.'s saddle-point problem
min_theta E max_{||delta||_inf <= eps} L(f(x + delta), y); Goodfellow et al. mix clean and
adversarial examples (`ratio` < 1).

The attacks run the model in eval mode (no dropout noise, no batch-norm statistics updated)
and restore its mode; input gradients come from `torch.autograd.grad`, so the parameters'
`.grad` are never touched. Results are detached.
"""

from __future__ import annotations

import torch
from torch import nn

from trainlab.train.loop import count_correct
from trainlab.train.losses import LossFn

Clamp = tuple[float, float] | None
METHODS = ("fgsm", "pgd")


def _check_eps(eps: float) -> None:
    if not eps >= 0:
        raise ValueError(f"adversarial: eps must be >= 0 (an L-inf radius), got {eps}")


def _check_steps(steps: int) -> None:
    if steps < 1:
        raise ValueError(f"adversarial: steps must be an integer >= 1, got {steps}")


def _check_method(method: str) -> None:
    if method not in METHODS:
        raise ValueError(f"adversarial: unknown method {method!r}; expected one of {METHODS}")


def _check_clamp(clamp: Clamp) -> None:
    if clamp is not None and not clamp[0] <= clamp[1]:
        raise ValueError(f"adversarial: clamp must be (lo, hi) with lo <= hi, got {clamp}")


def _clamped(x: torch.Tensor, clamp: Clamp) -> torch.Tensor:
    return x if clamp is None else x.clamp(clamp[0], clamp[1])


def _input_grad(
    model: nn.Module, loss_fn: LossFn, x: torch.Tensor, y: torch.Tensor
) -> torch.Tensor:
    """grad_x loss_fn(model(x), y), without touching the parameters' .grad."""
    with torch.enable_grad():
        x = x.detach().clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(loss_fn(model(x), y), [x])
    return grad


def _sign_step(
    model: nn.Module, loss_fn: LossFn, x: torch.Tensor, y: torch.Tensor, size: float
) -> torch.Tensor:
    """x + size * sign(grad_x loss), detached."""
    return (x + size * _input_grad(model, loss_fn, x, y).sign()).detach()


class _EvalMode:
    """Context manager: the model in eval mode inside, its previous mode restored after."""

    def __init__(self, model: nn.Module) -> None:
        self.model, self.was_training = model, model.training

    def __enter__(self) -> nn.Module:
        return self.model.eval()

    def __exit__(self, *exc: object) -> None:
        self.model.train(self.was_training)


def fgsm(
    model: nn.Module,
    loss_fn: LossFn,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    *,
    clamp: Clamp = None,
) -> torch.Tensor:
    """Fast gradient sign method (Goodfellow et al. 2015, eq. 3): x + eps * sign(grad_x loss),
    then clamped to `clamp` = (lo, hi) if given (e.g. (0, 1) for pixel intensities)."""
    _check_eps(eps)
    _check_clamp(clamp)
    with _EvalMode(model):
        return _clamped(_sign_step(model, loss_fn, x, y, eps), clamp)


def _project(x_adv: torch.Tensor, x: torch.Tensor, eps: float, clamp: Clamp) -> torch.Tensor:
    """Nearest point of the L-inf ball around x (intersected with `clamp`) to x_adv."""
    return _clamped(torch.minimum(torch.maximum(x_adv, x - eps), x + eps), clamp)


def _random_start(x: torch.Tensor, eps: float, generator: torch.Generator | None) -> torch.Tensor:
    """x plus noise uniform in [-eps, eps]^d, drawn from `generator` (else the global RNG)."""
    device = x.device if generator is None else generator.device
    u = torch.rand(x.shape, generator=generator, dtype=x.dtype, device=device).to(x.device)
    return x + (2 * u - 1) * eps


def pgd(
    model: nn.Module,
    loss_fn: LossFn,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    *,
    steps: int = 10,
    alpha: float | None = None,
    random_start: bool = True,
    generator: torch.Generator | None = None,
    clamp: Clamp = None,
) -> torch.Tensor:
    """L-inf projected gradient ascent on the loss (Madry et al. 2018, eq. 2): `steps` signed
    steps of size `alpha` (default 2.5 * eps / steps, as Madry et al.'s step/radius ratio),
    each followed by projection onto the eps-ball around x and into `clamp`. With
    `random_start` the start is uniform in the ball, drawn from `generator` (deterministic
    given its seed; None draws from the global RNG). steps=1, alpha=eps and no random start
    is exactly `fgsm`."""
    _check_eps(eps)
    _check_steps(steps)
    _check_clamp(clamp)
    alpha = 2.5 * eps / steps if alpha is None else alpha
    if not alpha >= 0:
        raise ValueError(f"pgd: alpha must be >= 0 (a step size), got {alpha}")
    x = x.detach()
    x_adv = _project(_random_start(x, eps, generator), x, eps, clamp) if random_start else x
    with _EvalMode(model):
        for _ in range(steps):
            x_adv = _project(_sign_step(model, loss_fn, x_adv, y, alpha), x, eps, clamp)
    return x_adv


def attack(
    model: nn.Module,
    loss_fn: LossFn,
    x: torch.Tensor,
    y: torch.Tensor,
    method: str,
    eps: float,
    steps: int = 10,
    generator: torch.Generator | None = None,
    clamp: Clamp = None,
) -> torch.Tensor:
    """Adversarial versions of x by `method` ("fgsm" or "pgd"; fgsm ignores steps/generator)."""
    _check_method(method)
    _check_steps(steps)
    if method == "fgsm":
        return fgsm(model, loss_fn, x, y, eps, clamp=clamp)
    return pgd(model, loss_fn, x, y, eps, steps=steps, generator=generator, clamp=clamp)


def adversarial_batch(
    model: nn.Module,
    loss_fn: LossFn,
    x: torch.Tensor,
    y: torch.Tensor,
    method: str,
    eps: float,
    steps: int = 10,
    ratio: float = 1.0,
    generator: torch.Generator | None = None,
    *,
    clamp: Clamp = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """A training batch for adversarial training: the first round(ratio * B) examples replaced
    by their `method` adversarial versions (ratio 1: Madry et al.'s training on PGD points
    only; ratio 0.5: Goodfellow et al.'s equal mix of clean and adversarial loss). Returns
    (x_mixed, y); labels are unchanged."""
    _check_method(method)
    _check_eps(eps)
    _check_steps(steps)
    if not 0 < ratio <= 1:
        raise ValueError(f"adversarial_batch: ratio must be in (0, 1], got {ratio}")
    k = round(ratio * len(x))
    if k == 0:
        return x.detach(), y
    x_adv = attack(model, loss_fn, x[:k], y[:k], method, eps, steps, generator, clamp)
    return torch.cat([x_adv, x[k:].detach()]), y


def adversarial_accuracy(
    model: nn.Module,
    split_x: torch.Tensor,
    split_y: torch.Tensor,
    loss_fn: LossFn,
    method: str,
    eps: float,
    steps: int = 10,
    batch_size: int = 500,
    generator: torch.Generator | None = None,
    *,
    clamp: Clamp = None,
) -> float:
    """Accuracy on the `method` adversarial versions of (split_x, split_y), each attacked
    against the model in eval mode (the model's mode is restored afterwards)."""
    _check_method(method)
    _check_eps(eps)
    _check_steps(steps)
    correct = 0
    with _EvalMode(model):
        for lo in range(0, len(split_x), batch_size):
            x, y = split_x[lo : lo + batch_size], split_y[lo : lo + batch_size]
            x_adv = attack(model, loss_fn, x, y, method, eps, steps, generator, clamp)
            with torch.no_grad():
                correct += int(count_correct(model(x_adv), y))
    return correct / max(len(split_x), 1)
