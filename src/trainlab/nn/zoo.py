"""The model zoo: an MLP, a small CNN and CIFAR-style ResNets (He et al. 2016, Sec. 4.2).

`resnet(depth=20, skip=False)` removes every shortcut, giving the "no-skip" networks whose
chaotic loss surfaces Li et al. (2018, "Visualizing the Loss Landscape of Neural Nets") show.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from trainlab.nn.activations import make_activation


def mlp(
    input_shape: Sequence[int],
    num_outputs: int,
    widths: Sequence[int] = (256, 256),
    activation: str = "relu",
    dropout: float = 0.0,
) -> nn.Sequential:
    """Flatten, then Linear-activation blocks of the given widths, then a Linear head."""
    layers: list[nn.Module] = [nn.Flatten()]
    fan_in = math.prod(input_shape)
    for width in widths:
        layers += [nn.Linear(fan_in, width), make_activation(activation)]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        fan_in = width
    layers.append(nn.Linear(fan_in, num_outputs))
    return nn.Sequential(*layers)


def _conv_block(c_in: int, c_out: int, batchnorm: bool, activation: str) -> list[nn.Module]:
    conv = nn.Conv2d(c_in, c_out, 3, padding=1, bias=not batchnorm)
    norm = [nn.BatchNorm2d(c_out)] if batchnorm else []
    return [conv, *norm, make_activation(activation)]


def cnn(
    input_shape: Sequence[int],
    num_outputs: int,
    channels: Sequence[int] = (32, 64, 128),
    convs_per_stage: int = 1,
    batchnorm: bool = True,
    activation: str = "relu",
    dropout: float = 0.0,
) -> nn.Sequential:
    """Per stage: `convs_per_stage` 3x3 convs (+BN) and a 2x2 max-pool; then a global max-pool
    and a Linear head.

    Input (N, C, H, W) -> logits (N, num_outputs). Each stage halves the resolution.
    """
    layers: list[nn.Module] = []
    c_in = input_shape[0]
    for c_out in channels:
        for i in range(convs_per_stage):
            layers += _conv_block(c_in if i == 0 else c_out, c_out, batchnorm, activation)
        layers.append(nn.MaxPool2d(2))
        c_in = c_out
    layers += [nn.AdaptiveMaxPool2d(1), nn.Flatten()]
    if dropout > 0:
        layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(c_in, num_outputs))
    return nn.Sequential(*layers)


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers; the shortcut (identity or 1x1 conv-BN) is added unless skip=False."""

    def __init__(self, c_in: int, c_out: int, stride: int, skip: bool, activation: str) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.act1 = make_activation(activation)
        self.act2 = make_activation(activation)
        self.skip = skip
        self.shortcut: nn.Module = nn.Identity()
        if skip and (stride != 1 or c_in != c_out):
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(self.act1(self.bn1(self.conv1(x)))))
        if self.skip:
            out = out + self.shortcut(x)
        return self.act2(out)


def resnet(
    input_shape: Sequence[int],
    num_outputs: int,
    depth: int = 20,
    width: int = 16,
    skip: bool = True,
    activation: str = "relu",
) -> nn.Sequential:
    """CIFAR ResNet of depth 6n+2 (20, 32, 44, 56, 110): three stages of n blocks, widths
    w, 2w, 4w, then global average pooling and a Linear head (He et al. 2016, Sec. 4.2)."""
    if depth < 8 or (depth - 2) % 6:
        raise ValueError(f"resnet depth must be 6n+2 with n >= 1 (8, 14, 20, 32, ...), got {depth}")
    n = (depth - 2) // 6
    layers: list[nn.Module] = [
        nn.Conv2d(input_shape[0], width, 3, padding=1, bias=False),
        nn.BatchNorm2d(width),
        make_activation(activation),
    ]
    c_in = width
    for stage in range(3):
        c_out = width * 2**stage
        for block in range(n):
            stride = 2 if stage > 0 and block == 0 else 1
            layers.append(BasicBlock(c_in, c_out, stride, skip, activation))
            c_in = c_out
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c_in, num_outputs)]
    return nn.Sequential(*layers)


MODELS = {"mlp": mlp, "cnn": cnn, "resnet": resnet}
