"""Layers torch lacks: Maxout units (Goodfellow et al. 2013), dense and convolutional.

Seed 000 ("Maxout Neuron"): max(w1ᵀx + b1, w2ᵀx + b2) — generalizes ReLU and leaky ReLU, does
not saturate or die, at k times the parameters per unit. Here with k pieces per unit.
"""

from __future__ import annotations

from torch import Tensor, nn


def _check_pieces(k: int) -> None:
    if k < 1:
        raise ValueError(f"maxout k (pieces per unit) must be >= 1, got {k}")


class Maxout(nn.Module):
    """y_j = max_{i<k} (w_{j,i}ᵀ x + b_{j,i}) for j < out_features (Goodfellow et al. 2013).

    One ``nn.Linear(in_features, out_features * k)``; unit j owns its outputs j·k … j·k + k − 1.
    Input (..., in_features) -> (..., out_features). Replaces a Linear + activation pair.
    """

    def __init__(self, in_features: int, out_features: int, k: int = 2, bias: bool = True) -> None:
        super().__init__()
        _check_pieces(k)
        self.out_features = out_features
        self.k = k
        self.linear = nn.Linear(in_features, out_features * k, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        z = self.linear(x)
        return z.unflatten(-1, (self.out_features, self.k)).amax(dim=-1)

    def extra_repr(self) -> str:
        return f"k={self.k}"


class MaxoutConv2d(nn.Module):
    """Convolutional maxout: per output channel j, the max over k feature maps of one
    ``nn.Conv2d(in_channels, out_channels * k, kernel_size, **conv_kwargs)`` (channels
    j·k … j·k + k − 1). Input (N, C_in, H, W) -> (N, out_channels, H', W')."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        k: int = 2,
        **conv_kwargs: object,
    ) -> None:
        super().__init__()
        _check_pieces(k)
        self.out_channels = out_channels
        self.k = k
        self.conv = nn.Conv2d(in_channels, out_channels * k, kernel_size, **conv_kwargs)

    def forward(self, x: Tensor) -> Tensor:
        z = self.conv(x)
        return z.unflatten(1, (self.out_channels, self.k)).amax(dim=2)

    def extra_repr(self) -> str:
        return f"k={self.k}"
