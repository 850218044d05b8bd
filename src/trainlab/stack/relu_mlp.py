"""A hand-written training step for stacks of ReLU MLPs under cross-entropy: forward and backward
as batched matrix products, activations kept transposed (K, units, batch).

Why: on a CPU the stacked step of small MLPs is bound by matrix-product efficiency, and the
generic path (vmap over `functional_call`, autograd) spends it on the narrow layers: a
(K, B, h) x (K, h, 10) product or its weight gradient runs at 20-35 GFLOP/s here where the
transposed (K, 10, h) x (K, h, B) form runs at ~100, and cross-entropy's log_softmax over 10
classes costs 4x a hand-written logsumexp (bench/many_models.py measures the whole step).
Only the gradient computation is ours: the update is the library's optimizer, as for any stack.
Tested equal to autograd's gradients and to each model trained alone (float64).
"""

from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from trainlab.stack.model import StackedModel


def is_plain_cross_entropy(loss_fn: object) -> bool:
    """``F.cross_entropy`` itself or a partial of it with no label smoothing."""
    if isinstance(loss_fn, partial):
        extra = {k: v for k, v in loss_fn.keywords.items() if v not in (0, 0.0)}
        return loss_fn.func is F.cross_entropy and not loss_fn.args and not extra
    return loss_fn is F.cross_entropy


def relu_mlp_linears(model: nn.Module) -> list[int] | None:
    """Indices of the Linear layers if ``model`` is an nn.Sequential of the form
    [Flatten] (Linear ReLU)* Linear, else None (then the generic path trains it)."""
    if not isinstance(model, nn.Sequential):
        return None
    layers = list(model)
    start = 1 if layers and isinstance(layers[0], nn.Flatten) else 0
    body = layers[start:]
    if len(body) % 2 != 1:
        return None
    for i, m in enumerate(body):
        expected = nn.Linear if i % 2 == 0 else nn.ReLU
        if type(m) is not expected or (expected is nn.Linear and m.bias is None):
            return None
    return [start + i for i in range(0, len(body), 2)]


class ReluMLPStep:
    """Per-model cross-entropy losses and the gradients of a stacked ReLU MLP, written into the
    stacked parameters' ``.grad`` (what ``loss.backward()`` would leave)."""

    def __init__(self, stack: StackedModel, linears: list[int]) -> None:
        params, buffers = stack.named_state()
        self.weights = [params[f"{i}.weight"] for i in linears]  # (K, out, in)
        self.biases = [params[f"{i}.bias"] for i in linears]  # (K, out)
        self.masks = [buffers.get(f"{i}.unit_mask") for i in linears]  # (K, in) or None

    def __call__(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """Losses (K,) and correct counts (K,) of the batch (x (K, B, ...), y (K, B))."""
        with torch.no_grad():
            inputs, z = self._forward(x.flatten(2).mT)
            losses, dz, correct = _cross_entropy(z, y)
            self._backward(inputs, dz)
        return losses, correct

    def _forward(self, a: Tensor) -> tuple[list[Tensor], Tensor]:
        """Each layer's (masked) input, transposed (K, in, B), and the logits (K, C, B)."""
        inputs = []
        last = len(self.weights) - 1
        for j, (w, b, mask) in enumerate(zip(self.weights, self.biases, self.masks, strict=True)):
            if mask is not None:
                a = a * mask.unsqueeze(-1)
            inputs.append(a)
            a = torch.baddbmm(b.unsqueeze(-1), w, a)
            if j < last:
                a = a.relu_()
        return inputs, a

    def _backward(self, inputs: list[Tensor], dz: Tensor) -> None:
        """Gradients from dL/dlogits (K, C, B), the last layer first."""
        d = dz
        for j in range(len(self.weights) - 1, -1, -1):
            w, b, a = self.weights[j], self.biases[j], inputs[j]
            _set_grad(w, torch.bmm(d, a.mT))
            _set_grad(b, d.sum(-1))
            if j == 0:
                break
            d = torch.bmm(w.mT, d)
            if self.masks[j] is not None:
                d = d * self.masks[j].unsqueeze(-1)
            # ReLU': the input of layer j is layer j-1's relu output. threshold_backward is what
            # autograd runs for it; masked_fill_/where with a bool mask are 20-30x slower here.
            d = torch.ops.aten.threshold_backward(d, a, 0.0)


def _cross_entropy(z: Tensor, y: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Per-model mean cross-entropy of logits z (K, C, B) for labels y (K, B), its gradient
    with respect to z and the correct counts (F.cross_entropy's value, written out)."""
    batch = z.shape[-1]
    shift = z - z.amax(1, keepdim=True)
    exp = shift.exp()
    total = exp.sum(1, keepdim=True)
    picked = shift.gather(1, y.unsqueeze(1))
    losses = (total.log() - picked).mean(-1).squeeze(1)
    dz = exp.div_(total)
    dz.scatter_add_(1, y.unsqueeze(1), torch.full_like(picked, -1.0))
    correct = (z.mT.contiguous().argmax(-1) == y).sum(-1)  # strided argmax: 15x slower
    return losses, dz.div_(batch), correct


def _set_grad(p: Tensor, g: Tensor) -> None:
    """``p.grad = g`` (a fresh tensor each step, as ``zero_grad(set_to_none=True)`` leaves)."""
    p.grad = g
