"""The fast path of the `sgd`, `adam` and `adamw` aliases: in-place kernels over buckets.

The step of these aliases is memory-bound at large sizes and dispatch-bound at small ones, so
the fast path does two things:

* **Buckets.** Parameters are split once into buckets: a tensor of at least `SMALL` elements is
  its own bucket; runs of smaller ones (same dtype and device) are packed into buckets of up to
  `BUCKET` elements. The state buffers of a packed bucket are views of one flat tensor
  (`pack_state`, used by the fast ``init``), so each elementwise step is *one* op per bucket
  instead of one per tensor; the gradients are copied into a flat scratch buffer with one
  ``_foreach_copy_`` and the result goes back with one ``_foreach_add_``.
* **No temporaries.** Every op is in place on the state or on scratch buffers allocated once per
  plan (never per step); hyperparameters are Python floats; the only host reads are the step
  count and the learning rate (0-dim CPU tensors).

A kernel writes into ``targets``: the parameters themselves when `trainlab.optim.Optimizer` runs
the in-place step (`inplace_step`), or zero tensors when the transform's ``update`` is called
functionally (the update is then ``targets``). Same kernel, same arithmetic; tested equal to the
reference chains in ``tests/optim/test_fast_vs_reference.py`` and to torch.optim.

* **Flat parameters.** `trainlab.optim.Optimizer` also moves the parameters of each packed
  bucket into one flat buffer (`home_params`: their ``.data`` become views of it, same values,
  same memory layout, as FSDP's flat parameters do), so the in-place step adds into a whole
  bucket with one op instead of one per tensor. Every step checks that the parameters still
  live there (``data_ptr``); if something moved them (``model.to(...)`` after building the
  optimizer), that bucket takes the per-tensor ops: slower, same result.

Packed views keep each tensor's own dense memory layout (contiguous, channels_last, ...), so a
flat op over a bucket pairs the same logical elements in every list. A state that is not packed
(e.g. one built by the reference backend), or whose layouts differ from the parameters', still
works: such buckets fall back to one op per tensor.
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


def adam_kernel(
    plan: Plan,
    targets: list[Tensor],
    grads: list[Tensor],
    params: list[Tensor],
    mu: list[Tensor],
    nu: list[Tensor],
    nu_max: list[Tensor],
    *,
    b1: float,
    b2: float,
    eps: float,
    l2: float,
    decay: float,
    step: float,
    compiled: bool = False,
) -> None:
    """``targets += -step * m / (sqrt(v) + eps) - decay * params`` after the moment updates.

    ``step = lr * c2 / c1`` and ``eps`` already times ``c2`` (bias corrections folded in);
    ``l2`` is added to the gradient first (coupled L2). ``nu_max`` is empty unless amsgrad.
    ``compiled``: the big tensors may take one compiled pass (`compiled_pass`).
    """
    ams = bool(nu_max)
    buckets = plan.buckets
    if targets is params:
        lists = (params, grads, mu, nu, nu_max if ams else nu)
        hyper = [1.0 - b1, b2, 1.0 - b2, eps, l2, decay, step]
        buckets = compiled_pass(plan, compiled, "adam", lists, hyper, ams, bool(l2))
    for b in buckets:
        lo, hi = b.lo, b.hi
        tmp = b.tmp
        assert tmp is not None
        pf = b.param_flat(params) if b.flats is not None else None
        if b.flats is not None:
            g = b.grad
            assert g is not None
            torch._foreach_copy_(b.grad_views, grads[lo:hi])
            if l2:
                _axpy(g, b.grad_views, pf, params[lo:hi], l2)
            m, v = b.flats[0], b.flats[1]
            v_hat = b.flats[2] if ams else v
        else:
            g = grads[lo]
            if l2:
                g = torch.add(g, params[lo], alpha=l2, out=tmp)
            m, v = mu[lo], nu[lo]
            v_hat = nu_max[lo] if ams else v
        m.lerp_(g, 1.0 - b1)
        v.mul_(b2).addcmul_(g, g, value=1.0 - b2)
        if ams:
            torch.maximum(v_hat, v, out=v_hat)
        torch.sqrt(v_hat, out=tmp).add_(eps)
        if b.flats is None:
            if decay:
                targets[lo].add_(params[lo], alpha=-decay)
            targets[lo].addcdiv_(m, tmp, value=-step)
            continue
        torch.div(m, tmp, out=tmp)
        tf = pf if targets is params else None  # the targets as one flat tensor
        if decay >= 1e-12 and targets is params:
            # (1 - decay) * p - step * d in one pass: lerp p towards -step/decay * d.
            tmp.mul_(-step / decay)
            if tf is not None:
                tf.lerp_(tmp, decay)
            else:
                torch._foreach_lerp_(targets[lo:hi], b.tmp_views, decay)
            continue
        if decay:
            _axpy(tf, targets[lo:hi], pf, params[lo:hi], -decay)
        _axpy(tf, targets[lo:hi], tmp, b.tmp_views, -step)


def _axpy(
    dst: Tensor | None,
    dst_views: list[Tensor],
    src: Tensor | None,
    src_views: list[Tensor],
    alpha: float,
) -> None:
    """``dst += alpha * src`` over a packed bucket: one op when both sides are available as flat
    tensors (``dst``, ``src``: the homed parameters may not be), else one per tensor."""
    if dst is not None and src is not None:
        dst.add_(src, alpha=alpha)
    else:
        torch._foreach_add_(dst_views, src_views, alpha=alpha)


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
    flat: dict[torch.dtype, list[list[Tensor]]] = {}
    done: set[int] = set()
    for b in singles:
        views = flat_views(*(lst[b.lo] for lst in lists))
        if views is not None:
            cols = flat.setdefault(views[0].dtype, [[] for _ in lists])
            for col, v in zip(cols, views, strict=True):
                col.append(v)
            done.add(b.lo)
    for dtype, cols in flat.items():
        h = torch.tensor(hyper, dtype=dtype)
        if not compiled_ops.run(kernel, *cols, h, *flags):
            return plan.buckets  # nothing was modified: all eager
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
    plan: Plan,
    targets: list[Tensor],
    grads: list[Tensor],
    params: list[Tensor],
    trace: list[Tensor],
    *,
    lr: float,
    l2: float,
    momentum: float,
    dampening: float,
    nesterov: bool,
    first: bool,
    compiled: bool = False,
) -> None:
    """SGD with coupled L2 and heavy-ball / Nesterov momentum (``trace`` empty if none);
    ``compiled``: the big tensors may take one compiled pass (`compiled_pass`)."""
    buckets = plan.buckets
    if trace and targets is params:
        hyper = [lr, l2, momentum, 1.0 - dampening, float(first)]
        lists = (params, grads, trace)
        buckets = compiled_pass(plan, compiled, "sgd", lists, hyper, nesterov, bool(l2))
    for b in buckets:
        lo, hi = b.lo, b.hi
        tmp = b.tmp
        assert tmp is not None
        packed = b.flats is not None
        pf = b.param_flat(params) if packed else None
        if packed:
            g = b.grad
            assert g is not None
            torch._foreach_copy_(b.grad_views, grads[lo:hi])
            if l2:
                _axpy(g, b.grad_views, pf, params[lo:hi], l2)
        else:
            g = grads[lo]
            if l2:
                g = torch.add(g, params[lo], alpha=l2, out=tmp)
        if trace:
            buf = b.flats[0] if b.flats is not None else trace[lo]
            if first:
                buf.copy_(g)
            elif dampening == 0.0:
                torch.add(g, buf, alpha=momentum, out=buf)
            else:
                buf.mul_(momentum).add_(g, alpha=1.0 - dampening)
            if nesterov:
                d = torch.add(g, buf, alpha=momentum, out=g if packed or l2 else tmp)
            else:
                d = buf
        else:
            d = g
        if packed:
            views = b.grad_views if d is g else b.tmp_views if d is tmp else trace[lo:hi]
            _axpy(pf if targets is params else None, targets[lo:hi], d, views, -lr)
        else:
            targets[lo].add_(d, alpha=-lr)


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
