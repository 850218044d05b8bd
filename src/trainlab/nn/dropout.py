"""Dropout and noise regularizers: inverted and vanilla dropout, Monte-Carlo dropout
prediction, Gaussian noise on inputs and on weights.

Seed 000 ("Dropout Summary"): vanilla dropout drops units at training and scales activations by
the keep probability at test; inverted dropout divides by it at training so test is unchanged.
Both make the test output equal the expected training output. Note the seed's ``p`` is the keep
probability; here, as in torch and Keras, ``p`` is the *drop* probability, keep = 1 − p.

Layers whose randomness is ours take an optional ``torch.Generator`` (on the input's device);
None draws from torch's global generator.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import parametrize

from trainlab.names import closest_name_error


def check_probability(p: float, field: str = "dropout p") -> float:
    """``p`` as a float if 0 <= p < 1, else a one-line ValueError naming ``field``."""
    try:
        value = float(p)
    except (TypeError, ValueError):
        raise ValueError(f"{field} must be a number in [0, 1), got {p!r}") from None
    if not 0.0 <= value < 1.0:  # also rejects NaN
        raise ValueError(f"{field} must be in [0, 1), got {p!r}")
    return value


def _check_std(std: float, field: str) -> float:
    value = float(std)
    if not (value >= 0.0 and math.isfinite(value)):
        raise ValueError(f"{field} must be a finite number >= 0, got {std!r}")
    return value


def _keep_mask(x: Tensor, keep: float, generator: torch.Generator | None) -> Tensor:
    """Bernoulli(keep) mask of x's shape, dtype and device."""
    return torch.empty_like(x).bernoulli_(keep, generator=generator)


