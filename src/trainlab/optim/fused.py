"""The fast path of `sgd`, `adam`, `adamw` (and of `trace`, `scale_by_adam`): in-place kernels
over buckets, one op per bucket instead of one per tensor (memory-bound at large sizes,
dispatch-bound at small ones).

* **Buckets** (`bucket_runs`): a tensor of at least `SMALL` elements is its own bucket; runs of
  smaller ones (same dtype and device) share buckets of up to `BUCKET` elements, whose state
  buffers are views of one flat tensor (`pack_state`); gradients are gathered into a flat
  scratch buffer with one ``_foreach_copy_``. Scratch is allocated once per `Plan`, never per
  step; hyperparameters are Python floats.
* **Flat parameters** (`home_params`): `trainlab.optim.Optimizer` also moves each packed
  bucket's parameters into one buffer (their ``.data`` become views, same values and layout,
  as FSDP's flat parameters), so the step adds into a bucket with one op. If something moved
  them later (``model.to(...)``), that bucket takes per-tensor ops: slower, same result.
* **Targets**: a kernel adds its update into ``targets``, the parameters (in-place step) or
  zeros (functional ``update``). Packed views keep each tensor's dense layout (contiguous,
  channels_last), so a flat op pairs the same elements in every list.

The math is `trainlab.optim.elementwise`'s, rearranged for fewer passes; tested equal to the
reference chains (``tests/optim/test_fast_vs_reference.py``) and to torch.optim.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from trainlab.optim import compiled as compiled_ops
from trainlab.optim.transform import Transform, with_inplace

SMALL = 1 << 16  # tensors with fewer elements than this are packed into shared buckets
BUCKET = 1 << 20  # most elements in one packed bucket


def bucket_runs(params: Sequence[Tensor]) -> list[tuple[int, int]]:
    """Index ranges ``[lo, hi)`` of the buckets (see the module docstring)."""
    runs: list[tuple[int, int]] = []
    lo, total = 0, 0
    for i, p in enumerate(params):
        n = p.numel()
        if i > lo:
            head = params[lo]
            join = (
                n < SMALL
                and head.numel() < SMALL
                and total + n <= BUCKET
                and (p.dtype, p.device) == (head.dtype, head.device)
            )
            if not join:
                runs.append((lo, i))
                lo, total = i, 0
        total += n
    if params:
        runs.append((lo, len(params)))
    return runs


def _packed_like(xs: Sequence[Tensor]) -> list[Tensor]:
    """Copies of ``xs`` whose packed buckets are views of one flat tensor each."""
    out: list[Tensor] = []
    for lo, hi in bucket_runs(xs):
        if hi - lo == 1:
            out.append(xs[lo].clone())
            continue
        sizes = [x.numel() for x in xs[lo:hi]]
        flat = torch.empty(sum(sizes), dtype=xs[lo].dtype, device=xs[lo].device)
        views = _views(flat, xs[lo:hi])
        torch._foreach_copy_(views, list(xs[lo:hi]))
        out += views
    return out


def pack_state(state: Any, params: Sequence[Tensor]) -> Any:
    """Return ``state`` with every per-parameter tensor list repacked by buckets (same values,
    same structure); used by the fast ``init`` of the aliases."""
    if _per_param(state, params):
        return _packed_like(state)
    if isinstance(state, tuple) and type(state) is not tuple:  # a NamedTuple
        return type(state)(*(pack_state(s, params) for s in state))
    if isinstance(state, tuple):
        return tuple(pack_state(s, params) for s in state)
    return state


def _per_param(state: Any, params: Sequence[Tensor]) -> bool:
    """True for a non-empty list of tensors shaped like ``params``."""
    if not (isinstance(state, list) and state and len(state) == len(params)):
        return False
    pairs = zip(state, params, strict=True)
    return all(isinstance(x, Tensor) and x.shape == p.shape for x, p in pairs)


class Bucket:
    """One bucket of a plan: ``lo:hi`` and, if packed, flat views of each state list."""

    __slots__ = ("lo", "hi", "flats", "grad", "grad_views", "tmp", "tmp_views", "pflat", "pptrs")

    def __init__(self, lo: int, hi: int, flats: list[Tensor] | None) -> None:
        self.lo, self.hi, self.flats = lo, hi, flats
        self.grad: Tensor | None = None  # packed: flat gradient scratch
        self.grad_views: list[Tensor] = []
        self.tmp: Tensor | None = None  # flat (packed) or shaped (single) scratch
        self.tmp_views: list[Tensor] = []
        self.pflat: Tensor | None = None  # packed, params homed: flat view of the parameters
        self.pptrs: list[int] = []  # their data pointers when the plan was made

    def param_flat(self, params: Sequence[Tensor]) -> Tensor | None:
        """The flat view of this bucket's parameters if they still live in it, else None."""
        if self.pflat is None or [p.data_ptr() for p in params[self.lo : self.hi]] != self.pptrs:
            return None
        return self.pflat


