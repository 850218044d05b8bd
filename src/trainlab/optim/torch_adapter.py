"""`Optimizer`: the one ``torch.optim.Optimizer`` subclass; it runs any `Transform`.

    opt = Optimizer(model.parameters(), adamw(lr=1e-3))
    opt = Optimizer([{"params": decay, "transform": adamw(1e-3)},
                     {"params": no_decay, "transform": adam(1e-3)}])

How the learning rate meets torch's LR schedulers: each group's ``group["lr"]`` is the rate of
the `scale_by_lr` step inside that group's transform. If that step was built with a float, its
rate lives in the transform state (`LrState.lr`) and the adapter writes ``group["lr"]`` into it
before every step, so ``StepLR`` & co. drive it. If it was built with a schedule, the schedule
rules: ``group["lr"]`` shows the rate the last step used, and changing it from outside raises.
A ``"lr"`` given in a group dict overrides the transform's float rate. Transforms without a
`scale_by_lr` leave ``group["lr"]`` unset.

The other hyperparameters torch's optimizers keep in their groups (``momentum``, ``dampening``,
``betas``, ``eps``, ``weight_decay``, ...) appear in ``group`` when the transform publishes them
(`Transform.hyperparams`, set by the aliases) and are read at every step, as torch's optimizers
do: a scheduler writing ``group["momentum"]`` or ``group["betas"]`` (``OneCycleLR``, ``CyclicLR``)
changes the next update. Each key also enters ``defaults``, where those schedulers look for it.
A part the alias was built without (``sgd(momentum=0)`` keeps no momentum buffer) shows its
value, and changing it raises one line; a hyperparameter built as a schedule is not shown.

Flat parameters: when a group's transform has a fast in-place step (the `sgd`, `adam`, `adamw`
aliases), the small parameters of each of its buckets are moved into one flat buffer at
construction (`trainlab.optim.fused.home_params`: ``p.data`` becomes a view, same values and
layout), so the step updates them with one op. Build the optimizer after moving the model
(``.to(device)``, channels_last); moving it later is still correct, only slower. Pass
``flat_params=False`` to leave the parameters' storage alone.

Parameters whose ``.grad`` is None get a zero gradient when others in the group have one (unlike
torch.optim, which skips them); leave frozen parameters out of the optimizer. With
``torch.amp.GradScaler``, ``scaler.step(opt)`` unscales the grads, skips the step on inf/NaN,
and calls `step` as for any optimizer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor

from trainlab.optim.fused import home_params
from trainlab.optim.transform import (
    Knobs,
    LrState,
    ScheduledLrState,
    State,
    Transform,
    apply_updates,
    find_states,
    inplace_step,
    state_from_plain,
    state_to_plain,
)


class Optimizer(torch.optim.Optimizer):
    """Run a `Transform` (one shared, or one per param group under the key ``"transform"``)."""

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        transform: Transform | None = None,
        *,
        flat_params: bool = True,
    ) -> None:
        self._flat_params = flat_params
        self._states: list[State] = []
        self._lr_seen: list[float | None] = []
        self._scheduled: list[bool] = []  # group's lr comes from a schedule
        self._knobs: list[Knobs] = []  # per group: param-group key -> the transform's knobs
        self._knob_keys: set[str] = set()  # every key some group's transform publishes
        super().__init__(params, {"transform": transform})

    # ------------------------------------------------------------ groups and the lr

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group (torch API) and initialise its transform state."""
        user_lr = param_group.get("lr")
        given = set(param_group)
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        transform = group["transform"]
        if not isinstance(transform, Transform):
            raise TypeError(
                f"Optimizer: param group {len(self.param_groups) - 1} needs a Transform, "
                f"got {type(transform).__name__}"
            )
        self._add_knobs(group, transform.hyperparams, given)
        params = [p for p in group["params"]]
        if self._flat_params and inplace_step(transform) is not None:
            home_params(params)
        state = transform.init([p.detach() for p in params])
        self._states.append(state)
        lr_states = self._lr_states(len(self._states) - 1)
        if lr_states:
            if user_lr is not None:
                if isinstance(lr_states[0], ScheduledLrState):
                    raise ValueError(
                        "Optimizer: group 'lr' given but the transform's lr is a schedule"
                    )
                lr_states[0].lr.fill_(float(user_lr))
            group["lr"] = float(lr_states[0].lr)
        self._lr_seen.append(group.get("lr"))
        self._scheduled.append(bool(lr_states) and isinstance(lr_states[0], ScheduledLrState))

    def _add_knobs(self, group: dict[str, Any], knobs: Knobs, given: set[str]) -> None:
        """Show the transform's knobs in ``group`` (values the user gave win) and in defaults;
        drop keys the group inherited from defaults that its own transform does not have."""
        for key in self._knob_keys - set(knobs) - given:
            group.pop(key, None)
        for key, ks in knobs.items():
            if key not in given:
                group[key] = ks[0].value if len(ks) == 1 else tuple(k.value for k in ks)
            self.defaults.setdefault(key, group[key])
        self._knob_keys |= set(knobs)
        self._knobs.append(knobs)
        self._sync_knobs_in(len(self._knobs) - 1)  # a bad user value fails now, not at step 1

    def _sync_knobs_in(self, i: int) -> None:
        """Before a step: write the group's hyperparameters into its transform's knobs."""
        group = self.param_groups[i]
        for key, knobs in self._knobs[i].items():
            value = group[key]
            values = tuple(value) if isinstance(value, tuple | list) else (value,)
            if len(values) != len(knobs):
                raise ValueError(
                    f"Optimizer: group {i} {key} needs {len(knobs)} values, got {value!r}"
                )
            for knob, v in zip(knobs, values, strict=True):
                if v == knob.value:
                    continue
                if not knob.settable:
                    raise ValueError(
                        f"Optimizer: group {i} {key} was set to {value!r} but its transform was "
                        f"built with {key}={knob.value} (that part switched off); build it with "
                        f"a nonzero {key} to change it"
                    )
                knob.value = float(v)

    def _lr_states(self, i: int) -> list[LrState | ScheduledLrState]:
        found = find_states(self._states[i], LrState) + find_states(
            self._states[i], ScheduledLrState
        )
        if len(found) > 1:
            raise ValueError(
                f"Optimizer: group {i} has {len(found)} scale_by_lr steps; the adapter drives one"
            )
        return found

    def _sync_lr_in(self, i: int) -> None:
        """Before a step: write group["lr"] into the transform (if it was changed)."""
        group, seen = self.param_groups[i], self._lr_seen[i]
        if seen is None or group["lr"] == seen:
            return
        (lr_state,) = self._lr_states(i)
        if isinstance(lr_state, ScheduledLrState):
            raise ValueError(
                f"Optimizer: group {i} lr was set to {group['lr']} but its lr is a schedule; "
                "build the transform with a float lr to use torch LR schedulers"
            )
        lr_state.lr.fill_(float(group["lr"]))
        self._lr_seen[i] = group["lr"]

    def _sync_lr_out(self, i: int) -> None:
        """After a step: show a scheduled rate in group["lr"]."""
        if self._scheduled[i]:
            (lr_state,) = self._lr_states(i)
            self.param_groups[i]["lr"] = self._lr_seen[i] = float(lr_state.lr)

    # ------------------------------------------------------------ the step

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Run each group's transform on the current ``.grad`` and add the updates."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for i, group in enumerate(self.param_groups):
            params: list[Tensor] = group["params"]
            grads = [p.grad for p in params]
            if any(g is None for g in grads):
                if all(g is None for g in grads):
                    continue
                pairs = zip(params, grads, strict=True)
                grads = [torch.zeros_like(p) if g is None else g for p, g in pairs]
            if any(g.is_sparse for g in grads):
                raise ValueError("Optimizer: sparse gradients are not supported")
            self._sync_lr_in(i)
            self._sync_knobs_in(i)
            transform = group["transform"]
            inplace = inplace_step(transform)
            if inplace is not None:
                self._states[i] = inplace(grads, self._states[i], params)
            else:
                updates, self._states[i] = transform.update(grads, self._states[i], params)
                apply_updates(params, updates)
            self._sync_lr_out(i)
        return loss

    # ------------------------------------------------------------ checkpoints

    def transform_state(self, group: int = 0) -> State:
        """The transform state of a param group (NamedTuples of tensors)."""
        return self._states[group]

    def state_dict(self) -> dict[str, Any]:
        """Plain-data state: transform states (dicts/lists of tensors) and group settings."""
        groups = []
        start = 0
        for g in self.param_groups:
            n = len(g["params"])
            entry = {k: v for k, v in g.items() if k not in ("params", "transform")}
            entry["params"] = list(range(start, start + n))
            groups.append(entry)
            start += n
        return {
            "state": {i: state_to_plain(s) for i, s in enumerate(self._states)},
            "param_groups": groups,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore from `state_dict`; transform states are rebuilt on fresh ``init`` templates."""
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(
                f"load_state_dict: {len(saved_groups)} saved groups, optimizer has "
                f"{len(self.param_groups)}"
            )
        for i, (group, saved) in enumerate(zip(self.param_groups, saved_groups, strict=True)):
            if len(saved["params"]) != len(group["params"]):
                raise ValueError(f"load_state_dict: group {i} parameter count differs")
            template = group["transform"].init([p.detach() for p in group["params"]])
            self._states[i] = state_from_plain(template, state_dict["state"][i], f"group{i}")
            for k, v in saved.items():
                if k != "params":
                    group[k] = v
            # The next step writes the restored group["lr"] into the state if they differ.
            self._lr_seen[i] = float(self._lr_states(i)[0].lr) if "lr" in group else None
