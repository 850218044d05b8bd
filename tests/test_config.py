"""Recipe validation: every bad input is one line naming the field, value and closest name."""

import pytest

from trainlab.run.config import Recipe, RecipeError, apply_overrides, load_recipe, validate_recipe


def error_of(raw: dict) -> str:
    with pytest.raises(RecipeError) as info:
        validate_recipe(raw)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_default_recipe_is_small_bn_cnn_on_fashion_mnist():
    recipe = Recipe()
    assert recipe.data.name == "fashion_mnist"
    assert recipe.model.name == "cnn" and recipe.model.norm == "batch"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            {"model": {"name": "mlp", "widhts": [3]}},
            "model.widhts: unknown field (did you mean 'widths'?)",
        ),
        ({"optimzer": {}}, "optimzer: unknown field (did you mean 'optimizer'?)"),
        ({"model": {"name": "cnnn"}}, "unknown model 'cnnn' (did you mean 'cnn'?)"),
        (
            {"data": {"name": "fashion"}},
            "unknown dataset 'fashion' (did you mean 'fashion_mnist'?)",
        ),
        ({"model": {"activation": "rleu"}}, "unknown activation 'rleu' (did you mean 'relu'?)"),
        ({"train": {"epochs": "many"}}, "train.epochs: Input should be a valid integer"),
        (
            {"data": {"batch_size": 0}},
            "data.batch_size: Input should be greater than or equal to 1",
        ),
        ({"model": {"name": "resnet", "depth": 21}}, "depth must be 6n+2"),
        ({"optimizer": {"lr": -0.1}}, "optimizer.lr: Input should be greater than 0"),
    ],
)
def test_bad_recipes_name_field_and_value(raw, expected):
    assert expected in error_of(raw)


def test_wrong_type_names_the_value():
    assert "(got 'many')" in error_of({"train": {"epochs": "many"}})


def test_overrides_parse_yaml_values_and_create_sections():
    raw = apply_overrides(
        {}, ["optimizer.lr=0.05", "model.widths=[8, 4]", "train.channels_last=false"]
    )
    assert raw == {
        "optimizer": {"lr": 0.05},
        "model": {"widths": [8, 4]},
        "train": {"channels_last": False},
    }


def test_override_without_equals_is_rejected():
    with pytest.raises(RecipeError, match="--set expects key.path=value"):
        apply_overrides({}, ["optimizer.lr"])


def test_load_recipe_file_with_overrides(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("model:\n  name: mlp\n  widths: [16]\noptimizer:\n  name: adam\n  lr: 0.001\n")
    recipe = load_recipe(path, ["model.widths=[32, 32]", "seed=3"])
    assert recipe.model.widths == [32, 32] and recipe.seed == 3 and recipe.optimizer.lr == 0.001


def test_missing_file_and_bad_yaml_are_one_line(tmp_path):
    with pytest.raises(RecipeError, match="recipe file not found"):
        load_recipe(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed\n")
    with pytest.raises(RecipeError, match="not valid YAML") as info:
        load_recipe(bad)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"multitask": {"tasks": [{"name": "a", "nosuch": 1}]}},
         "recipe field multitask.tasks.0.nosuch: unknown field; valid: name, weight, derive"),
        ({"ensemble": {"members": 2, "nosuch": 1}}, "recipe field ensemble.nosuch: unknown field"),
        ({"data": {"batch_growth": {"epochs": [1], "fctor": 2}}}, "(did you mean 'factor'?)"),
    ],
)  # fmt: skip
def test_unknown_fields_in_optional_sections_and_list_items(raw, expected):
    """Found by the fuzzer: these once crashed the error message itself (NoneType)."""
    with pytest.raises(RecipeError) as err:
        validate_recipe(raw)
    assert expected in str(err.value)
