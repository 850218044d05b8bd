"""Activations with arguments (`trainlab.nn.activations`), against torch.nn.functional and the
slide's formula: leaky ReLU max(0.1x, x) (seed 000), ELU's alpha, PReLU's learnable
per-channel slope (He et al. 2015); recipes reach them; bad arguments are one line."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from trainlab.nn import cnn, mlp, resnet
from trainlab.nn.activations import activation_name, make_activation
from trainlab.run.builders import build_model
from trainlab.run.config import RecipeError, load_recipe

X = torch.linspace(-3, 3, 61, dtype=torch.float64)


def test_leaky_relu_with_slope_is_the_slides_max() -> None:
    act = make_activation({"name": "leaky_relu", "negative_slope": 0.1})
    assert torch.equal(act(X), torch.maximum(0.1 * X, X))


def test_elu_alpha_equals_functional() -> None:
    act = make_activation({"name": "elu", "alpha": 0.5})
    assert torch.equal(act(X), F.elu(X, alpha=0.5))


def test_prelu_is_per_channel_learnable_and_equals_functional() -> None:
    act = make_activation({"name": "prelu", "init": 0.2}, channels=3).double()
    x = torch.randn(4, 3, 5, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        act.weight.copy_(torch.tensor([0.1, 0.2, 0.3]))
    assert torch.equal(act(x), F.prelu(x, act.weight))
    assert act.weight.shape == (3,) and act.weight.requires_grad
    act(x).sum().backward()
    assert act.weight.grad is not None and act.weight.grad.abs().sum() > 0
    shared = make_activation({"name": "prelu", "num_parameters": 1}, channels=3)
    assert shared.weight.shape == (1,)


def test_names_still_work_and_bad_arguments_are_one_line() -> None:
    assert isinstance(make_activation("relu"), torch.nn.ReLU)
    assert activation_name({"name": "elu", "alpha": 2}) == "elu"
    with pytest.raises(ValueError, match="unknown argument 'slope'; accepted: negative_slope"):
        make_activation({"name": "leaky_relu", "slope": 0.1})
    with pytest.raises(ValueError, match="expected 'channels' or an int >= 1"):
        make_activation({"name": "prelu", "num_parameters": 0})


def test_prelu_on_features_has_one_slope_per_unit() -> None:
    act = make_activation({"name": "prelu", "num_parameters": "channels"}, channels=5).double()
    x = torch.randn(7, 5, dtype=torch.float64)
    with torch.no_grad():
        act.weight.copy_(torch.linspace(0.0, 1.0, 5))
    assert torch.equal(act(x), F.prelu(x, act.weight))
    assert torch.equal(act(x), torch.where(x > 0, x, x * act.weight))  # slope j on feature j


@pytest.mark.parametrize(
    ("model", "sizes"),
    [
        (mlp((6,), 2, widths=(5, 7), activation={"name": "prelu"}), [5, 7]),
        (cnn((1, 8, 8), 2, channels=(4, 6), activation={"name": "prelu"}), [4, 6]),
        (resnet((1, 8, 8), 2, depth=8, width=4, activation={"name": "prelu"}), [4] * 3 + [8] * 2),
    ],
)
def test_zoo_builders_size_prelu_by_width(model: torch.nn.Module, sizes: list[int]) -> None:
    prelus = [m for m in model.modules() if isinstance(m, torch.nn.PReLU)]
    assert [m.weight.numel() for m in prelus][: len(sizes)] == sizes


def test_zoo_builders_pass_activation_arguments() -> None:
    spec = {"name": "leaky_relu", "negative_slope": 0.1}
    for model in (mlp((6,), 2, widths=(4,), activation=spec), resnet((1, 8, 8), 2, depth=8,
                  activation=spec), cnn((1, 8, 8), 2, channels=(4,), activation=spec)):  # fmt: skip
        acts = [m for m in model.modules() if isinstance(m, torch.nn.LeakyReLU)]
        assert acts and all(m.negative_slope == 0.1 for m in acts)
    assert activation_name("relu") == "relu" and activation_name(spec) == "leaky_relu"


@pytest.mark.parametrize("name", ["mlp", "cnn", "resnet"])
def test_recipes_build_prelu_per_channel(name: str) -> None:
    shape = (1, 8, 8)
    recipe = load_recipe(None, [f"model.name={name}", "model.activation={name: prelu}"])
    model = build_model(recipe, shape, 10)
    prelus = [m for m in model.modules() if isinstance(m, torch.nn.PReLU)]
    assert prelus and all(m.weight.numel() > 1 for m in prelus)
    assert model(torch.randn(2, *shape)).shape == (2, 10)


def test_recipe_rejects_a_bad_activation_argument_in_one_line() -> None:
    with pytest.raises(RecipeError, match="model.activation: activation 'elu': unknown argument"):
        load_recipe(None, ["model.activation={name: elu, alhpa: 2}"])