class InvertedDropout(nn.Module):
    """Inverted dropout (Srivastava et al. 2014; seed 000 "More common: Inverted dropout").

    Training: y = x · m / (1 − p), m ~ Bernoulli(1 − p) per element; test: y = x.
    Without a generator this is ``torch.nn.functional.dropout`` (same numbers as nn.Dropout).
    """

    def __init__(self, p: float = 0.5, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.p = check_probability(p)
        self.generator = generator

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        if self.generator is None:
            return F.dropout(x, self.p, training=True)
        return x * _keep_mask(x, 1.0 - self.p, self.generator) / (1.0 - self.p)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class VanillaDropout(nn.Module):
    """Vanilla dropout (seed 000 "Vanilla Dropout", Srivastava et al. 2014 Sec. 4).

    Training: y = x · m, m ~ Bernoulli(1 − p); test: y = (1 − p) · x, the expected training
    output. Not recommended (test-time code changes) but kept to show the equivalence.
    """

    def __init__(self, p: float = 0.5, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.p = check_probability(p)
        self.generator = generator

    def forward(self, x: Tensor) -> Tensor:
        if self.p == 0.0:
            return x
        if not self.training:
            return x * (1.0 - self.p)
        return x * _keep_mask(x, 1.0 - self.p, self.generator)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class MCDropout(InvertedDropout):
    """Inverted dropout that stays stochastic in eval mode (Gal & Ghahramani 2016, "Dropout as
    a Bayesian Approximation"); average K passes with `mc_predict`."""

    def forward(self, x: Tensor) -> Tensor:
        if self.p == 0.0:
            return x
        if self.generator is None:
            return F.dropout(x, self.p, training=True)
        return x * _keep_mask(x, 1.0 - self.p, self.generator) / (1.0 - self.p)


DROPOUTS: dict[str, type[nn.Module]] = {
    "inverted": InvertedDropout,
    "vanilla": VanillaDropout,
    "mc": MCDropout,
}

#: Module types `mc_predict` switches to training mode (torch's dropouts and ours).
DROPOUT_TYPES: tuple[type[nn.Module], ...] = (
    nn.Dropout,
    nn.Dropout1d,
    nn.Dropout2d,
    nn.Dropout3d,
    nn.AlphaDropout,
    nn.FeatureAlphaDropout,
    InvertedDropout,
    VanillaDropout,
)


def make_dropout(
    p: float, kind: str = "inverted", generator: torch.Generator | None = None
) -> nn.Module:
    """A dropout layer by kind (one of `DROPOUTS`); ``p`` is the drop probability in [0, 1)."""
    if kind not in DROPOUTS:
        raise closest_name_error("dropout kind", kind, DROPOUTS)
    return DROPOUTS[kind](p, generator=generator)


@contextlib.contextmanager
def dropout_active(
    model: nn.Module, types: tuple[type[nn.Module], ...] = DROPOUT_TYPES
) -> Iterator[nn.Module]:
    """Within the block, ``model`` is in eval mode except its dropout layers (train mode);
    every module's ``training`` flag is restored on exit."""
    saved = [(m, m.training) for m in model.modules()]
    try:
        model.eval()
        for m in model.modules():
            if isinstance(m, types):
                m.train()
        yield model
    finally:
        for m, flag in saved:
            m.training = flag


@torch.no_grad()
def mc_predict(
    model: nn.Module,
    x: Tensor,
    k: int,
    *,
    types: tuple[type[nn.Module], ...] = DROPOUT_TYPES,
    softmax: Callable[[Tensor], Tensor] | None = None,
) -> tuple[Tensor, Tensor]:
    """Monte-Carlo dropout prediction (seed 000 "At test time": average over many masks;
    Gal & Ghahramani 2016): K stochastic passes with dropout on and everything else in eval
    mode (BatchNorm uses running statistics).

    Returns (mean, var) over the K passes of softmax(model(x), dim=-1), each of the output's
    shape; var is the population variance (1/K Σ (p_k − mean)²), zero when nothing is random.
    ``softmax`` replaces the softmax (e.g. ``torch.sigmoid`` or the identity for regression).
    """
    if k < 1:
        raise ValueError(f"mc_predict k (number of passes) must be >= 1, got {k}")
    to_probs = softmax if softmax is not None else (lambda z: torch.softmax(z, dim=-1))
    with dropout_active(model, types):
        probs = torch.stack([to_probs(model(x)).float() for _ in range(k)])
    var, mean = torch.var_mean(probs, dim=0, correction=0)
    return mean, var


class GaussianNoise(nn.Module):
    """Additive Gaussian input noise at training only: y = x + ε, ε ~ N(0, std²) (Gaussian
    vicinal risk, Chapelle et al. 2001; seed 003, Keras ``GaussianNoise``); test: y = x."""

    def __init__(self, std: float, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.std = _check_std(std, "gaussian noise std")
        self.generator = generator

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.std == 0.0:
            return x
        noise = torch.randn(x.shape, generator=self.generator, dtype=x.dtype, device=x.device)
        return x + self.std * noise

    def extra_repr(self) -> str:
        return f"std={self.std}"


class WeightNoise(nn.Module):
    """Parametrization w ↦ w + ε, ε ~ N(0, std²) drawn anew at each forward, in training mode
    only (weight noise, Graves 2011; seed 000 "Noise: add noise to the weights"). Gradients
    reach the clean weights, evaluated at the noisy ones."""

    def __init__(self, std: float, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.std = _check_std(std, "weight noise std")
        self.generator = generator

    def forward(self, w: Tensor) -> Tensor:
        if not self.training or self.std == 0.0:
            return w
        noise = torch.randn(w.shape, generator=self.generator, dtype=w.dtype, device=w.device)
        return w + self.std * noise

    def extra_repr(self) -> str:
        return f"std={self.std}"


WEIGHT_NOISE_TYPES: tuple[type[nn.Module], ...] = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def add_weight_noise(
    model: nn.Module,
    std: float,
    *,
    generator: torch.Generator | None = None,
    types: tuple[type[nn.Module], ...] = WEIGHT_NOISE_TYPES,
) -> nn.Module:
    """Register `WeightNoise(std)` on the ``weight`` of every module of ``types`` in ``model``
    (itself included); returns ``model``. The parameter moves to
    ``parametrizations.weight.original``; `remove_weight_noise` undoes it."""
    _check_std(std, "weight noise std")
    for m in [m for m in model.modules() if isinstance(m, types)]:
        # unsafe=True: skip the consistency check, which would call forward and draw noise.
        parametrize.register_parametrization(m, "weight", WeightNoise(std, generator), unsafe=True)
    return model


def remove_weight_noise(model: nn.Module) -> nn.Module:
    """Remove the `WeightNoise` parametrizations `add_weight_noise` added (clean weights kept).

    Only a module whose weight has no other parametrization is handled."""
    for m in model.modules():
        if not parametrize.is_parametrized(m, "weight"):
            continue
        chain = m.parametrizations["weight"]
        if len(chain) == 1 and isinstance(chain[0], WeightNoise):
            parametrize.remove_parametrizations(m, "weight", leave_parametrized=False)
    return model
