r"""Weight initializers as pure functions of a shape and an explicit ``torch.Generator``.

Every function here has the form ``f(shape, *, generator, <arguments>, dtype=None,
device=None) -> Tensor``: it returns a *new* tensor and draws only from ``generator`` (never
from torch's global RNG, which stays untouched). ``shape`` may be a tensor, whose shape, dtype
and device are then the defaults. Arguments are checked before anything is drawn; a bad one
is a one-line ValueError naming it and its valid range.

Fans follow torch: a Linear weight ``(out, in)`` has ``fan_in = in``, ``fan_out = out``; a
convolution weight ``(out, in, kh, kw)`` has ``fan_in = in·kh·kw`` and ``fan_out = out·kh·kw``
(see :func:`compute_fans`). Initializers that use fans accept ``fans=(fan_in, fan_out)`` to
override them, which is how a 1-D bias can be drawn with its layer's fans.

Variances (what the tests check, with ``n_in = fan_in``, ``n_out = fan_out``):

=============================  =====================================  =====================
initializer                    distribution                           Var(w)
=============================  =====================================  =====================
zeros / constant(c)            all entries 0 / c                      0
normal(std)                    N(0, std²)                             std²
uniform(a)                     U(−a, a)                               a²/3
xavier_uniform(gain)           U(±gain·√(6/(n_in+n_out)))             2·gain²/(n_in+n_out)
xavier_normal(gain)            N(0, 2·gain²/(n_in+n_out))             2·gain²/(n_in+n_out)
kaiming_uniform(mode, nl, a)   U(±gain·√(3/n_mode))                   gain²/n_mode
kaiming_normal(mode, nl, a)    N(0, gain²/n_mode)                     gain²/n_mode
lecun_normal                   N(0, 1/n_in)                           1/n_in
truncated_normal(std)          N(0, std²) redrawn beyond ±2·std       0.8796…²·std²
truncated_normal(std, True)    N(0, (std/0.8796…)²) redrawn beyond    std²
                               ±2·std/0.8796…
orthogonal(gain)               gain · (semi-)orthogonal Q             gain²/max(rows, cols)
torch_default                  U(±1/√n_in)                            1/(3·n_in)
relu_bias                      all entries 0.01                       0
=============================  =====================================  =====================
"""

from __future__ import annotations

import math

import torch

from trainlab.init._common import (
    ShapeLike,
    calculate_gain,
    check_finite,
    check_generator,
    check_mode,
    check_positive,
    compute_fans,
    finish,
    resolve_fans,
    sample_dtype,
    target,
)

__all__ = [
    "TRUNCATED_NORMAL_STD_2SIGMA",
    "constant",
    "kaiming_normal",
    "kaiming_uniform",
    "lecun_normal",
    "normal",
    "orthogonal",
    "relu_bias",
    "torch_default",
    "truncated_normal",
    "truncated_normal_std",
    "uniform",
    "xavier_normal",
    "xavier_uniform",
    "zeros",
]

Device = torch.device | str | None


def truncated_normal_std(bound: float) -> float:
    r"""Standard deviation of N(0, 1) truncated to ``[−bound, bound]``.

    Var = 1 − 2·b·φ(b) / (2·Φ(b) − 1), with φ the standard normal density and Φ its CDF.
    For ``bound = 2`` this is 0.87962566103423978, the constant JAX/Flax divide by in
    ``variance_scaling(..., "truncated_normal")`` so the truncated draw has the requested std.
    """
    b = check_positive("truncated_normal_std", "bound", bound)
    pdf = math.exp(-0.5 * b * b) / math.sqrt(2.0 * math.pi)
    mass = math.erf(b / math.sqrt(2.0))  # Φ(b) − Φ(−b)
    return math.sqrt(1.0 - 2.0 * b * pdf / mass)


TRUNCATED_NORMAL_STD_2SIGMA = 0.87962566103423978
"""Std of N(0, 1) truncated to ±2 (``jax.nn.initializers.variance_scaling``'s constant)."""


# --------------------------------------------------------------------------- sampling helpers


def _randn(dims: tuple[int, ...], generator: torch.Generator, dtype: torch.dtype) -> torch.Tensor:
    return torch.randn(
        dims, generator=generator, dtype=sample_dtype(dtype), device=generator.device
    )


def _uniform(
    dims: tuple[int, ...], generator: torch.Generator, dtype: torch.dtype, bound: float
) -> torch.Tensor:
    """U(−bound, bound) as bound·(2·U[0, 1) − 1)."""
    u = torch.rand(dims, generator=generator, dtype=sample_dtype(dtype), device=generator.device)
    return u.mul_(2.0).sub_(1.0).mul_(bound)


