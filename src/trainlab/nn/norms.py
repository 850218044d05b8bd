"""Normalization layers by name, Batch Renormalization and weight normalization.

`make_norm(name, num_features, dim=...)` builds any normalization of the lectures (seed 000,
"Other normalization schemes"): batch (Ioffe & Szegedy 2015), layer (Ba et al. 2016), group
(Wu & He 2018), instance (Ulyanov et al. 2016), Batch Renormalization (Ioffe 2017, which torch
lacks) or none. Weight normalization (Salimans & Kingma 2016) reparameterizes a layer's weights
rather than normalizing activations, so it is `apply_weight_norm(model)`, not a norm name.

Batch Renorm stores ``running_var`` (not running σ), with the same buffer names and update rule
as ``torch.nn.BatchNorm*d``: its inference output is BatchNorm's formula on the same buffers,
and a BatchNorm state_dict loads into it unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import weight_norm

from trainlab.names import closest_name_error

# ---------------------------------------------------------------------------------------------
# Ramps for r_max and d_max
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LinearRamp:
    """``start`` until ``begin``, then linear to ``end`` at step ``finish``, constant after.

    value(t) = start + (end − start) · clip((t − begin) / (finish − begin), 0, 1); t is the
    0-indexed training step (the layer's ``num_batches_tracked`` before the forward).
    """

    start: float
    end: float
    begin: int
    finish: int

    def __call__(self, step: int) -> float:
        if self.finish <= self.begin:
            return self.end if step >= self.begin else self.start
        frac = min(max((step - self.begin) / (self.finish - self.begin), 0.0), 1.0)
        return self.start + (self.end - self.start) * frac


#: Ioffe (2017), Sec. 4: r_max 1 → 3 over steps 5k–40k, d_max 0 → 5 over steps 5k–25k.
PAPER_R_MAX = LinearRamp(1.0, 3.0, 5_000, 40_000)
PAPER_D_MAX = LinearRamp(0.0, 5.0, 5_000, 25_000)

Limit = float | Callable[[int], float]


def _limit_at(limit: Limit, step: int) -> float:
    return float(limit(step)) if callable(limit) else float(limit)


def renorm_correction(
    batch_mean: Tensor,
    batch_std: Tensor,
    running_mean: Tensor,
    running_std: Tensor,
    r_max: float,
    d_max: float,
) -> tuple[Tensor, Tensor]:
    """Batch Renorm's per-channel correction (Ioffe 2017, Algorithm 1), without gradient.

    r = stop_gradient(clip(σ_B / σ, 1/r_max, r_max)),
    d = stop_gradient(clip((μ_B − μ) / σ, −d_max, d_max)).
    """
    with torch.no_grad():
        r = (batch_std / running_std).clamp(1.0 / r_max, r_max)
        d = ((batch_mean - running_mean) / running_std).clamp(-d_max, d_max)
    return r.detach(), d.detach()


# ---------------------------------------------------------------------------------------------
# Batch Renormalization
# ---------------------------------------------------------------------------------------------


class _BatchRenorm(nn.Module):
    """Shared body of `BatchRenorm1d` / `BatchRenorm2d`; see `BatchRenorm2d` for the formulas."""

    _input_ndims: tuple[int, ...] = ()

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        r_max: Limit | None = None,
        d_max: Limit | None = None,
    ) -> None:
        super().__init__()
        if num_features < 1:
            raise ValueError(f"batch_renorm num_features must be >= 1, got {num_features}")
        if momentum is not None and not 0.0 <= momentum <= 1.0:
            raise ValueError(f"batch_renorm momentum must be in [0, 1], got {momentum}")
        if eps <= 0:
            raise ValueError(f"batch_renorm eps must be > 0, got {eps}")
        for field, value, low in (("r_max", r_max, 1.0), ("d_max", d_max, 0.0)):
            if value is not None and not callable(value) and not float(value) >= low:
                raise ValueError(f"batch_renorm {field} must be >= {low:g}, got {value}")
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.affine = affine
        self.r_max: Limit = PAPER_R_MAX if r_max is None else r_max
        self.d_max: Limit = PAPER_D_MAX if d_max is None else d_max
        if affine:
            self.weight = nn.Parameter(torch.ones(num_features))
            self.bias = nn.Parameter(torch.zeros(num_features))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        # Statistics are float32 whatever the input dtype (ANCHORS: "keep statistics in float32").
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))

    def reset_running_stats(self) -> None:
        self.running_mean.zero_()
        self.running_var.fill_(1.0)
        self.num_batches_tracked.zero_()

    def reset_parameters(self) -> None:
        self.reset_running_stats()
        if self.affine:
            nn.init.ones_(self.weight)
            nn.init.zeros_(self.bias)

    def current_limits(self) -> tuple[float, float]:
        """(r_max, d_max) the next training forward will use (at step num_batches_tracked)."""
        step = int(self.num_batches_tracked)
        return _limit_at(self.r_max, step), _limit_at(self.d_max, step)

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
            f"affine={self.affine}, r_max={self.r_max}, d_max={self.d_max}"
        )

    def _check_input(self, x: Tensor) -> None:
        if x.ndim not in self._input_ndims or x.shape[1] != self.num_features:
            raise ValueError(
                f"{type(self).__name__}({self.num_features}) expects input of "
                f"{' or '.join(f'{n}-D' for n in self._input_ndims)} shape (N, "
                f"{self.num_features}, ...), got {tuple(x.shape)}"
            )

    def forward(self, x: Tensor) -> Tensor:
        self._check_input(x)
        # Compute in float32 at least (float64 stays float64); the output has x's dtype.
        xf = x.to(torch.promote_types(x.dtype, torch.float32))
        y = self._train_forward(xf) if self.training else self._eval_forward(xf)
        return y.to(x.dtype)

    def _affine(self, dtype: torch.dtype) -> tuple[Tensor | None, Tensor | None]:
        if not self.affine:
            return None, None
        return self.weight.to(dtype), self.bias.to(dtype)

    def _eval_forward(self, xf: Tensor) -> Tensor:
        # Exactly BatchNorm's inference: y = γ (x − μ) / sqrt(var + ε) + β.
        weight, bias = self._affine(xf.dtype)
        mean, var = self.running_mean.to(xf.dtype), self.running_var.to(xf.dtype)
        return F.batch_norm(xf, mean, var, weight, bias, False, 0.0, self.eps)

    def _train_forward(self, xf: Tensor) -> Tensor:
        count = xf.numel() // self.num_features
        if count < 2:
            raise ValueError(
                f"{type(self).__name__} needs more than 1 value per channel when training, "
                f"got input {tuple(xf.shape)}"
            )
        with torch.no_grad():
            # Per-channel mean and biased variance by torch's batch-norm statistics kernel
            # (about 3x faster on CPU than var_mean over dims (0, 2, 3)).
            mean_b, var_b = torch.batch_norm_update_stats(xf, None, None, 0.0)
            running_mean = self.running_mean.to(xf.dtype)
            running_std = torch.sqrt(self.running_var.to(xf.dtype) + self.eps)
            std_b = torch.sqrt(var_b + self.eps)
            r, d = renorm_correction(
                mean_b, std_b, running_mean, running_std, *self.current_limits()
            )
        # y = γ ((x − μ_B)/σ_B · r + d) + β is BatchNorm's training formula with weight γ·r and
        # bias β + γ·d; r and d are constants, so torch's batch-norm kernel (forward and
        # backward, through μ_B and σ_B) computes it, and γ gets r Σ g x̂_B + d Σ g.
        gamma, beta = self._affine(xf.dtype)
        weight = r if gamma is None else gamma * r
        bias = d if beta is None else beta + gamma * d
        y = F.batch_norm(xf, None, None, weight, bias, True, 0.0, self.eps)
        with torch.no_grad():
            # As torch's BatchNorm: momentum on the mean and on the unbiased variance;
            # momentum=None is the cumulative average over the batches seen (factor 1/t).
            self.num_batches_tracked.add_(1)
            factor = self.momentum
            if factor is None:
                factor = 1.0 / float(self.num_batches_tracked)
            unbiased = var_b * (count / (count - 1))
            self.running_mean.lerp_(mean_b.to(self.running_mean.dtype), factor)
            self.running_var.lerp_(unbiased.to(self.running_var.dtype), factor)
        return y


class BatchRenorm1d(_BatchRenorm):
    """Batch Renormalization over (N, C) or (N, C, L) inputs; see `BatchRenorm2d`."""

    _input_ndims = (2, 3)


class BatchRenorm2d(_BatchRenorm):
    """Batch Renormalization (Ioffe 2017, "Batch Renormalization: Towards Reducing Minibatch
    Dependence in Batch-Normalized Models", Algorithm 1) over (N, C, H, W) inputs.

    Training, per channel over the batch (and spatial positions):
        μ_B = mean(x), σ_B = sqrt(var_B(x) + ε)            (biased batch variance)
        σ = sqrt(running_var + ε), μ = running_mean
        r = stop_gradient(clip(σ_B / σ, 1/r_max, r_max))
        d = stop_gradient(clip((μ_B − μ) / σ, −d_max, d_max))
        y = γ ((x − μ_B) / σ_B · r + d) + β
        running_mean ← (1 − m) running_mean + m μ_B,  running_var ← (1 − m) running_var + m s²_B
    with s²_B the unbiased batch variance (m = 1/t, a cumulative average, if momentum is None),
    exactly as ``torch.nn.BatchNorm2d`` (the paper moves
    σ itself; we keep BatchNorm's buffers so inference and state_dicts are interchangeable).
    Inference: y = γ (x − running_mean) / sqrt(running_var + ε) + β, BatchNorm's formula.

    ``r_max`` / ``d_max`` are floats or functions of the step (``num_batches_tracked`` before the
    forward); None means the paper's ramps `PAPER_R_MAX` (1 → 3 over steps 5k–40k) and
    `PAPER_D_MAX` (0 → 5 over 5k–25k). With r_max = 1 and d_max = 0 this is BatchNorm.
    Statistics and the normalization run in float32; the output has the input's dtype.
    """

    _input_ndims = (4,)


#: Layers that normalize with batch statistics in training and keep running statistics: what
#: code that recomputes or freezes BatchNorm statistics (mode connectivity, SWA) should match.
BATCH_STAT_NORMS: tuple[type[nn.Module], ...] = (nn.modules.batchnorm._BatchNorm, _BatchRenorm)


# ---------------------------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------------------------

DEFAULT_GROUPS = 8


def _batch(num_features: int, dim: int, **kwargs: object) -> nn.Module:
    return (nn.BatchNorm1d if dim == 1 else nn.BatchNorm2d)(num_features, **kwargs)


def _batch_renorm(num_features: int, dim: int, **kwargs: object) -> nn.Module:
    return (BatchRenorm1d if dim == 1 else BatchRenorm2d)(num_features, **kwargs)


def _layer(num_features: int, dim: int, **kwargs: object) -> nn.Module:
    # Ba et al. normalize over all units of a layer: the features of (N, C); for (N, C, H, W)
    # all of C, H, W with a per-channel affine, i.e. GroupNorm with one group (Wu & He 2018).
    if dim == 1:
        return nn.LayerNorm(num_features, **kwargs)
    return nn.GroupNorm(1, num_features, **kwargs)


def _group(
    num_features: int, dim: int, num_groups: int | None = None, **kwargs: object
) -> nn.Module:
    if num_groups is None:
        num_groups = math.gcd(num_features, DEFAULT_GROUPS)
    if num_groups < 1 or num_features % num_groups:
        raise ValueError(
            f"group norm num_groups must divide num_features={num_features}, got {num_groups}"
        )
    return nn.GroupNorm(num_groups, num_features, **kwargs)


def _instance(num_features: int, dim: int, **kwargs: object) -> nn.Module:
    if dim != 2:
        raise ValueError(
            "instance norm needs spatial inputs (dim=2, (N, C, H, W)); on (N, C) it outputs zeros"
        )
    kwargs.setdefault("affine", True)
    return nn.InstanceNorm2d(num_features, **kwargs)


def _none(num_features: int, dim: int, **kwargs: object) -> nn.Module:
    return nn.Identity()


NORMS: dict[str, Callable[..., nn.Module]] = {
    "batch": _batch,
    "batch_renorm": _batch_renorm,
    "layer": _layer,
    "group": _group,
    "instance": _instance,
    "none": _none,
}


def check_norm_name(name: str) -> None:
    """Raise the one-line "unknown normalization" error unless ``name`` is in `NORMS`."""
    if name not in NORMS:
        raise closest_name_error("normalization", name, NORMS)


def make_norm(name: str, num_features: int, *, dim: int, **kwargs: object) -> nn.Module:
    """A normalization layer for ``num_features`` channels, by name (one of `NORMS`).

    ``dim`` = 1 for (N, C) features (after a Linear), 2 for (N, C, H, W) maps (after a Conv2d).
    ``kwargs`` go to the layer (eps, momentum, affine; ``num_groups`` for "group", default
    gcd(C, 8); ``r_max``/``d_max`` for "batch_renorm"). "none" gives ``nn.Identity``.
    """
    check_norm_name(name)
    if dim not in (1, 2):
        raise ValueError(f"norm dim must be 1 (N, C) or 2 (N, C, H, W), got {dim}")
    return NORMS[name](num_features, dim, **kwargs)


# ---------------------------------------------------------------------------------------------
# Weight normalization
# ---------------------------------------------------------------------------------------------

WEIGHT_NORM_TYPES: tuple[type[nn.Module], ...] = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def apply_weight_norm(module: nn.Module, *, dim: int = 0) -> nn.Module:
    """Weight-normalize every Linear/Conv layer in ``module`` (itself included); returns it.

    w = g · v / ‖v‖ per output unit (Salimans & Kingma 2016), through
    ``torch.nn.utils.parametrizations.weight_norm``: parameters become
    ``parametrizations.weight.original0`` (g, shape (out, 1, ...)) and ``...original1`` (v),
    initialized so that w is unchanged — apply it after the weight initializer.
    """
    targets = [m for m in module.modules() if isinstance(m, WEIGHT_NORM_TYPES)]
    for m in targets:
        weight_norm(m, name="weight", dim=dim)
    return module