def is_dense(x: Tensor) -> bool:
    """True if ``x`` fills its memory span exactly (contiguous, channels_last or any permuted
    dense layout): its strides, sorted, are running products of the sizes."""
    expect = 1
    for stride, size in sorted(zip(x.stride(), x.shape, strict=True)):
        if size != 1 and stride != expect:
            return False
        expect *= size
    return True


def _dense_view(segment: Tensor, like: Tensor) -> Tensor:
    """``segment`` (1-D, ``like.numel()`` elements) seen with ``like``'s shape and, if that is
    dense, its memory layout."""
    if is_dense(like):
        return segment.as_strided(like.shape, like.stride())
    return segment.view(like.shape)


def home_params(params: Sequence[Tensor]) -> None:
    """Move the parameters of each packed bucket (`bucket_runs`) into one flat buffer: their
    ``.data`` become views of it with the same values and memory layout (FSDP's flat-parameter
    idea), so the in-place step updates the bucket with one op. Buckets already flat, or with a
    tensor that is not dense, are left alone."""
    with torch.no_grad():
        for lo, hi in bucket_runs(params):
            ps = list(params[lo:hi])
            if hi - lo < 2 or not all(is_dense(p) for p in ps) or _flat_view(ps) is not None:
                continue
            flat = torch.empty(sum(p.numel() for p in ps), dtype=ps[0].dtype, device=ps[0].device)
            views = _views(flat, ps)
            torch._foreach_copy_(views, [p.detach() for p in ps])
            for p, v in zip(ps, views, strict=True):
                p.data = v


def _flat_view(xs: Sequence[Tensor]) -> Tensor | None:
    """A 1-D view covering ``xs`` if they are dense, adjacent views of one storage."""
    first = xs[0]
    if not all(is_dense(x) for x in xs):
        return None
    storage, size = first.untyped_storage().data_ptr(), first.element_size()
    pos = first.data_ptr()
    for x in xs:
        if x.untyped_storage().data_ptr() != storage or x.data_ptr() != pos:
            return None
        pos += x.numel() * size
    total = sum(x.numel() for x in xs)
    return first.as_strided((total,), (1,), first.storage_offset())


class Plan:
    """Buckets and scratch buffers for one state (found by the identity of its lists)."""

    def __init__(self, params: Sequence[Tensor], lists: Sequence[list[Tensor]]) -> None:
        self.lists = list(lists)  # kept to check identity
        self.buckets: list[Bucket] = []
        for lo, hi in bucket_runs(params):
            flats = [_flat_view(lst[lo:hi]) for lst in lists] if hi - lo > 1 else None
            if flats is None or _packed_alike(params, lists, lo, hi, flats):
                self.buckets.append(Bucket(lo, hi, flats))  # type: ignore[arg-type]
            else:  # not packed: one tensor at a time
                self.buckets += [Bucket(i, i + 1, None) for i in range(lo, hi)]
        shaped = [p for b in self.buckets if b.flats is None for p in params[b.lo : b.hi]]
        largest = max((p.numel() for p in shaped), default=0)
        one = {}  # one shared scratch per dtype/device for all single-tensor buckets
        for b in self.buckets:
            ps = params[b.lo : b.hi]
            if b.flats is not None:
                n = sum(p.numel() for p in ps)
                b.grad = torch.empty(n, dtype=ps[0].dtype, device=ps[0].device)
                b.tmp = torch.empty_like(b.grad)
                b.grad_views = _views(b.grad, ps)
                b.tmp_views = _views(b.tmp, ps)
                b.pflat = _flat_view(ps)
                b.pptrs = [p.data_ptr() for p in ps]
            else:
                key = (ps[0].dtype, ps[0].device)
                if key not in one:
                    one[key] = torch.empty(largest, dtype=key[0], device=key[1])
                b.tmp = one[key][: ps[0].numel()].view(ps[0].shape)

    def matches(self, lists: Sequence[list[Tensor]]) -> bool:
        return len(lists) == len(self.lists) and all(
            a is b for a, b in zip(lists, self.lists, strict=True)
        )


