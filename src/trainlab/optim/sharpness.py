"""Sharpness-aware minimization: `SAM`, one two-pass wrapper around any base optimizer, with
pluggable perturbation policies (`trainlab.optim.sam_policies`: SAM, ASAM, EG-/OG-/AO-SAM).

One step (Foret et al., ICLR 2021, Algorithm 1, generalised by the policy)::

    pass 1 at w:    g = grad L(w)            (BatchNorm statistics update here; no DDP all-reduce)
    policy:         e = perturb(g)           (None: skip pass 2 and descend with g)
    pass 2 at w+e:  g^ = grad L(w + e)       (running statistics frozen; DDP all-reduces)
    restore w exactly, then base step with g^ (clipped, if asked, only here)

Usage (the closure recomputes the loss and calls ``backward``; SAM zeroes the gradients before
each pass, so the closure need not)::

    opt = SAM(model.parameters(), adamw(1e-3), og_sam_policy(rho=0.05), model=model)

    def closure():
        loss = loss_fn(model(x), y)
        loss.backward()
        return loss

    loss = opt.step(closure)       # returns the loss of pass 1

With mixed precision, give SAM the scaler and let it do the scaler's whole step; the closure
only scales the loss. Do not call ``scaler.step`` or ``scaler.update`` yourself, and do not clip
in the closure (that would clip the perturbation pass too; pass ``max_grad_norm`` or put
``clip_by_global_norm`` in the base transform)::

    scaler = torch.amp.GradScaler("cuda")
    opt = SAM(model.parameters(), sgd(0.1, momentum=0.9), model=model, scaler=scaler,
              max_grad_norm=1.0)

    def closure():
        with torch.autocast("cuda", dtype=torch.float16):
            loss = loss_fn(model(x), y)
        scaler.scale(loss).backward()
        return loss

    opt.step(closure)   # unscale pass 1 -> perturb -> pass 2 -> unscale -> clip -> step -> update

If either pass has an inf/NaN gradient, the step is skipped (weights, base and policy state
unchanged; an inf in pass 1 also skips pass 2) and the scaler lowers its scale.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch
from torch import Tensor
from torch.nn.parallel import DistributedDataParallel

from trainlab.optim.sam_policies import SamPolicy, sam_policy
from trainlab.optim.torch_adapter import Optimizer
from trainlab.optim.transform import (
    State,
    Transform,
    apply_updates,
    state_from_plain,
    state_to_plain,
)


@contextlib.contextmanager
def bn_frozen(model: torch.nn.Module | None) -> Iterator[None]:
    """Leave ``model``'s buffers as they were on entry when the block exits.

    Buffers hold the state a forward pass carries over: BatchNorm's ``running_mean``,
    ``running_var`` and ``num_batches_tracked``, InstanceNorm's with ``track_running_stats``,
    and those of custom layers such as Batch Renorm. SAM runs its second pass inside this block
    so running statistics see each batch once, at the unperturbed weights (a bug class of public
    SAM implementations). ``None`` does nothing.
    """
    if model is None:
        yield
        return
    buffers = list(model.buffers())
    saved = [b.detach().clone() for b in buffers]
    try:
        yield
    finally:
        with torch.no_grad():
            for b, s in zip(buffers, saved, strict=True):
                b.copy_(s)


def _all_finite(grads: list[Tensor]) -> bool:
    return bool(torch.stack(torch._foreach_norm(grads)).isfinite().all()) if grads else True


class SAM(torch.optim.Optimizer):
    """Two-pass sharpness-aware step around a base optimizer (Foret et al., ICLR 2021).

    ``base`` is a `Transform` (run over ``params`` by `trainlab.optim.Optimizer`) or an already
    built ``torch.optim.Optimizer`` (then ``params`` must be None). SAM shares the base's
    ``param_groups``, so torch LR schedulers and ``zero_grad`` act on it directly. ``policy``
    chooses the perturbation (default `sam_policy(rho=0.05)`); it sees all parameters of all
    groups as one flat list. ``model`` (optional, may be DDP-wrapped) lets SAM keep its buffers
    (BatchNorm statistics) to the first pass, via `bn_frozen`, and skip the gradient all-reduce
    of the first pass under DistributedDataParallel (``model.no_sync()``) unless the policy may
    descend with the first gradient. ``scaler`` is a ``torch.amp.GradScaler`` driven by `step`
    (see the module docstring). ``max_grad_norm`` clips the descent gradient by global norm, as
    ``torch.nn.utils.clip_grad_norm_``, after unscaling and never in the perturbation pass.
    After each step, ``last_two_pass`` tells whether it evaluated a second gradient (AO-SAM's
    gate may skip it).
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]] | None,
        base: Transform | torch.optim.Optimizer,
        policy: SamPolicy | None = None,
        *,
        model: torch.nn.Module | None = None,
        scaler: torch.amp.GradScaler | None = None,
        max_grad_norm: float | None = None,
    ) -> None:
        if isinstance(base, torch.optim.Optimizer):
            if params is not None:
                raise ValueError("SAM: params must be None when base is an optimizer (it has them)")
            self.base = base
        elif isinstance(base, Transform):
            if params is None:
                raise ValueError("SAM: params is required when base is a Transform")
            self.base = Optimizer(params, base)
        else:
            raise TypeError(
                "SAM: base must be a Transform or a torch.optim.Optimizer, "
                f"got {type(base).__name__}"
            )
        if max_grad_norm is not None and not max_grad_norm > 0:
            raise ValueError(f"SAM: max_grad_norm={max_grad_norm!r} must be > 0 or None")
        self.policy = sam_policy() if policy is None else policy
        if not isinstance(self.policy, SamPolicy):
            raise TypeError(f"SAM: policy must be a SamPolicy, got {type(policy).__name__}")
        self.model = model
        self.scaler = scaler
        self.max_grad_norm = max_grad_norm
        self.last_two_pass = False  # whether the latest step evaluated a second gradient
        super().__init__(self.base.param_groups, {})  # torch's bookkeeping (hooks, state)
        self.param_groups = self.base.param_groups  # one shared list of the base's groups
        self._policy_state = self.policy.init([p.detach() for p in self._params()])

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a param group to the base optimizer (torch API). The policy state is rebuilt."""
        if any(param_group is g for g in self.base.param_groups):
            super().add_param_group(param_group)  # torch's __init__ registering a base group
            return
        self.base.add_param_group(param_group)
        self._policy_state = self.policy.init([p.detach() for p in self._params()])

    def _params(self) -> list[Tensor]:
        return [p for g in self.param_groups for p in g["params"]]

    @staticmethod
    def _grads(params: list[Tensor]) -> list[Tensor]:
        return [torch.zeros_like(p) if p.grad is None else p.grad for p in params]

    def _pass(self, closure: Callable[[], Any], sync: bool, frozen: bool) -> Any:
        """Zero the grads and run the closure with grad enabled (as torch's LBFGS does)."""
        self.zero_grad(set_to_none=True)
        ddp = self.model if isinstance(self.model, DistributedDataParallel) else None
        no_sync = ddp.no_sync() if ddp is not None and not sync else contextlib.nullcontext()
        keep = bn_frozen(self.model) if frozen else contextlib.nullcontext()
        with torch.enable_grad(), no_sync, keep:
            return closure()

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:  # type: ignore[override]
        """One SAM step; returns the closure's loss at the unperturbed weights (pass 1)."""
        if closure is None:
            raise ValueError(
                "SAM.step: closure is required (a callable that computes the loss, calls "
                "backward() and returns the loss), got None"
            )
        scaling = self.scaler is not None and self.scaler.is_enabled()
        params = self._params()
        loss = self._pass(closure, sync=self.policy.sync_first, frozen=False)
        grads = self._grads(params)
        if scaling:
            self.scaler.unscale_(self)  # pass 1's inf check is recorded under SAM's own id
            if not _all_finite(grads):
                self.scaler.update()
                self.last_two_pass = False
                return loss
        lr = self.param_groups[0].get("lr")
        offsets, pending = self.policy.perturb(grads, self._policy_state, params, lr)
        self.last_two_pass = offsets is not None
        if offsets is not None:
            saved = [p.detach().clone() for p in params]
            apply_updates(params, offsets)
            try:
                self._pass(closure, sync=True, frozen=True)
            finally:
                torch._foreach_copy_(params, saved)  # exact restore, even if pass 2 failed
            if scaling:
                self.scaler.unscale_(self.base)
            grads = self._grads(params)
        if scaling and not _all_finite(grads):
            self.scaler.update()
            return loss
        if self.max_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(params, self.max_grad_norm)
        self.base.step()
        if scaling:
            self.scaler.update()
        self._policy_state = self.policy.record(self._grads(params), pending)
        return loss

    # ------------------------------------------------------------ state

    def policy_state(self) -> State:
        """The perturbation policy's state (NamedTuples of tensors)."""
        return self._policy_state

    def state_dict(self) -> dict[str, Any]:
        """The base optimizer's state_dict and the policy state, as plain data."""
        return {"base": self.base.state_dict(), "policy": state_to_plain(self._policy_state)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore both parts of `state_dict`; a policy mismatch fails with one line."""
        template = self.policy.init([p.detach() for p in self._params()])
        policy_state = state_from_plain(template, state_dict["policy"], "SAM policy")
        self.base.load_state_dict(state_dict["base"])
        self._policy_state = policy_state
