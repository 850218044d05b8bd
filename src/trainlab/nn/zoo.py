"""The model zoo: an MLP, a small CNN and CIFAR-style ResNets (He et al. 2016, Sec. 4.2).

`resnet(depth=20, skip=False)` removes every shortcut, giving the "no-skip" networks whose
chaotic loss surfaces Li et al. (2018, "Visualizing the Loss Landscape of Neural Nets") show.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from trainlab.nn.activations import ActivationSpec, make_activation
from trainlab.nn.dropout import GaussianNoise, make_dropout
from trainlab.nn.layers import Maxout, MaxoutConv2d
from trainlab.nn.norms import make_norm

MAXOUT = "maxout"  # an activation name that replaces the Linear/Conv + activation pair


def _input_layers(input_noise: float) -> list[nn.Module]:
    """Gaussian noise (on the inputs or a hidden activity) at training time, if asked for."""
    return [GaussianNoise(input_noise)] if input_noise > 0 else []


def _dense_block(
    fan_in: int,
    width: int,
    activation: ActivationSpec,
    norm: str,
    maxout_k: int,
    norm_options: dict,
) -> list[nn.Module]:
    if activation == MAXOUT:  # Goodfellow et al. 2013: max over k affine pieces
        return [Maxout(fan_in, width, k=maxout_k)]
    normed = [] if norm == "none" else [make_norm(norm, width, dim=1, **norm_options)]
    return [nn.Linear(fan_in, width), *normed, make_activation(activation, width)]


def mlp(
    input_shape: Sequence[int],
    num_outputs: int,
    widths: Sequence[int] = (256, 256),
    activation: ActivationSpec = "relu",
    dropout: float = 0.0,
    *,
    norm: str = "none",
    norm_options: dict | None = None,
    dropout_kind: str = "inverted",
    input_noise: float = 0.0,
    hidden_noise: float = 0.0,
    maxout_k: int = 2,
) -> nn.Sequential:
    """Flatten, then Linear(-norm)-activation(-noise)(-dropout) blocks of the given widths, then
    a Linear head. `activation="maxout"` makes each block a Maxout unit with `maxout_k` pieces;
    `hidden_noise` adds Gaussian noise of that std to each hidden activity at training time
    (seed 001, noise injection at the hidden units; Poole et al. 2014)."""
    layers: list[nn.Module] = [*_input_layers(input_noise), nn.Flatten()]
    fan_in = math.prod(input_shape)
    for width in widths:
        layers += _dense_block(fan_in, width, activation, norm, maxout_k, norm_options or {})
        layers += _input_layers(hidden_noise)
        if dropout > 0:
            layers.append(make_dropout(dropout, dropout_kind))
        fan_in = width
    layers.append(nn.Linear(fan_in, num_outputs))
    return nn.Sequential(*layers)


def _conv_block(
    c_in: int,
    c_out: int,
    norm: str,
    activation: ActivationSpec,
    maxout_k: int,
    norm_options: dict,
) -> list[nn.Module]:
    """3x3 conv (no bias before a norm), the norm, the activation; or a Maxout conv."""
    if activation == MAXOUT:
        conv = MaxoutConv2d(c_in, c_out, 3, k=maxout_k, padding=1, bias=norm == "none")
        return [conv] if norm == "none" else [conv, make_norm(norm, c_out, dim=2, **norm_options)]
    conv = nn.Conv2d(c_in, c_out, 3, padding=1, bias=norm == "none")
    normed = [] if norm == "none" else [make_norm(norm, c_out, dim=2, **norm_options)]
    return [conv, *normed, make_activation(activation, c_out)]


def cnn(
    input_shape: Sequence[int],
    num_outputs: int,
    channels: Sequence[int] = (32, 64, 128),
    convs_per_stage: int = 1,
    norm: str = "batch",
    activation: ActivationSpec = "relu",
    dropout: float = 0.0,
    *,
    norm_options: dict | None = None,
    dropout_kind: str = "inverted",
    input_noise: float = 0.0,
    hidden_noise: float = 0.0,
    maxout_k: int = 2,
    global_pool: str = "max",
    pool_first: bool = False,
) -> nn.Sequential:
    """Per stage: `convs_per_stage` 3x3 convs (+norm, "batch" by default) and a 2x2 max-pool;
    then a global max- (or ``global_pool="avg"``) pool and a Linear head. `hidden_noise`:
    Gaussian noise of that std on each stage's output at training time.

    `pool_first`: each stage's max-pool comes right after its last conv, before that conv's
    norm and activation. Max-pooling commutes with any per-channel increasing map, so with no
    norm (or a norm in eval mode with positive scales) and a monotone activation such as ReLU
    the network computes the same function, while the norm and activation touch a quarter of
    the elements; in training, batch statistics are taken over the pooled map.

    Input (N, C, H, W) -> logits (N, num_outputs). Each stage halves the resolution.
    """
    layers: list[nn.Module] = _input_layers(input_noise)
    c_in = input_shape[0]
    for c_out in channels:
        for i in range(convs_per_stage):
            c = c_in if i == 0 else c_out
            block = _conv_block(c, c_out, norm, activation, maxout_k, norm_options or {})
            if pool_first and i == convs_per_stage - 1:
                block.insert(1, nn.MaxPool2d(2))  # block[0] is the conv
            layers += block
        if not pool_first:
            layers.append(nn.MaxPool2d(2))
        layers += _input_layers(hidden_noise)
        c_in = c_out
    pool = nn.AdaptiveAvgPool2d(1) if global_pool == "avg" else nn.AdaptiveMaxPool2d(1)
    layers += [pool, nn.Flatten()]
    if dropout > 0:
        layers.append(make_dropout(dropout, dropout_kind))
    layers.append(nn.Linear(c_in, num_outputs))
    return nn.Sequential(*layers)


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers; the shortcut (identity or 1x1 conv-BN) is added unless skip=False."""

    def __init__(
        self,
        c_in: int,
        c_out: int,
        stride: int,
        skip: bool,
        activation: ActivationSpec,
        norm: str = "batch",
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = make_norm(norm, c_out, dim=2)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = make_norm(norm, c_out, dim=2)
        self.act1 = make_activation(activation, c_out)
        self.act2 = make_activation(activation, c_out)
        self.skip = skip
        self.shortcut: nn.Module = nn.Identity()
        if skip and (stride != 1 or c_in != c_out):
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), make_norm(norm, c_out, dim=2)
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
    activation: ActivationSpec = "relu",
    norm: str = "batch",
) -> nn.Sequential:
    """CIFAR ResNet of depth 6n+2 (20, 32, 44, 56, 110): three stages of n blocks, widths
    w, 2w, 4w, then global average pooling and a Linear head (He et al. 2016, Sec. 4.2)."""
    if depth < 8 or (depth - 2) % 6:
        raise ValueError(f"resnet depth must be 6n+2 with n >= 1 (8, 14, 20, 32, ...), got {depth}")
    n = (depth - 2) // 6
    layers: list[nn.Module] = [
        nn.Conv2d(input_shape[0], width, 3, padding=1, bias=False),
        make_norm(norm, width, dim=2),
        make_activation(activation, width),
    ]
    c_in = width
    for stage in range(3):
        c_out = width * 2**stage
        for block in range(n):
            stride = 2 if stage > 0 and block == 0 else 1
            layers.append(BasicBlock(c_in, c_out, stride, skip, activation, norm))
            c_in = c_out
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c_in, num_outputs)]
    return nn.Sequential(*layers)