def _gain(where: str, nonlinearity: str, a: float) -> float:
    try:
        return calculate_gain(nonlinearity, a)
    except ValueError as err:
        raise ValueError(f"{where}: {str(err).removeprefix('calculate_gain: ')}") from None


# ------------------------------------------------------------------------------ deterministic


def zeros(
    shape: ShapeLike,
    *,
    generator: torch.Generator | None = None,
    dtype: torch.dtype | None = None,
    device: Device = None,
) -> torch.Tensor:
    """All zeros: the usual bias initializer. ``generator`` is accepted for a uniform calling
    convention and not used."""
    return constant(shape, value=0.0, generator=generator, dtype=dtype, device=device)


def constant(
    shape: ShapeLike,
    *,
    value: float,
    generator: torch.Generator | None = None,
    dtype: torch.dtype | None = None,
    device: Device = None,
) -> torch.Tensor:
    """Every entry equal to ``value``.

    With constant weights every unit of a layer computes the same function and receives the
    same gradient, so the units never differentiate: the symmetry the lectures (CS231n, "small
    random numbers") break with random initialization. Kept for that demonstration.
    """
    value = check_finite("constant", "value", value)
    dims, dtype, dev = target(shape, dtype, device)
    if generator is not None:
        check_generator("constant", generator)
    return torch.full(dims, value, dtype=dtype, device=dev)


def relu_bias(
    shape: ShapeLike,
    *,
    value: float = 0.01,
    generator: torch.Generator | None = None,
    dtype: torch.dtype | None = None,
    device: Device = None,
) -> torch.Tensor:
    """Constant 0.01: the "ReLU bias 0.01" option (CS231n: a small positive bias so ReLU units
    start active and receive gradient; its benefit is disputed). Meant for biases."""
    value = check_finite("relu_bias", "value", value)
    return constant(shape, value=value, generator=generator, dtype=dtype, device=device)


# ----------------------------------------------------------------------------------- explicit


def normal(
    shape: ShapeLike,
    *,
    generator: torch.Generator,
    std: float = 0.01,
    mean: float = 0.0,
    dtype: torch.dtype | None = None,
    device: Device = None,
) -> torch.Tensor:
    """w ~ N(mean, std²). The default std 0.01 is CS231n's "small random numbers"
    (``0.01 * np.random.randn(D, H)``), which shrinks activations to zero in deep nets."""
    std = check_positive("normal", "std", std)
    mean = check_finite("normal", "mean", mean)
    check_generator("normal", generator)
    dims, dtype, dev = target(shape, dtype, device)
    return finish(_randn(dims, generator, dtype).mul_(std).add_(mean), dtype, dev)


def uniform(
    shape: ShapeLike,
    *,
    generator: torch.Generator,
    a: float = 0.05,
    dtype: torch.dtype | None = None,
    device: Device = None,
) -> torch.Tensor:
    """w ~ U(−a, a), variance a²/3. (Default a = 0.05, Keras' ``RandomUniform``.)"""
    a = check_positive("uniform", "a", a)
    check_generator("uniform", generator)
    dims, dtype, dev = target(shape, dtype, device)
    return finish(_uniform(dims, generator, dtype, a), dtype, dev)


def truncated_normal(
    shape: ShapeLike,
    *,
    generator: torch.Generator,
    std: float = 0.01,
    correct_std: bool = False,
    bound: float = 2.0,
    dtype: torch.dtype | None = None,
    device: Device = None,
) -> torch.Tensor:
    """N(0, σ²) with every draw beyond ±bound·σ redrawn (rejection, not clamping).

    With ``correct_std=False``, σ = ``std`` (``flax.linen.initializers.truncated_normal``):
    the result's std is ``truncated_normal_std(bound)·std`` (0.8796·std for bound 2). With
    ``correct_std=True``, σ = std / truncated_normal_std(bound), as JAX's
    ``variance_scaling(..., "truncated_normal")`` does, so the result has std ``std`` and no
    entry beyond ±bound·σ = ±2.274·std. Flax's default kernel init (LeCun normal) is this
    corrected form with std = 1/√fan_in; see :func:`lecun_normal`.
    """
    std = check_positive("truncated_normal", "std", std)
    bound = check_positive("truncated_normal", "bound", bound)
    if not isinstance(correct_std, bool):
        raise ValueError(f"truncated_normal: correct_std must be a bool, got {correct_std!r}")
    check_generator("truncated_normal", generator)
    dims, dtype, dev = target(shape, dtype, device)
    sigma = std / truncated_normal_std(bound) if correct_std else std
    z = _randn(dims, generator, dtype)
    flat = z.view(-1)
    outside = (flat.abs() > bound).nonzero().squeeze(1)
    while outside.numel():  # each round keeps ~95% (bound 2), so a handful of rounds
        flat[outside] = torch.randn(
            outside.numel(), generator=generator, dtype=flat.dtype, device=flat.device
        )
        outside = outside[flat[outside].abs() > bound]
    return finish(z.mul_(sigma), dtype, dev)


