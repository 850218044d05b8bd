"""Second-order steps for small models, as torch optimizers a training loop can drive:
damped Newton (seed 003, "Newton's method": ``theta -= lr * (H + damping*I)^{-1} g`` with the
full Hessian H of the batch loss, by double backward) and natural gradient (Amari 1998; seed
003: the damped empirical Fisher in place of H, `trainlab.optim.natural`).

Both need more than the gradient: the model, the loss and the batch. A loop hands them over
before each step through ``set_batch(loss_fn, x, y)`` (`trainlab.train.loop.train_step` does,
for optimizers with ``needs_batch``); ``step(closure)`` still runs the closure once, so the
loop's loss and accuracy bookkeeping is unchanged. The dense P x P solve costs O(P^2) memory
and O(P^3) time: above ``max_params`` parameters the constructor refuses in one line.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from trainlab.optim.natural import per_example_grads

LossFn = Callable[[Tensor, Tensor], Tensor]
DEFAULT_MAX_PARAMS = 4096


class _SolvedStep(torch.optim.Optimizer):
    """A step ``theta -= lr * (M + damping*I)^{-1} g`` over all of a model's parameters, with
    the curvature matrix M and the gradient g given by `curvature` from the batch."""

    needs_batch = True
    name = "second-order"

    def __init__(
        self, model: nn.Module, lr: float = 1.0, damping: float = 1e-4,
        max_params: int = DEFAULT_MAX_PARAMS,
    ) -> None:  # fmt: skip
        params = [p for p in model.parameters() if p.requires_grad]
        count = sum(p.numel() for p in params)
        if count > max_params:
            raise ValueError(
                f"{self.name}: the model has {count} parameters, above max_params={max_params} "
                "(a dense P x P solve per step); expected a small model or a larger max_params"
            )
        if not lr > 0 or not damping >= 0:
            raise ValueError(f"{self.name}: expected lr > 0 and damping >= 0, got {lr}, {damping}")
        super().__init__(params, {"lr": lr, "damping": damping})
        self.model = model
        self.batch: tuple[LossFn, Tensor, Tensor] | None = None

    def set_batch(self, loss_fn: LossFn, x: Tensor, y: Tensor) -> None:
        """The loss and batch the next step measures its curvature on."""
        self.batch = (loss_fn, x, y)

    def curvature(self, loss_fn: LossFn, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    @torch.no_grad()
    def step(self, closure: Callable[[], Tensor] | None = None) -> Tensor | None:  # type: ignore[override]
        """Run ``closure`` (the loop's bookkeeping) and take the solved step."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        if self.batch is None:
            raise RuntimeError(f"{self.name}: call set_batch(loss_fn, x, y) before step()")
        group = self.param_groups[0]
        matrix, grad = self.curvature(*self.batch)
        eye = torch.eye(len(grad), dtype=grad.dtype, device=grad.device)
        direction = torch.linalg.solve(matrix + group["damping"] * eye, grad)
        params = group["params"]
        for p, d in zip(params, direction.split([p.numel() for p in params]), strict=True):
            p.add_(d.view_as(p), alpha=-group["lr"])
        return loss


class Newton(_SolvedStep):
    """Damped Newton: the full Hessian of the batch loss (``torch.func.hessian`` over the
    flattened parameters) and its gradient."""

    name = "newton"

    def curvature(self, loss_fn: LossFn, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        names = [n for n, p in self.model.named_parameters() if p.requires_grad]
        params = self.param_groups[0]["params"]
        sizes = [p.numel() for p in params]
        flat = torch.cat([p.detach().reshape(-1) for p in params])

        def loss_at(theta: Tensor) -> Tensor:
            pieces = theta.split(sizes)
            state = {n: t.view_as(p) for n, t, p in zip(names, pieces, params, strict=True)}
            return loss_fn(torch.func.functional_call(self.model, state, (x,)), y)

        with torch.enable_grad():
            return torch.func.hessian(loss_at)(flat), torch.func.grad(loss_at)(flat)


class NaturalGradient(_SolvedStep):
    """Natural gradient with the damped empirical Fisher ``(1/N) sum_i g_i g_i^T`` of the
    batch's per-example gradients (`trainlab.optim.natural.per_example_grads`)."""

    name = "natural_gradient"

    def curvature(self, loss_fn: LossFn, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        with torch.enable_grad():
            grads = per_example_grads(self.model, loss_fn, x, y)
        jac = torch.cat([g.reshape(len(x), -1) for g in grads], dim=1)
        return jac.T @ jac / len(x), jac.mean(dim=0)


SECOND_ORDER: dict[str, type[_SolvedStep]] = {"newton": Newton, "natural_gradient": NaturalGradient}
"""Optimizers by recipe name that take the model (and the batch) rather than parameters."""
