"""Newton and natural-gradient steps (`trainlab.optim.second_order`) against references: one
Newton step solves least squares exactly (the normal equations); on logistic regression
Newton reaches a 1e-10 gradient norm in a handful of iterations, quadratically, and lands on
scikit-learn's solution, where gradient descent at step 1/L needs many times more (measured:
Newton 6, gradient descent 152 on this problem); one natural-gradient step equals the
functional transform; the loop drives Newton from a recipe; too many parameters is one line."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from sklearn.linear_model import LogisticRegression
from torch import nn

from trainlab.optim import NaturalGradient, Newton, per_example_grads, scale_by_natural_gradient
from trainlab.train.loop import train_step


def _data(n: int = 200, d: int = 5, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    w = torch.randn(d, generator=g, dtype=torch.float64)
    y = (torch.rand(n, generator=g, dtype=torch.float64) < torch.sigmoid(x @ w)).double()
    return x, y


def _logistic(model: nn.Module) -> callable:
    """The mean logistic loss; labels drawn from a logistic model are not separable, so the
    minimiser is unique and finite."""

    def loss(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(out.squeeze(-1), y)

    return loss


def _grad_norm(model: nn.Module, loss_fn, x, y) -> float:  # noqa: ANN001
    model.zero_grad()
    loss_fn(model(x), y).backward()
    return float(torch.cat([p.grad.reshape(-1) for p in model.parameters()]).norm())


def _newton_iterations(x, y, tol: float = 1e-10) -> tuple[int, list[float], nn.Module]:  # noqa: ANN001
    model = nn.Linear(x.shape[1], 1).double()
    nn.init.zeros_(model.weight), nn.init.zeros_(model.bias)
    loss_fn = _logistic(model)
    opt = Newton(model, lr=1.0, damping=0.0)
    norms = [_grad_norm(model, loss_fn, x, y)]
    while norms[-1] > tol and len(norms) < 50:
        train_step(model, opt, loss_fn, x, y)
        norms.append(_grad_norm(model, loss_fn, x, y))
    return len(norms) - 1, norms, model


def test_one_newton_step_solves_least_squares() -> None:
    x, _ = _data()
    y = x @ torch.arange(1.0, 6.0, dtype=torch.float64) + 0.3
    model = nn.Linear(5, 1).double()
    opt = Newton(model, lr=1.0, damping=0.0)
    loss_fn = lambda out, t: F.mse_loss(out.squeeze(-1), t)  # noqa: E731
    train_step(model, opt, loss_fn, x, y)
    design = torch.cat([x, torch.ones(len(x), 1, dtype=torch.float64)], dim=1)
    want = torch.linalg.lstsq(design, y.unsqueeze(1)).solution.squeeze(1)
    got = torch.cat([model.weight.detach().reshape(-1), model.bias.detach()])
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)


def test_newton_converges_quadratically_to_sklearns_solution_and_gd_does_not_keep_up() -> None:
    x, y = _data()
    iters, norms, model = _newton_iterations(x, y)
    assert norms[-1] <= 1e-10 and iters <= 10
    tail = [b / a**2 for a, b in zip(norms[-4:-1], norms[-3:], strict=True) if a > 1e-7]
    assert tail and max(tail) < 50.0  # ||g_{k+1}|| <= C ||g_k||^2: quadratic convergence
    ref = LogisticRegression(penalty=None, tol=1e-12, max_iter=10_000).fit(x, y)
    torch.testing.assert_close(model.weight.detach().squeeze(0),
                               torch.from_numpy(ref.coef_[0]), rtol=1e-6, atol=1e-6)  # fmt: skip
    # gradient descent at step 1/L (L bounds the Hessian: ||X||^2 / (4N))
    gd = nn.Linear(x.shape[1], 1).double()
    nn.init.zeros_(gd.weight), nn.init.zeros_(gd.bias)
    loss_fn = _logistic(gd)
    design = torch.cat([x, torch.ones(len(x), 1, dtype=torch.float64)], dim=1)
    step = 1.0 / (torch.linalg.matrix_norm(design, 2) ** 2 / (4 * len(x)))
    opt = torch.optim.SGD(gd.parameters(), lr=float(step))
    for gd_iters in range(1, 20_001):  # noqa: B007
        train_step(gd, opt, loss_fn, x, y)
        if _grad_norm(gd, loss_fn, x, y) <= 1e-10:
            break
    print(f"iterations to a 1e-10 gradient norm: Newton {iters}, gradient descent {gd_iters}")
    assert gd_iters >= 10 * iters, (iters, gd_iters)


def test_natural_gradient_step_equals_the_functional_transform() -> None:
    x, y = _data(n=40, d=3, seed=1)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1)).double()
    loss_fn = lambda out, t: F.binary_cross_entropy_with_logits(out.squeeze(-1), t)  # noqa: E731
    before = [p.detach().clone() for p in model.parameters()]
    grads = per_example_grads(model, loss_fn, x, y)
    t = scale_by_natural_gradient(damping=1e-2)
    direction, _ = t.update(grads, t.init(before), before)
    train_step(model, NaturalGradient(model, lr=0.5, damping=1e-2), loss_fn, x, y)
    for p, b, d in zip(model.parameters(), before, direction, strict=True):
        torch.testing.assert_close(p.detach(), b - 0.5 * d, rtol=1e-10, atol=1e-12)


def test_too_many_parameters_is_one_line() -> None:
    with pytest.raises(ValueError, match="above max_params=100.*expected a small model"):
        Newton(nn.Linear(20, 10), max_params=100)


def test_newton_from_a_recipe(tmp_path) -> None:  # noqa: ANN001
    from trainlab.run.config import validate_recipe
    from trainlab.run.runner import train_recipe

    recipe = validate_recipe({
        "name": "newton", "runs_dir": str(tmp_path),
        "diagnose": {"probes": False, "report": False},
        "data": {"name": "digits", "batch_size": 512},
        "model": {"name": "mlp", "widths": []},
        "optimizer": {"name": "newton", "lr": 1.0, "damping": 1e-2, "max_params": 700},
        "schedule": {"name": "constant"},
        "train": {"epochs": 2, "threads": 1},
    })  # fmt: skip
    result = train_recipe(recipe, quiet=True)
    assert isinstance(result.experiment.optimizer, Newton)
    assert result.test_acc > 0.9  # 650 parameters of softmax regression on 8x8 digits
