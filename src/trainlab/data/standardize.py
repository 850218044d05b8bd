"""`Standardizer`: z-scoring whose statistics come from the training split only.

Fit on the training part, then apply the same mean and std to validation and test, so no
statistic of held-out data leaks into training (seed deck "data handling"; the same rule as
sklearn's StandardScaler fit/transform).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

MODES = ("per_channel", "per_feature", "global")


def _reduce_dims(x: torch.Tensor, mode: str) -> tuple[int, ...]:
    """Dimensions averaged over: all but dim 1 (per_channel), dim 0 (per_feature), or all."""
    if mode not in MODES:
        raise ValueError(f"normalize mode must be one of {', '.join(MODES)}; got {mode!r}")
    if x.ndim < 2 or x.shape[0] == 0:
        raise ValueError(f"Standardizer needs a non-empty (N, ...) tensor, got {tuple(x.shape)}")
    if mode == "per_channel":
        return (0, *range(2, x.ndim))
    if mode == "per_feature":
        return (0,)
    return tuple(range(x.ndim))


def check_broadcast_shape(kind: str, stat: torch.Tensor, x: torch.Tensor) -> None:
    """One-line error unless `x` has the per-sample shape the statistic `stat` was fitted on
    (dimensions of size 1 in `stat` broadcast)."""
    fitted = tuple(stat.shape[1:])
    ok = x.ndim == stat.ndim and all(
        f == 1 or f == s for f, s in zip(fitted, x.shape[1:], strict=True)
    )
    if not ok:
        raise ValueError(
            f"{kind} fitted on samples like {fitted} cannot apply to x of shape {tuple(x.shape)}"
        )


@dataclass(frozen=True)
class Standardizer:
    """x -> (x - mean) / std with statistics from `fit`; broadcastable `mean` and `std`.

    per_channel: one mean/std per channel (dim 1; for (N, D) tables that is per feature).
    per_feature: one per position of x.shape[1:] (per pixel for images).
    global: one scalar pair. The std is the population std (ddof 0); a std below
    10 * float eps is replaced by 1, so constant features pass through unscaled (as sklearn).
    """

    mode: str
    mean: torch.Tensor  # shape (1, C, 1, 1), (1, *x.shape[1:]) or (1, ..., 1)
    std: torch.Tensor

    @classmethod
    def fit(cls, x: torch.Tensor, mode: str = "per_channel") -> Standardizer:
        """Statistics of `x` (the training split) for `mode`."""
        dims = _reduce_dims(x, mode)
        std, mean = torch.std_mean(x, dim=dims, correction=0, keepdim=True)
        tiny = 10 * torch.finfo(std.dtype).eps
        std = torch.where(std < tiny, torch.ones_like(std), std)
        return cls(mode, mean, std)

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """(x - mean) / std as a new tensor; `x` must have the fitted per-sample shape."""
        check_broadcast_shape(f"Standardizer ({self.mode})", self.mean, x)
        return (x - self.mean) / self.std

    def state_dict(self) -> dict:
        """{"mode", "mean", "std"}: what `from_state_dict` needs (safetensors-friendly tensors)."""
        return {"mode": self.mode, "mean": self.mean.clone(), "std": self.std.clone()}

    @classmethod
    def from_state_dict(cls, state: dict) -> Standardizer:
        """Rebuild a Standardizer saved by `state_dict`."""
        mode = state["mode"]
        if mode not in MODES:
            raise ValueError(f"state_dict mode must be one of {', '.join(MODES)}; got {mode!r}")
        return cls(mode, state["mean"].clone(), state["std"].clone())