def _packed_alike(
    params: Sequence[Tensor], lists: Sequence[list[Tensor]], lo: int, hi: int, flats: list
) -> bool:
    """True if every state list of ``lo:hi`` is packed (``flats``) in the parameters' layouts,
    so one flat op pairs the same elements in each (scratch buffers are made that way)."""
    if not all(f is not None for f in flats):
        return False
    pairs = [(x, p) for lst in lists for x, p in zip(lst[lo:hi], params[lo:hi], strict=True)]
    return all(x.stride() == p.stride() for x, p in pairs)


def _views(flat: Tensor, like: Sequence[Tensor]) -> list[Tensor]:
    """Consecutive segments of ``flat`` shaped (and laid out) like ``like``."""
    sizes = [p.numel() for p in like]
    return [_dense_view(v, p) for v, p in zip(flat.split(sizes), like, strict=True)]


class PlanCache:
    """A few plans per transform, keyed by the identity of the state's tensor lists."""

    def __init__(self, size: int = 8) -> None:
        self.plans: list[Plan] = []
        self.size = size

    def get(self, params: Sequence[Tensor], lists: Sequence[list[Tensor]]) -> Plan:
        for plan in self.plans:
            if plan.matches(lists):
                return plan
        plan = Plan(params, lists)
        self.plans = [plan, *self.plans[: self.size - 1]]
        return plan


# ---------------------------------------------------------------- kernels


def _whole(b: Bucket, xs: list[Tensor], params: list[Tensor]) -> Tensor | None:
    """``xs[b.lo:b.hi]`` as one tensor: the tensor itself for a single bucket, the flat view of
    the homed parameters when ``xs`` are the parameters, else None (use per-tensor views)."""
    if b.flats is None:
        return xs[b.lo]
    return b.param_flat(params) if xs is params else None


def _gradient(b: Bucket, grads: list[Tensor], params: list[Tensor], l2: float) -> Tensor:
    """The bucket's gradient plus ``l2 * params``: a scratch buffer when it had to be written
    (packed buckets always: their gradients are gathered into one flat buffer)."""
    lo, hi = b.lo, b.hi
    if b.flats is None:
        g = grads[lo]
        return torch.add(g, params[lo], alpha=l2, out=b.tmp) if l2 else g
    torch._foreach_copy_(b.grad_views, grads[lo:hi])
    if l2:
        _axpy(b.grad, b.grad_views, b.param_flat(params), params[lo:hi], l2)
    assert b.grad is not None
    return b.grad


def _state(b: Bucket, xs: list[Tensor], k: int) -> Tensor:
    """State list ``xs`` (the plan's ``k``-th) over the bucket: its flat view, or the tensor."""
    return xs[b.lo] if b.flats is None else b.flats[k]


def _views_of(b: Bucket, x: Tensor, state_views: list[Tensor]) -> list[Tensor]:
    """A bucket-wide tensor ``x`` as per-tensor views (the fallback when the target is not one
    tensor): the plan's views of its scratch buffers, or ``state_views`` for a state's flat."""
    if b.flats is None:
        return [x]
    return b.grad_views if x is b.grad else b.tmp_views if x is b.tmp else state_views