# -------------------------------------------------------------------------------- fan-scaled


def xavier_uniform(
    shape: ShapeLike,
    *,
    generator: torch.Generator,
    gain: float = 1.0,
    fans: tuple[int, int] | None = None,
    dtype: torch.dtype | None = None,
    device: Device = None,
) -> torch.Tensor:
    r"""Glorot & Bengio (2010): w ~ U(±gain·√(6 / (fan_in + fan_out))).

    Var(w) = 2·gain² / (fan_in + fan_out), the compromise between keeping forward activations'
    variance (Var = 1/fan_in) and back-propagated gradients' variance (1/fan_out). Seed 004's
    eq. (1) with m = fan_in, n = fan_out. Same as ``torch.nn.init.xavier_uniform_``.
    """
    gain = check_positive("xavier_uniform", "gain", gain)
    check_generator("xavier_uniform", generator)
    fan_in, fan_out = resolve_fans("xavier_uniform", shape, fans)
    dims, dtype, dev = target(shape, dtype, device)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return finish(_uniform(dims, generator, dtype, bound), dtype, dev)


def xavier_normal(
    shape: ShapeLike,
    *,
    generator: torch.Generator,
    gain: float = 1.0,
    fans: tuple[int, int] | None = None,
    dtype: torch.dtype | None = None,
    device: Device = None,
) -> torch.Tensor:
    """Glorot & Bengio (2010), normal form: w ~ N(0, 2·gain² / (fan_in + fan_out)).

    Same as ``torch.nn.init.xavier_normal_``.
    """
    gain = check_positive("xavier_normal", "gain", gain)
    check_generator("xavier_normal", generator)
    fan_in, fan_out = resolve_fans("xavier_normal", shape, fans)
    dims, dtype, dev = target(shape, dtype, device)
    std = gain * math.sqrt(2.0 / (fan_in + fan_out))
    return finish(_randn(dims, generator, dtype).mul_(std), dtype, dev)


def kaiming_uniform(
    shape: ShapeLike,
    *,
    generator: torch.Generator,
    mode: str = "fan_in",
    nonlinearity: str = "relu",
    a: float = 0.0,
    fans: tuple[int, int] | None = None,
    dtype: torch.dtype | None = None,
    device: Device = None,
) -> torch.Tensor:
    r"""He et al. (2015), "Delving deep into rectifiers": w ~ U(±gain·√(3 / fan_mode)).

    Var(w) = gain² / fan_mode with gain = :func:`calculate_gain` (``nonlinearity``, ``a``):
    √2 for ReLU (so Var = 2/fan_in, CS231n's ``randn(fan_in, fan_out) / sqrt(fan_in / 2)``),
    √(2/(1+a²)) for leaky ReLU of negative slope ``a``, 5/3 for tanh, 3/4 for SELU, 1 for
    linear and sigmoid. ``mode="fan_in"`` preserves the forward variance, ``"fan_out"`` the
    backward one. Same as ``torch.nn.init.kaiming_uniform_`` (whose default nonlinearity is
    ``leaky_relu`` with a = 0, i.e. ReLU's gain; ours names ``relu`` directly).
    """
    mode = check_mode("kaiming_uniform", mode)
    a = check_finite("kaiming_uniform", "a", a)
    gain = _gain("kaiming_uniform", nonlinearity, a)
    check_generator("kaiming_uniform", generator)
    fan_in, fan_out = resolve_fans("kaiming_uniform", shape, fans)
    dims, dtype, dev = target(shape, dtype, device)
    bound = gain * math.sqrt(3.0 / (fan_in if mode == "fan_in" else fan_out))
    return finish(_uniform(dims, generator, dtype, bound), dtype, dev)


def kaiming_normal(
    shape: ShapeLike,
    *,
    generator: torch.Generator,
    mode: str = "fan_in",
    nonlinearity: str = "relu",
    a: float = 0.0,
    fans: tuple[int, int] | None = None,
    dtype: torch.dtype | None = None,
    device: Device = None,
) -> torch.Tensor:
    """He et al. (2015), normal form: w ~ N(0, gain² / fan_mode); see :func:`kaiming_uniform`.

    Same as ``torch.nn.init.kaiming_normal_``.
    """
    mode = check_mode("kaiming_normal", mode)
    a = check_finite("kaiming_normal", "a", a)
    gain = _gain("kaiming_normal", nonlinearity, a)
    check_generator("kaiming_normal", generator)
    fan_in, fan_out = resolve_fans("kaiming_normal", shape, fans)
    dims, dtype, dev = target(shape, dtype, device)
    std = gain / math.sqrt(fan_in if mode == "fan_in" else fan_out)
    return finish(_randn(dims, generator, dtype).mul_(std), dtype, dev)


