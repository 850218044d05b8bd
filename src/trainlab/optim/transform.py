"""The transform core: `Transform(init, update)` over flat lists of tensors, `chain`, `masked`.

An optimizer is a chain of small gradient transformations (optax's design, here over a flat
``list[Tensor]`` aligned with ``model.parameters()``)::

    state = t.init(params)
    updates, state = t.update(grads, state, params)
    params = [p + u for p, u in zip(params, updates)]   # updates are *added*

The learning-rate step negates (`scale_by_lr`), so "s_t = optimizer(g_t); w_{t+1} = w_t - a s_t"
(seed 000, "L2 Regularization vs Weight Decay") is literally ``chain(optimizer, scale_by_lr(a))``.

Every algorithm has one reference path (per-tensor math in a free function, out of place, lifted
over the list) and one fast path over whole lists (``torch._foreach_*``, in place on the state
buffers). Which one a factory returns is chosen once, when the transform is built, by
`use_backend` (default ``"fast"``); the two are tested equal.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor

from trainlab.optim.elementwise import scale_by_rate

Params = list[Tensor]
Updates = list[Tensor]
State = Any  # a NamedTuple of tensors / tensor lists, or a tuple of such (a chain's state)
Schedule = Callable[[int], float]  # 0-indexed step -> value
Hyper = float | Schedule  # a hyperparameter: a constant or a schedule of the step count

BACKENDS = ("fast", "reference", "compiled")
_backend = "fast"


class Knob:
    """A constant hyperparameter that can be changed between steps: torch's param-group values.

    It reads as a schedule returning the current ``value``, so the update math reads it at step
    time through `value_at` like any hyperparameter. The aliases publish theirs in
    `Transform.hyperparams`; `trainlab.optim.Optimizer` writes ``group["momentum"]``,
    ``group["betas"]``, ... into them before each step. ``settable=False`` marks a part built
    switched off (e.g. ``sgd(momentum=0)`` has no momentum buffer): it shows its value, and
    changing it is an error.
    """

    __slots__ = ("settable", "value")

    def __init__(self, value: float, *, settable: bool = True) -> None:
        self.value = float(value)
        self.settable = settable

    def __call__(self, step: int) -> float:
        return self.value

    def __repr__(self) -> str:
        return f"Knob({self.value!r}, settable={self.settable})"


Knobs = dict[str, tuple[Knob, ...]]  # torch param-group key -> its knobs ("betas" has two)


class Transform(NamedTuple):
    """A gradient transformation: ``init(params) -> state``, ``update(grads, state, params)``.

    ``hyperparams`` maps torch param-group keys (``"momentum"``, ``"betas"``, ...) to the knobs
    the update reads; empty unless the transform is a torch-named alias (`trainlab.optim.sgd`).
    """

    init: Callable[[Params], State]
    update: Callable[[Updates, State, Params], tuple[Updates, State]]
    hyperparams: Knobs = {}  # never mutated: the aliases pass their own dict


class EmptyState(NamedTuple):
    """State of a transform that keeps nothing."""


class CountState(NamedTuple):
    """State of a transform that only counts steps (to evaluate scheduled hyperparameters)."""

    count: Tensor  # int64 scalar, number of updates done so far


class LrState(NamedTuple):
    """State of `scale_by_lr` with a constant rate; `trainlab.optim.Optimizer` writes
    ``group["lr"]`` into ``lr`` before each step, so torch LR schedulers drive it."""

    count: Tensor  # int64 scalar
    lr: Tensor  # float64 scalar, the rate of the next step


class ScheduledLrState(NamedTuple):
    """State of `scale_by_lr` with a schedule; ``lr`` holds the rate used by the last step."""

    count: Tensor  # int64 scalar
    lr: Tensor  # float64 scalar


# ---------------------------------------------------------------- backend choice


@contextlib.contextmanager
def use_backend(name: str) -> Iterator[None]:
    """Build transforms inside this block with backend ``"fast"`` (foreach / in-place kernels),
    ``"reference"``, or ``"compiled"`` (opt in: as ``"fast"``, but the adam/adamw aliases run
    their elementwise math as ``torch.compile``-d passes, `trainlab.optim.compiled`; the first
    step compiles for a few seconds).

    The choice is made when a factory such as `scale_by_adam` is called, not at update time.
    """
    global _backend
    if name not in BACKENDS:
        raise ValueError(f"backend={name!r} is not one of {BACKENDS}")
    old, _backend = _backend, name
    try:
        yield
    finally:
        _backend = old


def current_backend() -> str:
    """The backend factories use right now: ``"fast"``, ``"reference"`` or ``"compiled"``."""
    return _backend


def pick(reference: Callable[..., Any], fast: Callable[..., Any]) -> Callable[..., Any]:
    """Return the update function of the current backend (used by every factory)."""
    return reference if _backend == "reference" else fast


# ---------------------------------------------------------------- hyperparameters


def zero_count() -> Tensor:
    """A fresh step counter (int64 scalar)."""
    return torch.zeros((), dtype=torch.int64)


def value_at(h: Hyper, count: Tensor | int) -> float:
    """The value of hyperparameter ``h`` at 0-indexed step ``count``."""
    if callable(h):
        return float(h(int(count)))
    return float(h)


def check_range(
    owner: str, name: str, h: Hyper, low: float, high: float, *, high_open: bool = False
) -> None:
    """Fail at once, in one line, if ``h`` (or a schedule's first value) is outside the range."""
    v = value_at(h, 0)
    bad = v < low or v > high or (high_open and v >= high) or v != v
    if bad:
        right = ")" if high_open else "]"
        raise ValueError(f"{owner}: {name}={v!r} is outside the valid range [{low}, {high}{right}")


def check_nonneg(owner: str, name: str, h: Hyper) -> None:
    """Fail at once if ``h`` is negative (one line naming the argument)."""
    check_range(owner, name, h, 0.0, float("inf"))


def check_beta(owner: str, name: str, h: Hyper) -> None:
    """Fail at once if a decay rate is outside [0, 1)."""
    check_range(owner, name, h, 0.0, 1.0, high_open=True)


# ---------------------------------------------------------------- combinators


def chain(*transforms: Transform) -> Transform:
    """Apply transforms in order; the state is the tuple of their states."""

    def init(params: Params) -> State:
        return tuple(t.init(params) for t in transforms)

    def update(grads: Updates, state: State, params: Params) -> tuple[Updates, State]:
        new_state = []
        for t, s in zip(transforms, state, strict=True):
            grads, s = t.update(grads, s, params)
            new_state.append(s)
        return grads, tuple(new_state)

    last = inplace_step(transforms[-1]) if transforms else None
    if last is None:
        return Transform(init, update)
    head = chain(*transforms[:-1])

    def inplace(grads: Updates, state: State, params: Params) -> State:
        """The links before the last as updates, then the last link's in-place step."""
        grads, head_state = head.update(grads, tuple(state[:-1]), params)
        return (*head_state, last(grads, state[-1], params))

    return Transform(init, with_inplace(update, inplace))


class Links:
    """A `chain` whose links have names (a link given as None is left out), so a fused step
    reads each link's state by name instead of by a position that shifts with optional links."""

    def __init__(self, **links: Transform | None) -> None:
        self.names = [name for name, t in links.items() if t is not None]
        self.chain = chain(*(t for t in links.values() if t is not None))

    def __contains__(self, name: str) -> bool:
        return name in self.names

    def state(self, state: State, name: str) -> Any:
        """The state of link ``name`` inside the chain's ``state``."""
        return state[self.names.index(name)]


class MaskedState(NamedTuple):
    """State of `masked`: the inner transform's state over the selected parameters only."""

    inner: State


def masked(transform: Transform, mask: Sequence[bool]) -> Transform:
    """Apply ``transform`` to the parameters where ``mask`` is True; pass the rest through.

    E.g. ``masked(add_decayed_weights(1e-4), decay_mask(model.named_parameters()))`` keeps
    biases and normalization weights out of weight decay.
    """
    mask = [bool(m) for m in mask]

    def select(xs: Sequence[Tensor]) -> list[Tensor]:
        if len(xs) != len(mask):
            raise ValueError(f"masked: mask has {len(mask)} entries but got {len(xs)} tensors")
        return [x for x, m in zip(xs, mask, strict=True) if m]

    def init(params: Params) -> State:
        return MaskedState(transform.init(select(params)))

    def update(grads: Updates, state: State, params: Params) -> tuple[Updates, State]:
        inner_updates, inner = transform.update(select(grads), state.inner, select(params))
        it = iter(inner_updates)
        out = [next(it) if m else g for g, m in zip(grads, mask, strict=True)]
        return out, MaskedState(inner)

    return Transform(init, update)


def decay_mask(named_params: Sequence[tuple[str, Tensor]] | Any) -> list[bool]:
    """True for parameters that should be decayed: False for 1-D ones (biases, norm weights)."""
    return [p.ndim > 1 for _, p in named_params]


def identity() -> Transform:
    """Pass updates through unchanged."""
    return Transform(lambda params: EmptyState(), lambda g, s, p: (list(g), s))


def with_inplace(update: Callable[..., Any], inplace: Callable[..., Any]) -> Callable[..., Any]:
    """Attach to ``update`` an in-place step ``inplace(grads, state, params) -> state`` that adds
    the same update straight into ``params`` (used by `trainlab.optim.Optimizer`)."""
    update.inplace = inplace  # type: ignore[attr-defined]
    return update


def inplace_step(transform: Transform) -> Callable[..., Any] | None:
    """The in-place step attached by `with_inplace`, or None (then use ``update`` and add)."""
    return getattr(transform.update, "inplace", None)


def apply_updates(params: Sequence[Tensor], updates: Sequence[Tensor]) -> None:
    """Add ``updates`` to ``params`` in place (without recording autograd history)."""
    with torch.no_grad():
        torch._foreach_add_(list(params), list(updates))


# ---------------------------------------------------------------- scaling


def scale(factor: Hyper) -> Transform:
    """Multiply updates by ``factor`` (a float, or a schedule of the 0-indexed step)."""

    def init(params: Params) -> State:
        return CountState(zero_count())

    def ref(grads: Updates, state: CountState, params: Params) -> tuple[Updates, CountState]:
        c = value_at(factor, state.count)
        return [g * c for g in grads], CountState(state.count + 1)

    def fast(grads: Updates, state: CountState, params: Params) -> tuple[Updates, CountState]:
        c = value_at(factor, state.count)
        state.count.add_(1)
        return torch._foreach_mul(grads, c), state

    return Transform(init, pick(ref, fast))


def lr_init(lr: Hyper) -> Callable[[Params], State]:
    """The init of `scale_by_lr` (shared with fused aliases, whose state matches the chain)."""

    def init(params: Params) -> State:
        if callable(lr):
            return ScheduledLrState(
                zero_count(), torch.tensor(value_at(lr, 0), dtype=torch.float64)
            )
        return LrState(zero_count(), torch.tensor(float(lr), dtype=torch.float64))

    return init


def lr_value(lr: Hyper, state: LrState | ScheduledLrState) -> float:
    """The rate of this step: the schedule at ``count``, or the (adapter-writable) state value."""
    if callable(lr):
        return value_at(lr, state.count)
    return float(state.lr)


def lr_advance(lr: Hyper, state: State, used: float, inplace: bool) -> State:
    """Advance `scale_by_lr`'s state after a step that used rate ``used``."""
    if inplace:
        state.count.add_(1)
        if callable(lr):
            state.lr.fill_(used)
        return state
    new_lr = torch.tensor(used, dtype=torch.float64) if callable(lr) else state.lr.clone()
    return type(state)(state.count + 1, new_lr)


def scale_by_lr(lr: Hyper) -> Transform:
    """Multiply updates by ``-lr`` (descent). ``lr`` is a float or a schedule of the step.

    With a float, the rate lives in the state (`LrState.lr`), so `trainlab.optim.Optimizer` can
    write ``param_group["lr"]`` into it before each step and torch LR schedulers work unchanged.
    With a schedule, the schedule is evaluated at the 0-indexed step count.
    """
    check_nonneg("scale_by_lr", "lr", lr)

    def ref(grads: Updates, state: State, params: Params) -> tuple[Updates, State]:
        a = lr_value(lr, state)
        return [scale_by_rate(g, a) for g in grads], lr_advance(lr, state, a, inplace=False)

    def fast(grads: Updates, state: State, params: Params) -> tuple[Updates, State]:
        a = lr_value(lr, state)
        return torch._foreach_mul(grads, -a), lr_advance(lr, state, a, inplace=True)

    return Transform(lr_init(lr), pick(ref, fast))


# ---------------------------------------------------------------- state utilities


def _is_namedtuple(x: Any) -> bool:
    return isinstance(x, tuple) and type(x) is not tuple


def find_states(state: State, cls: type) -> list[Any]:
    """All sub-states of type ``cls`` in a (nested) state, depth first."""
    if isinstance(state, cls):
        return [state]
    if isinstance(state, tuple | list):
        return [found for s in state for found in find_states(s, cls)]
    return []


def state_to_plain(state: State) -> Any:
    """Turn a state into plain dicts / lists / tensors (for ``torch.save`` and state_dict).

    NamedTuples become ``{"__type__": name, field: ...}``; tensors are cloned.
    """
    if isinstance(state, Tensor):
        return state.detach().clone()
    if _is_namedtuple(state):
        plain = {f: state_to_plain(getattr(state, f)) for f in type(state)._fields}
        return {"__type__": type(state).__name__, **plain}
    if isinstance(state, tuple | list):
        return [state_to_plain(s) for s in state]
    return state


def state_from_plain(template: State, plain: Any, where: str = "state") -> State:
    """Rebuild a state shaped like ``template`` (a fresh ``init``) from `state_to_plain` output.

    Tensors keep the template's dtype and device; a structure mismatch fails with one line.
    """
    if isinstance(template, Tensor):
        if not isinstance(plain, Tensor) or plain.shape != template.shape:
            got = tuple(plain.shape) if isinstance(plain, Tensor) else type(plain).__name__
            raise ValueError(
                f"{where}: expected a tensor of shape {tuple(template.shape)}, got {got}"
            )
        if template._base is not None:
            # A view (the packed buckets of the fast aliases): fill it, so the layout survives.
            with torch.no_grad():
                return template.copy_(plain.detach())
        return plain.detach().to(dtype=template.dtype, device=template.device).clone()
    if _is_namedtuple(template):
        name = type(template).__name__
        if not isinstance(plain, dict) or plain.get("__type__") != name:
            got = plain.get("__type__") if isinstance(plain, dict) else type(plain).__name__
            raise ValueError(f"{where}: expected {name}, got {got}")
        fields = type(template)._fields
        return type(template)(
            *(state_from_plain(getattr(template, f), plain[f], f"{where}.{f}") for f in fields)
        )
    if isinstance(template, tuple | list):
        if not isinstance(plain, list | tuple) or len(plain) != len(template):
            raise ValueError(f"{where}: expected {len(template)} entries")
        items = [
            state_from_plain(t, p, f"{where}[{i}]")
            for i, (t, p) in enumerate(zip(template, plain, strict=True))
        ]
        return tuple(items) if isinstance(template, tuple) else items
    return plain
