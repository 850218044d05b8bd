"""Initializers by name: ``INITIALIZERS``, ``get_initializer``, specs and ``fill_``.

A *spec* is what a recipe writes: a name (``"kaiming_normal"``), a mapping with a ``name`` key
and arguments (``{"name": "kaiming_normal", "mode": "fan_out"}``), an :class:`Initializer`, or
a plain callable ``f(shape, *, generator, dtype, device)``. Names and arguments are checked when
the spec is resolved, before any training: an unknown name is a one-line ValueError naming the
field, the closest valid name and all valid names; a bad argument names the argument and its
valid range.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import torch

from trainlab.init import tensors
from trainlab.init._common import ShapeLike

__all__ = [
    "INITIALIZERS",
    "InitSpec",
    "Initializer",
    "fill_",
    "get_initializer",
    "resolve_initializer",
]

INITIALIZERS: dict[str, Callable[..., torch.Tensor]] = {
    "zeros": tensors.zeros,
    "constant": tensors.constant,
    "relu_bias": tensors.relu_bias,
    "normal": tensors.normal,
    "uniform": tensors.uniform,
    "truncated_normal": tensors.truncated_normal,
    "xavier_uniform": tensors.xavier_uniform,
    "xavier_normal": tensors.xavier_normal,
    "glorot_uniform": tensors.xavier_uniform,
    "glorot_normal": tensors.xavier_normal,
    "kaiming_uniform": tensors.kaiming_uniform,
    "kaiming_normal": tensors.kaiming_normal,
    "he_uniform": tensors.kaiming_uniform,
    "he_normal": tensors.kaiming_normal,
    "lecun_normal": tensors.lecun_normal,
    "orthogonal": tensors.orthogonal,
    "torch_default": tensors.torch_default,
}
"""Every per-tensor initializer by name (``glorot_*`` and ``he_*`` are aliases). LSUV needs a
model and a batch, so it is :func:`trainlab.init.lsuv`, not an entry here."""

_CALL_ARGS = ("shape", "generator", "dtype", "device", "fans")
"""Parameters supplied at call time, not by a spec."""


@dataclass(frozen=True)
class Initializer:
    """A registered initializer with its arguments bound; ``str()`` gives ``name(k=v, ...)``.

    ``init(shape, generator=g)`` returns a new tensor. ``fans`` is passed on only to
    initializers that take it (fan-scaled ones and ``torch_default``), so :func:`init_model` can
    give a bias its layer's fans whatever initializer the bias uses.
    """

    name: str
    fn: Callable[..., torch.Tensor] = field(repr=False)
    kwargs: Mapping[str, Any] = field(default_factory=dict)

    @property
    def takes_fans(self) -> bool:
        """Whether the function accepts ``fans=(fan_in, fan_out)``."""
        try:
            return "fans" in inspect.signature(self.fn).parameters
        except (TypeError, ValueError):
            return False

    def __call__(
        self,
        shape: ShapeLike,
        *,
        generator: torch.Generator,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
        fans: tuple[int, int] | None = None,
    ) -> torch.Tensor:
        extra: dict[str, Any] = {"fans": fans} if fans is not None and self.takes_fans else {}
        return self.fn(
            shape, generator=generator, dtype=dtype, device=device, **self.kwargs, **extra
        )

    def __str__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.kwargs.items())
        return f"{self.name}({args})" if args else self.name


InitSpec: TypeAlias = str | Mapping[str, Any] | Initializer | Callable[..., torch.Tensor]
"""A name, ``{"name": ..., **arguments}``, an :class:`Initializer`, or a callable."""


def _unknown(where: str, name: object) -> ValueError:
    if name == "lsuv":
        return ValueError(
            f"{where}: 'lsuv' is not a per-tensor initializer (it needs the model and a batch); "
            "call trainlab.init.lsuv(model, batch, generator=...)"
        )
    valid = sorted(INITIALIZERS)
    close = difflib.get_close_matches(str(name), valid, n=1, cutoff=0.0)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return ValueError(f"{where}: unknown initializer {name!r}; {hint}valid: {', '.join(valid)}")


def _build(name: object, kwargs: Mapping[str, Any], where: str) -> Initializer:
    if not isinstance(name, str) or name not in INITIALIZERS:
        raise _unknown(where, name)
    fn = INITIALIZERS[name]
    params = inspect.signature(fn).parameters
    accepted = [p for p in params if p not in _CALL_ARGS]
    for key in kwargs:
        if key not in accepted:
            raise ValueError(
                f"{where}: initializer {name!r} has no argument {key!r}; "
                f"accepted: {', '.join(accepted) or 'none'}"
            )
    missing = [
        p for p in accepted if params[p].default is inspect.Parameter.empty and p not in kwargs
    ]
    if missing:
        raise ValueError(f"{where}: initializer {name!r} needs argument(s) {', '.join(missing)}")
    init = Initializer(name, fn, dict(kwargs))
    # Check every argument's range now, by the function's own checks: a dry run on a 2×2
    # tensor with a throwaway generator (pure; the global RNG is not touched).
    try:
        init((2, 2), generator=torch.Generator().manual_seed(0))
    except ValueError as err:
        raise ValueError(f"{where}: {err}") from None
    return init


def get_initializer(name: str, **kwargs: Any) -> Initializer:
    """The initializer registered as ``name`` with ``kwargs`` bound, checked at once.

    >>> init = get_initializer("kaiming_normal", mode="fan_out")
    >>> w = init((64, 32, 3, 3), generator=torch.Generator().manual_seed(0))

    An unknown name raises a one-line ValueError naming the closest valid name (difflib) and
    all valid ones; an unknown, missing or out-of-range argument (negative std, a nonlinearity
    torch's ``calculate_gain`` lacks, a mode other than fan_in/fan_out) raises a one-line
    ValueError naming the argument and its valid range.
    """
    return _build(name, kwargs, "init")


def resolve_initializer(spec: InitSpec, field: str = "init") -> Initializer:
    """Turn a spec into an :class:`Initializer`; errors name ``field`` (e.g. ``init.weight``)."""
    if isinstance(spec, Initializer):
        return spec
    if isinstance(spec, str):
        return _build(spec, {}, field)
    if isinstance(spec, Mapping):
        if "name" not in spec:
            raise ValueError(
                f"{field}: an initializer mapping needs a 'name' key, got keys {sorted(spec)}"
            )
        rest = {k: v for k, v in spec.items() if k != "name"}
        return _build(spec["name"], rest, field)
    if callable(spec):
        return Initializer(getattr(spec, "__name__", type(spec).__name__), spec, {})
    raise ValueError(
        f"{field}: an initializer is a name, a mapping with 'name', or a callable; "
        f"got {type(spec).__name__}"
    )


def fill_(
    tensor: torch.Tensor,
    spec: InitSpec,
    *,
    generator: torch.Generator,
    fans: tuple[int, int] | None = None,
) -> torch.Tensor:
    """Overwrite ``tensor`` (e.g. a module's parameter) in place with a fresh draw of ``spec``.

    Runs under ``torch.no_grad()``; returns ``tensor``. Values are drawn on the generator's
    device and copied over, so a CPU generator can fill a parameter on any device.
    """
    init = resolve_initializer(spec)
    with torch.no_grad():
        value = init(tuple(tensor.shape), generator=generator, dtype=tensor.dtype, fans=fans)
        tensor.copy_(value)
    return tensor