def adam_kernel(
    plan: Plan, targets: list[Tensor], grads: list[Tensor], params: list[Tensor],
    mu: list[Tensor], nu: list[Tensor], nu_max: list[Tensor], *, b1: float, b2: float,
    eps: float, c1: float, c2: float, lr: float, l2: float = 0.0, wd: float = 0.0,
    compiled: bool = False,
) -> None:  # fmt: skip
    """``targets += -lr * (adam_direction(m, v) + wd * params)`` after the moment updates of
    ``g + l2 * params`` (`trainlab.optim.elementwise`; ``nu_max`` empty unless amsgrad).

    In place, one op per bucket, with ``(m/c1) / (sqrt(v)/c2 + eps) = (c2/c1) * m / (sqrt(v) +
    eps*c2)`` to save a pass; the decoupled decay is applied as torch's AdamW does,
    ``p *= 1 - lr*wd`` first. ``lr = -1`` with zero ``targets`` gives the bare direction
    (`scale_by_adam`). ``compiled``: the big tensors may take one compiled pass instead.
    """
    ams = bool(nu_max)
    buckets = plan.buckets
    if targets is params:
        lists = (params, grads, mu, nu, nu_max if ams else nu)
        hyper = [b1, b2, eps, l2, wd, lr, c1, c2]
        flags = (ams, bool(l2), bool(wd))
        buckets = compiled_pass(plan, compiled, "adam", lists, hyper, *flags)
    step, decay = lr * c2 / c1, lr * wd
    for b in buckets:
        g = _gradient(b, grads, params, l2)
        m, v = _state(b, mu, 0), _state(b, nu, 1)
        v_hat = _state(b, nu_max, 2) if ams else v
        m.lerp_(g, 1.0 - b1)
        v.mul_(b2).addcmul_(g, g, value=1.0 - b2)
        if ams:
            torch.maximum(v_hat, v, out=v_hat)
        denom = torch.sqrt(v_hat, out=b.tmp).add_(eps * c2)
        t = _whole(b, targets, params)
        if decay:
            if targets is params:
                _scale(t, targets[b.lo : b.hi], 1.0 - decay)
            else:
                _axpy(
                    t, targets[b.lo : b.hi], _whole(b, params, params), params[b.lo : b.hi], -decay
                )
        if t is not None:
            t.addcdiv_(m, denom, value=-step)
        else:
            ms, ds = mu[b.lo : b.hi], _views_of(b, denom, [])
            torch._foreach_addcdiv_(targets[b.lo : b.hi], ms, ds, value=-step)


def _axpy(
    dst: Tensor | None,
    dst_views: list[Tensor],
    src: Tensor | None,
    src_views: list[Tensor],
    alpha: float,
) -> None:
    """``dst += alpha * src``: one op when both sides are whole tensors (a single bucket's tensor,
    a flat buffer), else one per view (e.g. parameters that are not homed)."""
    if dst is not None and src is not None:
        dst.add_(src, alpha=alpha)
    else:
        torch._foreach_add_(dst_views, src_views, alpha=alpha)


def _scale(dst: Tensor | None, dst_views: list[Tensor], factor: float) -> None:
    """``dst *= factor``, one op if ``dst`` is one tensor, else one per view."""
    if dst is not None:
        dst.mul_(factor)
    else:
        torch._foreach_mul_(dst_views, factor)


