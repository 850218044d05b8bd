"""The small VGG-style and DenseNet models (`trainlab.nn.vgg`, `trainlab.nn.densenet`):
shapes, parameter counts by hand, DenseNet's channel growth (in + n*growth per block), no
shortcut in VGG (a zeroed middle conv cuts the input off), DenseNet's concatenation keeps the
earlier features, and both reachable from a recipe."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from trainlab.nn import DenseLayer, densenet, vgg
from trainlab.run.builders import build_model
from trainlab.run.config import load_recipe


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
@pytest.mark.parametrize("builder", [vgg, densenet])
def test_output_shapes(builder, shape) -> None:  # noqa: ANN001
    model = builder(shape, 10)
    assert model(torch.randn(2, *shape)).shape == (2, 10)


def test_vgg_parameter_count_by_hand() -> None:
    model = vgg((3, 32, 32), 10, channels=(4, 8), convs_per_stage=2, norm="batch")
    convs = 3 * 3 * (3 * 4 + 4 * 4 + 4 * 8 + 8 * 8)  # no conv bias before a norm
    norms = 2 * (4 + 4 + 8 + 8)
    head = 8 * 10 + 10
    assert sum(p.numel() for p in model.parameters()) == convs + norms + head


def test_densenet_parameter_count_and_channel_growth_by_hand() -> None:
    model = densenet((1, 28, 28), 10, growth=3, blocks=(2, 2), compression=0.5)
    # stem 1->6; block 1: 6->9->12; transition 12->6; block 2: 6->9->12; head 12->10
    convs = 9 * 1 * 6 + 9 * (6 * 3 + 9 * 3) + 12 * 6 + 9 * (6 * 3 + 9 * 3)
    norms = 2 * (6 + 9) + 2 * 12 + 2 * (6 + 9) + 2 * 12
    assert sum(p.numel() for p in model.parameters()) == convs + norms + 12 * 10 + 10
    x = torch.randn(2, 1, 28, 28)
    channels = []
    for layer in model:
        x = layer(x)
        if isinstance(layer, DenseLayer):
            channels.append(x.shape[1])
    assert channels == [9, 12, 9, 12]  # in + n*growth within each block


def test_vgg_has_no_shortcut() -> None:
    torch.manual_seed(0)
    model = vgg((1, 16, 16), 5, channels=(4, 8), norm="none").eval()
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        convs[1].weight.zero_()
        convs[1].bias.zero_()
    a, b = model(torch.randn(3, 1, 16, 16)), model(torch.randn(3, 1, 16, 16))
    assert torch.allclose(a, b)  # nothing reaches the head around the zeroed layer


def test_dense_layer_keeps_its_input_channels() -> None:
    layer = DenseLayer(4, 3, "batch", "relu").eval()
    x = torch.randn(2, 4, 5, 5)
    y = layer(x)
    assert y.shape == (2, 7, 5, 5) and torch.equal(y[:, :4], x)


@pytest.mark.parametrize("name", ["vgg", "densenet"])
def test_recipes_build_them(name: str) -> None:
    recipe = load_recipe(None, [f"model.name={name}"])
    model = build_model(recipe, (1, 28, 28), 10)
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, 10)


def test_bad_densenet_arguments_are_one_line() -> None:
    with pytest.raises(ValueError, match="densenet: expected growth >= 1"):
        densenet((1, 8, 8), 2, growth=0)


@pytest.mark.parametrize(
    "model",
    [
        vgg((3, 32, 32), 10, channels=(4, 8)),
        densenet((3, 32, 32), 10, growth=3, blocks=(2, 2)),
        densenet((1, 28, 28), 10, growth=2, blocks=(1, 1), activation={"name": "prelu"}),
    ],
)
def test_gradients_reach_every_parameter(model: nn.Module) -> None:
    x = torch.randn(4, *(3, 32, 32) if model[0].in_channels == 3 else (1, 28, 28))
    torch.nn.functional.cross_entropy(model(x), torch.arange(4)).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_dense_block_carries_the_stem_features_to_its_end() -> None:
    model = densenet((1, 12, 12), 3, growth=2, blocks=(3,)).eval()
    x = torch.randn(2, 1, 12, 12)
    stem = model[0](x)
    out = model[3](model[2](model[1](stem)))  # the block's three DenseLayers
    assert out.shape[1] == stem.shape[1] + 3 * 2
    assert torch.equal(out[:, : stem.shape[1]], stem)  # concatenated, not summed or replaced
