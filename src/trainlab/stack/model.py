"""K models of one architecture as one module: their parameters and buffers stacked along a new
leading dimension and the forward pass vectorized over it (torch.func: `stack_module_state`,
`functional_call`, `vmap`), so K small training steps become one larger one.

Each model keeps everything of its own: parameters, BatchNorm running statistics (stacked
buffers, updated in place per model under vmap) and dropout masks (vmap's
``randomness="different"`` draws an independent mask per model). `unstack(k)` gives model k back
as a plain module, loadable wherever the unstacked model is.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

from torch import Tensor, nn
from torch.func import functional_call, stack_module_state, vmap


class StackedModel(nn.Module):
    """K copies of one architecture with their own weights; ``forward(x)`` takes (K, B, ...)
    (each model its own batch) or (B, ...) with ``shared=True`` (one batch for all, e.g. a
    validation split) and returns (K, B, ...)."""

    def __init__(self, models: Sequence[nn.Module]) -> None:
        super().__init__()
        if not models:
            raise ValueError("StackedModel: needs at least one model")
        shapes = [_shapes(m) for m in models]
        if any(s != shapes[0] for s in shapes[1:]):
            raise ValueError("StackedModel: the models differ in architecture (state shapes)")
        params, buffers = stack_module_state(list(models))
        self.k = len(models)
        # not submodules (their parameters are not the stack's): what `unstack` fills, and the
        # structure functional_call runs, on the meta device
        self._modules_kept = (copy.deepcopy(models[0]), copy.deepcopy(models[0]).to("meta"))
        self.names = list(params)
        self.stacked = nn.ParameterList(nn.Parameter(params[n].detach().clone()) for n in params)
        for i, value in enumerate(buffers.values()):
            self.register_buffer(f"b{i}", value.clone())
        self.buffer_names = list(buffers)

    @property
    def template(self) -> nn.Module:
        return self._modules_kept[0]

    @property
    def base(self) -> nn.Module:
        return self._modules_kept[1]

    def train(self, mode: bool = True) -> StackedModel:
        super().train(mode)
        self.base.train(mode)
        return self

    def named_state(self) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """The stacked parameters and buffers by the plain model's names."""
        params = dict(zip(self.names, self.stacked, strict=True))
        buffers = {n: getattr(self, f"b{i}") for i, n in enumerate(self.buffer_names)}
        return params, buffers

    def forward(self, x: Tensor, shared: bool = False) -> Tensor:
        params, buffers = self.named_state()

        def one(p: dict, b: dict, xb: Tensor) -> Tensor:
            return functional_call(self.base, (p, b), (xb,))

        in_dims = (0, 0, None if shared else 0)
        return vmap(one, in_dims=in_dims, randomness="different")(params, buffers, x)

    def state_of(self, k: int) -> dict[str, Tensor]:
        """Model k's state dict (parameters and buffers), detached copies."""
        params, buffers = self.named_state()
        return {n: t[k].detach().clone() for n, t in {**params, **buffers}.items()}

    def unstack(self, k: int) -> nn.Module:
        """Model k as a plain module of the original architecture."""
        model = copy.deepcopy(self.template)
        model.load_state_dict(self.state_of(k))
        model.train(self.training)
        return model


def _shapes(model: nn.Module) -> list[tuple[str, tuple[int, ...]]]:
    return [(n, tuple(t.shape)) for n, t in model.state_dict().items()]
