"""MLPs of different widths in one stack: each is padded to its bucket's widths with masked
units, and buckets are chosen so that padding wastes little.

Padding (`pad_mlp`): every Linear after the first multiplies its input by a 0/1 ``unit_mask``
buffer (a forward pre-hook) that is 1 on the model's real units. A padded unit therefore never
reaches an output: the next layer sees exactly 0 from it whatever its value, and every gradient
into a padded unit's parameters passes through that multiplication by 0, so it is exactly 0 as
well (the padded weights start at 0 and stay there under SGD, momentum, Adam and weight decay).
`unpad` cuts the real model back out; the test checks it equals the model trained alone.

Buckets (`plan_buckets`): sorted widths cut into contiguous groups minimizing the estimated
step time ``sum over buckets (overhead + models * flops(padded width))`` by dynamic
programming: one bucket per width wastes per-step overhead on tiny stacks, one bucket for all
wastes compute on padding.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

ELEMENTWISE = (nn.ReLU, nn.Tanh, nn.Sigmoid, nn.GELU, nn.LeakyReLU, nn.ELU, nn.SiLU,
               nn.Dropout, nn.Flatten, nn.Identity)  # fmt: skip


def _mask_input(module: nn.Module, args: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
    """Forward pre-hook: the input times the layer's ``unit_mask`` (padded units -> 0)."""
    return (args[0] * module.unit_mask, *args[1:])


def hidden_widths(model: nn.Sequential) -> list[int]:
    """The out-features of every Linear but the last (the head)."""
    linears = [m for m in model if isinstance(m, nn.Linear)]
    return [m.out_features for m in linears[:-1]]


def pad_mlp(model: nn.Sequential, widths: Sequence[int]) -> nn.Sequential:
    """A copy of ``model`` (Linear / BatchNorm1d / elementwise layers) whose hidden layers have
    ``widths`` units (each >= the model's), the extra units zero and masked out."""
    real = hidden_widths(model)
    if len(widths) != len(real) or any(w < r for w, r in zip(widths, real, strict=True)):
        raise ValueError(f"pad_mlp: widths {list(widths)} must cover the model's {real}")
    layers: list[nn.Module] = []
    hidden = iter(widths)
    n_in = n_in_real = None  # padded and real width of the current activations
    last = max(i for i, m in enumerate(model) if isinstance(m, nn.Linear))
    for i, m in enumerate(model):
        if isinstance(m, nn.Linear):
            n_out = m.out_features if i == last else next(hidden)
            layers.append(_padded_linear(m, n_in or m.in_features, n_out, n_in_real))
            n_in, n_in_real = n_out, m.out_features
        elif isinstance(m, nn.BatchNorm1d):
            layers.append(_padded_norm(m, n_in))
        elif isinstance(m, ELEMENTWISE):
            layers.append(copy.deepcopy(m))
        else:
            raise ValueError(
                f"pad_mlp: cannot pad a {type(m).__name__}; expected Linear, BatchNorm1d or "
                "elementwise layers"
            )
    return nn.Sequential(*layers)


def _padded_linear(m: nn.Linear, n_in: int, n_out: int, real_in: int | None) -> nn.Linear:
    out = nn.Linear(n_in, n_out, bias=m.bias is not None).to(m.weight.dtype)
    with torch.no_grad():
        out.weight.zero_()
        out.weight[: m.out_features, : m.in_features] = m.weight
        if m.bias is not None:
            out.bias.zero_()
            out.bias[: m.out_features] = m.bias
    if real_in is not None:  # every Linear after the first masks its input
        mask = torch.zeros(n_in, dtype=m.weight.dtype)
        mask[:real_in] = 1
        out.register_buffer("unit_mask", mask)
        out.register_forward_pre_hook(_mask_input)
    return out


def _padded_norm(m: nn.BatchNorm1d, n: int) -> nn.BatchNorm1d:
    out = nn.BatchNorm1d(n, m.eps, m.momentum, m.affine, m.track_running_stats)
    out = out.to(m.weight.dtype if m.affine else torch.get_default_dtype())
    state = out.state_dict()
    for name, value in m.state_dict().items():
        if value.dim() == 0:
            state[name] = value.clone()
        else:
            state[name][: value.shape[0]] = value
    out.load_state_dict(state)
    return out


def unpad(padded: nn.Module, like: nn.Module) -> nn.Module:
    """``like`` (the unpadded architecture) loaded with the real part of ``padded``'s state."""
    model = copy.deepcopy(like)
    source = {k: v for k, v in padded.state_dict().items() if not k.endswith("unit_mask")}
    state = {}
    for name, value in model.state_dict().items():
        cut = source[name][tuple(slice(0, s) for s in value.shape)]
        state[name] = cut.clone()
    model.load_state_dict(state)
    return model


def mlp_flops(widths: Sequence[int], n_in: int, n_out: int) -> int:
    """Multiply-adds per example of an MLP n_in-widths-n_out (forward)."""
    sizes = [n_in, *widths, n_out]
    return sum(a * b for a, b in zip(sizes, sizes[1:], strict=False))


def plan_buckets(
    widths: Sequence[int], cost: Callable[[int], float], overhead: float
) -> list[list[int]]:
    """Indices of ``widths`` grouped into buckets (each padded to its largest width): contiguous
    runs of the sorted widths minimizing ``sum(overhead + len(bucket) * cost(max width))``."""
    order = sorted(range(len(widths)), key=lambda i: widths[i])
    n = len(order)
    best = [0.0] + [float("inf")] * n  # best[j]: cheapest plan for the j smallest
    cut = [0] * (n + 1)
    for j in range(1, n + 1):
        top = cost(widths[order[j - 1]])
        for i in range(j):
            total = best[i] + overhead + (j - i) * top
            if total < best[j]:
                best[j], cut[j] = total, i
    buckets, j = [], n
    while j > 0:
        buckets.append(order[cut[j] : j])
        j = cut[j]
    return buckets[::-1]


def padding_waste(widths: Sequence[int], buckets: list[list[int]],
                  cost: Callable[[int], float]) -> float:  # fmt: skip
    """The fraction of the planned compute spent on padded units."""
    real = sum(cost(widths[i]) for b in buckets for i in b)
    padded = sum(len(b) * cost(max(widths[i] for i in b)) for b in buckets)
    return 1 - real / padded