def lecun_normal(
    shape: ShapeLike,
    *,
    generator: torch.Generator,
    truncated: bool = False,
    fans: tuple[int, int] | None = None,
    dtype: torch.dtype | None = None,
    device: Device = None,
) -> torch.Tensor:
    """LeCun et al. (1998), "Efficient BackProp": w ~ N(0, 1/fan_in), std = 1/√fan_in.

    With ``truncated=True`` the draw is :func:`truncated_normal` with ``std = 1/√fan_in``,
    ``correct_std=True``: exactly Flax's ``lecun_normal``, the default kernel initializer of
    ``flax.linen.Dense`` and ``Conv`` (seed 004, eq. 3), still of variance 1/fan_in.
    """
    if not isinstance(truncated, bool):
        raise ValueError(f"lecun_normal: truncated must be a bool, got {truncated!r}")
    check_generator("lecun_normal", generator)
    fan_in, _ = resolve_fans("lecun_normal", shape, fans)
    std = 1.0 / math.sqrt(fan_in)
    if truncated:
        return truncated_normal(
            shape, generator=generator, std=std, correct_std=True, dtype=dtype, device=device
        )
    dims, dtype, dev = target(shape, dtype, device)
    return finish(_randn(dims, generator, dtype).mul_(std), dtype, dev)


def torch_default(
    shape: ShapeLike,
    *,
    generator: torch.Generator,
    fans: tuple[int, int] | None = None,
    dtype: torch.dtype | None = None,
    device: Device = None,
) -> torch.Tensor:
    r"""PyTorch's default for ``nn.Linear`` / ``nn.Conv*``: U(±1/√fan_in) (seed 004, eq. 2).

    For a weight (2+ dims) torch calls ``kaiming_uniform_(w, a=√5)``: gain = √(2/(1+5)) =
    1/√3 and bound = gain·√(3/fan_in) = 1/√fan_in, so Var(w) = 1/(3·fan_in). For a bias (1-D;
    pass its layer's ``fans``) torch draws U(±1/√fan_in) with the weight's fan_in as well.
    """
    check_generator("torch_default", generator)
    dims, dtype, dev = target(shape, dtype, device)
    if len(dims) >= 2 and fans is None:
        fan_in, _ = compute_fans(dims)
        gain = calculate_gain("leaky_relu", math.sqrt(5.0))
        bound = gain * math.sqrt(3.0 / fan_in)  # == 1 / sqrt(fan_in)
    else:
        fan_in, _ = resolve_fans("torch_default", dims, fans)
        bound = 1.0 / math.sqrt(fan_in)
    return finish(_uniform(dims, generator, dtype, bound), dtype, dev)


def orthogonal(
    shape: ShapeLike,
    *,
    generator: torch.Generator,
    gain: float = 1.0,
    dtype: torch.dtype | None = None,
    device: Device = None,
) -> torch.Tensor:
    r"""Saxe et al. (2014), "Exact solutions to the nonlinear dynamics of learning in deep
    linear neural networks": gain times a random (semi-)orthogonal matrix.

    The weight is viewed as ``rows = shape[0]`` by ``cols = prod(shape[1:])`` (a convolution
    kernel's trailing dims are flattened). A (rows × cols) standard Gaussian (transposed when
    wide) is factored A = QR and Q's columns are multiplied by sign(diag R), which makes Q Haar-
    distributed (Mezzadri 2007). Result: WᵀW = gain²·I for tall or square W, WWᵀ = gain²·I for
    wide W; every entry has mean 0 and mean square gain² / max(rows, cols). Same algorithm as
    ``torch.nn.init.orthogonal_``; the QR runs in float64.
    """
    gain = check_positive("orthogonal", "gain", gain)
    check_generator("orthogonal", generator)
    dims, dtype, dev = target(shape, dtype, device)
    if len(dims) < 2:
        raise ValueError(f"orthogonal: shape must have at least 2 dims, got {dims}")
    rows = dims[0]
    cols = math.prod(dims[1:])
    if rows * cols == 0:
        return torch.zeros(dims, dtype=dtype, device=dev or generator.device)
    a = torch.randn((rows, cols), generator=generator, dtype=torch.float64, device=generator.device)
    if rows < cols:
        a = a.t()
    q, r = torch.linalg.qr(a)
    q = q * torch.diagonal(r).sign()
    if rows < cols:
        q = q.t()
    return finish(q.mul(gain).reshape(dims), dtype, dev)
