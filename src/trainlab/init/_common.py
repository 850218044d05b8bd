"""Shapes, fans, gains and one-line argument checks shared by every initializer."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TypeAlias

import torch

__all__ = [
    "NONLINEARITIES",
    "ShapeLike",
    "calculate_gain",
    "compute_fans",
]

ShapeLike: TypeAlias = torch.Tensor | torch.Size | Sequence[int]
"""A shape, or a tensor whose shape (and, by default, dtype and device) is used."""

NONLINEARITIES: tuple[str, ...] = (
    "linear",
    "conv1d",
    "conv2d",
    "conv3d",
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
    "sigmoid",
    "tanh",
    "relu",
    "leaky_relu",
    "selu",
)
"""The names ``torch.nn.init.calculate_gain`` accepts, in its order."""


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def check_positive(where: str, name: str, value: float) -> float:
    """``float(value)`` if it is a finite number > 0, else a one-line ValueError."""
    if not _is_number(value) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{where}: {name} must be a finite number > 0, got {value!r}")
    return float(value)


def check_nonneg(where: str, name: str, value: float) -> float:
    """``float(value)`` if it is a finite number >= 0, else a one-line ValueError."""
    if not _is_number(value) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{where}: {name} must be a finite number >= 0, got {value!r}")
    return float(value)


def check_finite(where: str, name: str, value: float) -> float:
    """``float(value)`` if it is a finite number, else a one-line ValueError."""
    if not _is_number(value) or not math.isfinite(value):
        raise ValueError(f"{where}: {name} must be a finite number, got {value!r}")
    return float(value)


def check_mode(where: str, mode: str) -> str:
    """``mode`` if it is ``"fan_in"`` or ``"fan_out"``, else a one-line ValueError."""
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"{where}: mode must be 'fan_in' or 'fan_out', got {mode!r}")
    return mode


def check_generator(where: str, generator: object) -> torch.Generator:
    """``generator`` if it is a ``torch.Generator``; initializers never use the global RNG."""
    if not isinstance(generator, torch.Generator):
        raise TypeError(
            f"{where}: generator must be a torch.Generator (initializers never use the global "
            f"RNG), got {type(generator).__name__}"
        )
    return generator


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """The gain that keeps activations' variance through ``nonlinearity``, as torch gives it.

    ============================== ==============================================
    nonlinearity                   gain
    ============================== ==============================================
    linear, conv*, sigmoid         1
    tanh                           5/3
    relu                           √2 (He et al. 2015)
    leaky_relu (slope ``param``)   √(2 / (1 + param²)), ``param`` default 0.01
    selu                           3/4 (torch's empirical value)
    ============================== ==============================================

    Same values as ``torch.nn.init.calculate_gain``; an unknown name or a bad slope is a
    one-line ValueError.
    """
    if nonlinearity not in NONLINEARITIES:
        raise ValueError(
            f"calculate_gain: nonlinearity must be one of {', '.join(NONLINEARITIES)}, "
            f"got {nonlinearity!r}"
        )
    if nonlinearity == "tanh":
        return 5.0 / 3.0
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "selu":
        return 3.0 / 4.0
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else check_finite("calculate_gain", "param", param)
        return math.sqrt(2.0 / (1.0 + slope**2))
    return 1.0


def compute_fans(shape: ShapeLike) -> tuple[int, int]:
    """``(fan_in, fan_out)`` of a weight, as ``torch.nn.init`` computes them.

    For a Linear weight ``(out, in)``: ``fan_in = in``, ``fan_out = out``. For a convolution
    weight ``(out, in/groups, *kernel)``: both are multiplied by the receptive field
    ``prod(kernel)``, so ``fan_in = in/groups · kh · kw`` and ``fan_out = out · kh · kw``.
    (Transposed convolutions store ``(in, out/groups, *kernel)``; like torch, we do not swap.)
    A shape with fewer than two dimensions (a bias) has no fans: a one-line ValueError.
    """
    dims = _dims(shape)
    if len(dims) < 2:
        raise ValueError(
            f"fan_in/fan_out need a weight shape (out, in, *kernel) with at least 2 dims, "
            f"got {dims}; for a bias pass fans=(fan_in, fan_out) of its layer"
        )
    receptive = math.prod(dims[2:])
    return dims[1] * receptive, dims[0] * receptive


def _dims(shape: ShapeLike) -> tuple[int, ...]:
    if isinstance(shape, torch.Tensor):
        return tuple(shape.shape)
    if isinstance(shape, int):
        shape = (shape,)
    dims = tuple(shape)
    if not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in dims):
        raise ValueError(f"shape must be a sequence of ints >= 0, got {shape!r}")
    return dims


def resolve_fans(where: str, shape: ShapeLike, fans: tuple[int, int] | None) -> tuple[int, int]:
    """``fans`` if given (checked: two ints > 0), else ``compute_fans(shape)``."""
    if fans is None:
        return compute_fans(shape)
    pair = tuple(fans)
    if len(pair) != 2 or not all(
        isinstance(f, int) and not isinstance(f, bool) and f > 0 for f in pair
    ):
        raise ValueError(f"{where}: fans must be two ints > 0 (fan_in, fan_out), got {fans!r}")
    return pair[0], pair[1]


def target(
    shape: ShapeLike, dtype: torch.dtype | None, device: torch.device | str | None
) -> tuple[tuple[int, ...], torch.dtype, torch.device | None]:
    """Resolve ``(dims, dtype, device)``: a tensor argument supplies defaults for the last two.

    ``device`` None means "the generator's device" (samples are drawn there and then moved).
    """
    dims = _dims(shape)
    if isinstance(shape, torch.Tensor):
        dtype = shape.dtype if dtype is None else dtype
        device = shape.device if device is None else device
    dtype = torch.get_default_dtype() if dtype is None else dtype
    if not dtype.is_floating_point:
        raise ValueError(f"initializers fill floating-point tensors, got dtype {dtype}")
    return dims, dtype, None if device is None else torch.device(device)


def sample_dtype(dtype: torch.dtype) -> torch.dtype:
    """Draw in float64 for float64 targets and float32 otherwise, so a seed gives the same
    values (up to rounding) whatever low-precision dtype the result is cast to."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def finish(sample: torch.Tensor, dtype: torch.dtype, device: torch.device | None) -> torch.Tensor:
    """Cast ``sample`` to the target dtype and move it to the target device."""
    return sample.to(dtype=dtype, device=device if device is not None else sample.device)
