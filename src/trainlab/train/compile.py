"""`train.compile`: the model compiled with ``torch.compile`` before the first step, the compile
time measured apart from training, and eager mode kept if compiling fails.

The module's ``forward`` is replaced on the instance by its compiled form, so its state_dict
keys and checkpoints are those of the eager module, and a step on which hooks are registered
(the probes' steps) runs the eager forward so that they fire; `uncompile` removes it
after training (a deep copy of the module, as SWA and EMA make, would otherwise call the
original's compiled forward). ``nn.Module.compile`` looked like the natural tool, but here
(torch 2.13) a backend passed to it was never called: it did not compile what we asked.
Compiling is lazy in torch (the first call traces and generates code); `compile_model` triggers
it with one forward and backward pass on a real batch, with the random state forked, the
buffers (BatchNorm statistics) restored and the gradients cleared afterwards, so the run that
follows is the run eager mode would train. Evaluation during training compiles once more on
its first call (eval mode is another graph); that time is part of the first validation.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from trainlab.train.losses import LossFn
from trainlab.train.precision import autocast_to


def compile_model(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    loss_fn: LossFn,
    autocast: torch.dtype | None = None,
    backend: Any = "inductor",
) -> tuple[float, str | None]:
    """Compile `model` in place and warm it on (x, y); return (seconds spent compiling, None),
    or (seconds, one line saying why) with `model` back in eager mode if compiling failed."""
    started = time.perf_counter()
    model.forward = _unless_hooked(model, torch.compile(model.forward, backend=backend))
    buffers = [b.detach().clone() for b in model.buffers()]
    was_training = model.training
    model.train()
    try:
        with torch.random.fork_rng(devices=[]), torch.enable_grad():
            with autocast_to(autocast, x.device.type):
                outputs = model(x)
            loss_fn(outputs.float(), y).backward()
    except Exception as err:  # any tracing / code generation failure: train eagerly instead
        uncompile(model)
        why = " ".join(str(err).strip().splitlines()[:2])[:200]
        return time.perf_counter() - started, f"{type(err).__name__}: {why}"
    finally:
        with torch.no_grad():
            for b, saved in zip(model.buffers(), buffers, strict=True):
                b.copy_(saved)
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    return time.perf_counter() - started, None


def _unless_hooked(model: nn.Module, compiled: Callable[..., Any]) -> Callable[..., Any]:
    """`compiled`, except while a submodule has forward hooks (probes armed on a probe step):
    then the eager forward, since dynamo does not guard on hooks added after compiling
    (``skip_nnmodule_hook_guards``) and would run the graph without calling them."""
    eager, modules = model.forward, list(model.modules())

    def forward(*args: Any, **kwargs: Any) -> Any:
        if any(m._forward_hooks or m._forward_pre_hooks for m in modules):
            return eager(*args, **kwargs)
        return compiled(*args, **kwargs)

    return forward


def uncompile(model: nn.Module) -> None:
    """Back to the eager forward (after training, or when compiling failed)."""
    model.__dict__.pop("forward", None)
