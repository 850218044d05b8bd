"""The training loss as a pure function of a parameter list, L(θ), via `functional_call`.

Everything in `trainlab.landscape` works on such functions, never on the user's model: the
model is copied once (its structure and buffers) and the copy is called with the parameters
given, so the user's parameters, buffers, `.grad` fields and train/eval flags stay untouched.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from torch import Tensor, nn
from torch.func import functional_call

from trainlab.nn.norms import BATCH_STAT_NORMS

Batch = tuple[Tensor, Tensor]
LossFn = Callable[[Tensor, Tensor], Tensor]
ParamFn = Callable[[list[Tensor]], Tensor]
BatchNormMode = Literal["eval", "batch"]
BATCHNORM_MODES: tuple[str, ...] = ("eval", "batch")


@dataclass(frozen=True)
class ParamLoss:
    """L(θ) = Σ_b (n_b / N) ℓ_b(θ): the mean loss over N examples held as batches b of n_b.

    `terms[b]` is the already weighted (n_b / N) ℓ_b, so that Hessian-vector products can be
    summed batch by batch. `names` are the parameter names, aligned with the list θ.
    """

    terms: tuple[ParamFn, ...]
    names: tuple[str, ...]
    num_examples: int

    def __call__(self, params: Sequence[Tensor]) -> Tensor:
        params = list(params)
        total = self.terms[0](params)
        for term in self.terms[1:]:
            total = total + term(params)
        return total


def model_params(model: nn.Module) -> list[Tensor]:
    """θ of `model`: detached tensors aligned with `model.named_parameters()`.

    They share storage with the model; nothing here writes to them in place.
    """
    return [p.detach() for p in model.parameters()]


def _evaluation_copy(model: nn.Module, batchnorm: BatchNormMode) -> nn.Module:
    """A deep copy in eval mode; with batchnorm="batch", its BatchNorm layers normalize with the
    statistics of each batch and do not track running statistics."""
    frozen = copy.deepcopy(model).eval()
    if batchnorm == "batch":
        for module in frozen.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                # training=True with track_running_stats=False: batch statistics, no update.
                module.train()
                module.track_running_stats = False
            elif isinstance(module, BATCH_STAT_NORMS):
                module.train()  # writes its buffers: each call gets fresh copies (see _term)
    for p in frozen.parameters():
        p.requires_grad_(False)
    return frozen


def _updates_buffers(module: nn.Module) -> bool:
    """Whether a layer of the evaluation copy writes its buffers when called (Batch Renorm in
    training mode; torch's BatchNorm is told not to track statistics instead)."""
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        return module.training and module.track_running_stats
    return module.training and isinstance(module, BATCH_STAT_NORMS)


def _term(
    frozen: nn.Module,
    names: tuple[str, ...],
    loss_fn: LossFn,
    batch: Batch,
    weight: float,
    fresh_buffers: bool,
) -> ParamFn:
    x, y = batch
    buffers = dict(frozen.named_buffers())

    def term(params: list[Tensor]) -> Tensor:
        if len(params) != len(names):
            raise ValueError(f"expected {len(names)} parameter tensors, got {len(params)}")
        state = dict(zip(names, params, strict=True))
        # Buffers a training-mode layer would update in place are copied per call, so every
        # call starts from the same statistics and L stays a function of θ alone.
        state.update({k: b.clone() for k, b in buffers.items()} if fresh_buffers else buffers)
        return weight * loss_fn(functional_call(frozen, state, (x,)), y)

    return term


def loss_of_params(
    model: nn.Module,
    loss_fn: LossFn,
    batches: Batch | Sequence[Batch],
    *,
    batchnorm: BatchNormMode = "eval",
) -> ParamLoss:
    """L(θ): the mean of `loss_fn(model_θ(x), y)` over the examples of `batches`.

    `batches` is one (x, y) pair or a list of them; `loss_fn` must return the mean over its
    batch (torch's default reduction), and batches are weighted by their sizes. Buffers are
    those of `model` when this is called (a copy is taken). BatchNorm:

    - "eval" (default): running statistics, as at test time; L is the same function of θ
      however the examples are batched. Dropout is off.
    - "batch": each batch is normalized with its own statistics, as in training, without
      updating running statistics (PyHessian evaluates in eval mode; Ghorbani et al. 2019
      discuss both). L then depends on the batching. Dropout stays off. trainlab's Batch
      Renorm layers train with their running statistics as they are (copied per call); their
      statistics kernel has no forward-mode derivative, so use a double-backward HVP there.

    The model is never modified: not its parameters, buffers, gradients nor train/eval mode.
    """
    if batchnorm not in BATCHNORM_MODES:
        raise ValueError(f"batchnorm must be one of {BATCHNORM_MODES}, got {batchnorm!r}")
    if isinstance(batches, tuple) and len(batches) == 2 and isinstance(batches[0], Tensor):
        batches = [batches]
    batches = list(batches)
    if not batches:
        raise ValueError("batches must hold at least one (x, y) pair, got none")
    sizes = [int(x.shape[0]) for x, _ in batches]
    total = sum(sizes)
    frozen = _evaluation_copy(model, batchnorm)
    names = tuple(name for name, _ in model.named_parameters())
    fresh = batchnorm == "batch" and any(_updates_buffers(m) for m in frozen.modules())
    terms = tuple(
        _term(frozen, names, loss_fn, batch, size / total, fresh)
        for batch, size in zip(batches, sizes, strict=True)
    )
    return ParamLoss(terms=terms, names=names, num_examples=total)


def split_batches(x: Tensor, y: Tensor, batch_size: int) -> list[Batch]:
    """Consecutive (x, y) batches of at most `batch_size` examples."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    return [(x[i : i + batch_size], y[i : i + batch_size]) for i in range(0, len(x), batch_size)]