def compiled_pass(
    plan: Plan,
    forced: bool,
    kernel: str,
    lists: Sequence[list[Tensor]],
    hyper: list[float],
    *flags: bool,
) -> list[Bucket]:
    """Run the compiled ``kernel`` (`trainlab.optim.compiled`) over the plan's single-tensor
    buckets whose tensors (params, grads, state; ``lists``) share one dense layout, in place on
    the parameters, if ``forced`` or they hold at least ``compiled_ops.AUTO_MIN`` elements.
    Returns the buckets left for the eager kernels."""
    singles = [b for b in plan.buckets if b.flats is None]
    big = sum(lists[0][b.lo].numel() for b in singles)
    if not singles or not (forced or big >= compiled_ops.AUTO_MIN):
        return plan.buckets
    flat: dict[torch.dtype, tuple[list[list[Tensor]], set[int]]] = {}
    for b in singles:
        views = flat_views(*(lst[b.lo] for lst in lists))
        if views is not None:
            cols, los = flat.setdefault(views[0].dtype, ([[] for _ in lists], set()))
            for col, v in zip(cols, views, strict=True):
                col.append(v)
            los.add(b.lo)
    done: set[int] = set()  # only the dtypes whose compiled call ran (a failure modifies nothing)
    for dtype, (cols, los) in flat.items():
        if compiled_ops.run(kernel, *cols, torch.tensor(hyper, dtype=dtype), *flags):
            done |= los
    return [b for b in plan.buckets if b.flats is not None or b.lo not in done]


def flat_views(*xs: Tensor) -> list[Tensor] | None:
    """1-D views of same-shaped tensors with one dense memory layout (contiguous, channels_last,
    ...), element i of each the same logical element; None if the layouts differ."""
    first = xs[0]
    if not all(x.stride() == first.stride() for x in xs):
        return None
    if first.is_contiguous():
        return [x.view(-1) for x in xs]
    if not is_dense(first):
        return None
    return [x.as_strided((x.numel(),), (1,), x.storage_offset()) for x in xs]


def sgd_kernel(
    plan: Plan, targets: list[Tensor], grads: list[Tensor], params: list[Tensor],
    trace: list[Tensor], *, lr: float, l2: float, momentum: float, dampening: float,
    nesterov: bool, first: bool, compiled: bool = False,
) -> None:  # fmt: skip
    """``targets += -lr * d`` with ``d`` the heavy-ball / Nesterov output of ``g + l2 * params``
    (`trainlab.optim.elementwise.trace_step`; ``trace`` empty: plain SGD). In place, one op
    per bucket; ``lr = -1`` with zero ``targets`` gives the bare output (`trace`).
    ``compiled``: the big tensors may take one compiled pass instead."""
    buckets = plan.buckets
    if trace and targets is params:
        hyper = [lr, l2, momentum, 0.0 if first else dampening]
        lists = (params, grads, trace)
        buckets = compiled_pass(plan, compiled, "sgd", lists, hyper, nesterov, bool(l2))
    for b in buckets:
        g = _gradient(b, grads, params, l2)
        d = g
        if trace:
            buf = _state(b, trace, 0)
            if first:
                buf.copy_(g)
            elif dampening == 0.0:
                torch.add(g, buf, alpha=momentum, out=buf)
            else:
                buf.mul_(momentum).add_(g, alpha=1.0 - dampening)
            scratch = b.tmp if g is grads[b.lo] else g  # never write into a gradient
            d = torch.add(g, buf, alpha=momentum, out=scratch) if nesterov else buf
        t = _whole(b, targets, params)
        _axpy(
            t,
            targets[b.lo : b.hi],
            d,
            _views_of(b, d, trace[b.lo : b.hi]) if t is None else [],
            -lr,
        )


Step = Callable[[list[Tensor], list[Tensor], Any, list[Tensor]], Any]


def fast_transform(init: Callable[[list[Tensor]], Any], step: Step) -> Transform:
    """A `Transform` from ``step(targets, grads, state, params) -> state`` (a kernel call that
    adds the update into ``targets``): ``update`` adds into zeros and returns them; the in-place
    step that `trainlab.optim.Optimizer` uses adds straight into the parameters."""

    def packed_init(params: list[Tensor]) -> Any:
        return pack_state(init(params), params)

    def update(grads: list[Tensor], state: Any, params: list[Tensor]) -> tuple[list[Tensor], Any]:
        targets = [torch.zeros_like(p) for p in params]
        return targets, step(targets, list(grads), state, list(params))

    def inplace(grads: list[Tensor], state: Any, params: list[Tensor]) -> Any:
        return step(params, grads, state, params)

    return Transform(packed_init, with_inplace(update, inplace))
