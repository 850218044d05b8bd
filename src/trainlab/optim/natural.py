"""Natural-gradient descent with a damped empirical Fisher (Amari 1998; seed 003 "From SGD to
Natural Gradient Descend"): ``theta -= lr * (F + damping*I)^{-1} g``, with

    F = (1/N) sum_i g_i g_i^T        (empirical Fisher from N per-example gradients g_i)
    g = (1/N) sum_i g_i              (the mean gradient)

The dense P x P solve suits models of a few thousand parameters; above ``max_params`` the
transform fails at once. Its input "grads" are *per-example* gradients with a leading batch
dimension (``[N, *p.shape]`` per parameter), e.g. from `per_example_grads`; so it is used
functionally (``t.update(per_example, state, params)``), not through ``Optimizer.step``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from trainlab.optim.transform import (
    EmptyState,
    Hyper,
    Params,
    Transform,
    Updates,
    chain,
    check_nonneg,
    scale_by_lr,
)

DEFAULT_MAX_PARAMS = 4096


def _check_size(params: Params, max_params: int) -> int:
    n = sum(p.numel() for p in params)
    if n > max_params:
        raise ValueError(
            f"natural_gradient: model has {n} parameters, above max_params={max_params} "
            "(dense Fisher solve is O(P^2) memory, O(P^3) time)"
        )
    return n


def scale_by_natural_gradient(
    damping: float = 1e-3, max_params: int = DEFAULT_MAX_PARAMS
) -> Transform:
    """Map per-example gradients ``[N, *shape]`` to ``(F + damping*I)^{-1} g`` (param shapes)."""
    check_nonneg("scale_by_natural_gradient", "damping", damping)

    def init(params: Params) -> EmptyState:
        _check_size(params, max_params)
        return EmptyState()

    def update(grads: Updates, state: EmptyState, params: Params) -> tuple[Updates, EmptyState]:
        n = _check_size(params, max_params)
        batch = grads[0].shape[0]
        for g, p in zip(grads, params, strict=True):
            if g.shape[1:] != p.shape or g.shape[0] != batch:
                raise ValueError(
                    f"natural_gradient: expected per-example grads of shape [N, *{tuple(p.shape)}],"
                    f" got {tuple(g.shape)}"
                )
        jac = torch.cat([g.reshape(batch, -1) for g in grads], dim=1)  # [N, P]
        fisher = jac.T @ jac / batch + damping * torch.eye(n, dtype=jac.dtype, device=jac.device)
        direction = torch.linalg.solve(fisher, jac.mean(dim=0))
        out = [
            d.view_as(p)
            for d, p in zip(direction.split([p.numel() for p in params]), params, strict=True)
        ]
        return out, state

    return Transform(init, update)


def natural_gradient(
    lr: Hyper = 0.1, damping: float = 1e-3, max_params: int = DEFAULT_MAX_PARAMS
) -> Transform:
    """NGD alias: ``chain(scale_by_natural_gradient(damping), scale_by_lr(lr))``."""
    return chain(scale_by_natural_gradient(damping, max_params), scale_by_lr(lr))


def per_example_grads(
    model: torch.nn.Module, loss_fn: Callable[[Tensor, Tensor], Tensor], x: Tensor, y: Tensor
) -> list[Tensor]:
    """Per-example gradients ``[N, *p.shape]`` of ``loss_fn(model(x_i), y_i)`` (torch.func.vmap)."""
    names = [n for n, _ in model.named_parameters()]
    params = {n: p.detach() for n, p in model.named_parameters()}

    def one(p: dict[str, Tensor], xi: Tensor, yi: Tensor) -> Tensor:
        out = torch.func.functional_call(model, p, (xi.unsqueeze(0),))
        return loss_fn(out, yi.unsqueeze(0))

    grads = torch.func.vmap(torch.func.grad(one), in_dims=(None, 0, 0))(params, x, y)
    return [grads[n] for n in names]