def vgg(
    input_shape: Sequence[int],
    num_outputs: int,
    channels: Sequence[int] = (16, 32, 64),
    convs_per_stage: int = 2,
    norm: str = "batch",
    activation: ActivationSpec = "relu",
    dropout: float = 0.0,
    **options: object,
) -> nn.Sequential:
    """A small VGG-style plain network (Simonyan & Zisserman 2015): stages of 3x3
    conv-norm-activation layers and 2x2 max-pools, no shortcuts, global average pooling and a
    Linear head: the `cnn` builder with VGG's shape (for loss-surface comparisons with ResNet
    and DenseNet, Li et al. 2018)."""
    return cnn(input_shape, num_outputs, channels, convs_per_stage, norm, activation, dropout,
               global_pool="avg", **options)  # type: ignore[arg-type]  # fmt: skip


def _norm_act(norm: str, channels: int, activation: ActivationSpec) -> list[nn.Module]:
    """The norm (unless "none") and the activation before a DenseNet convolution."""
    normed = [] if norm == "none" else [make_norm(norm, channels, dim=2)]
    return [*normed, make_activation(activation, channels)]


class DenseLayer(nn.Module):
    """norm-activation-3x3 conv producing ``growth`` new channels, concatenated to its input
    (Huang et al. 2017, "Densely Connected Convolutional Networks")."""

    def __init__(self, c_in: int, growth: int, norm: str, activation: ActivationSpec) -> None:
        super().__init__()
        conv = nn.Conv2d(c_in, growth, 3, padding=1, bias=False)
        self.body = nn.Sequential(*_norm_act(norm, c_in, activation), conv)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, self.body(x)], dim=1)


def densenet(
    input_shape: Sequence[int],
    num_outputs: int,
    growth: int = 12,
    blocks: Sequence[int] = (4, 4, 4),
    compression: float = 0.5,
    norm: str = "batch",
    activation: ActivationSpec = "relu",
) -> nn.Sequential:
    """A small DenseNet (Huang et al. 2017): a 3x3 stem of ``2*growth`` channels, dense blocks
    of `DenseLayer` s (each adds ``growth`` channels), transitions (norm-activation-1x1 conv to
    ``compression`` of the channels, 2x2 average pool) between blocks, then norm-activation,
    global average pooling and a Linear head."""
    if growth < 1 or not blocks or min(blocks) < 1 or not 0 < compression <= 1:
        got = f"{growth}, {list(blocks)}, {compression}"
        raise ValueError(
            f"densenet: expected growth >= 1, blocks >= 1 layer, 0 < compression <= 1; got {got}"
        )
    c = 2 * growth
    layers: list[nn.Module] = [nn.Conv2d(input_shape[0], c, 3, padding=1, bias=False)]
    for b, n in enumerate(blocks):
        for _ in range(n):
            layers.append(DenseLayer(c, growth, norm, activation))
            c += growth
        if b < len(blocks) - 1:
            out = max(1, int(c * compression))
            layers += [*_norm_act(norm, c, activation), nn.Conv2d(c, out, 1, bias=False)]
            layers.append(nn.AvgPool2d(2))
            c = out
    layers += [*_norm_act(norm, c, activation), nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    return nn.Sequential(*layers, nn.Linear(c, num_outputs))


MODELS = {"mlp": mlp, "cnn": cnn, "vgg": vgg, "resnet": resnet, "densenet": densenet}
