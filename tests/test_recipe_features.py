"""Techniques switched on from a recipe reach the model and the data as the recipe says."""

import json

import pytest
import torch

from trainlab.nn import BatchRenorm2d, GaussianNoise, Maxout, VanillaDropout
from trainlab.run.builders import build_model
from trainlab.run.config import RecipeError, validate_recipe
from trainlab.run.experiment import build
from trainlab.run.runner import train_recipe

DIGITS = {"data": {"name": "digits", "batch_size": 32}, "train": {"epochs": 1}}


def recipe(**sections):
    raw = json.loads(json.dumps(DIGITS))
    for key, value in sections.items():
        raw.setdefault(key, {}).update(value) if isinstance(value, dict) else raw.update(
            {key: value}
        )
    return validate_recipe(raw)


def modules(model):
    return [type(m) for m in model.modules()]


def test_model_options_build_the_named_layers():
    r = recipe(model={"name": "cnn", "channels": [4, 8], "norm": "batch_renorm", "input_noise": 0.1,
                      "dropout": 0.2, "dropout_kind": "vanilla"})  # fmt: skip
    model = build_model(r, (1, 8, 8), 10)
    assert BatchRenorm2d in modules(model) and GaussianNoise in modules(model)
    assert VanillaDropout in modules(model)
    mlp = build_model(
        recipe(model={"name": "mlp", "widths": [16], "activation": "maxout"}), (64,), 10
    )
    assert Maxout in modules(mlp)


def test_init_section_uses_the_named_initializer_and_seed():
    r = recipe(
        model={"name": "mlp", "widths": [300]}, init={"weight": "xavier_uniform", "bias": "zeros"}
    )
    a, b = build_model(r, (1, 8, 8), 10), build_model(r, (1, 8, 8), 10)
    w = a[1].weight
    bound = (6 / (64 + 300)) ** 0.5  # Glorot & Bengio 2010
    assert w.abs().max() <= bound and w.abs().max() > 0.95 * bound
    assert torch.all(a[1].bias == 0)
    torch.testing.assert_close(w, b[1].weight, rtol=0, atol=0)


def test_preprocess_is_fitted_on_train_and_changes_the_input_shape():
    exp = build(
        recipe(model={"name": "mlp", "widths": [8]}, data={"preprocess": {"name": "pca", "k": 12}})
    )
    assert exp.loader.split.x.shape[1:] == (12,) and exp.test.x.shape[1:] == (12,)
    torch.testing.assert_close(exp.loader.split.x.mean(0), torch.zeros(12), atol=1e-5, rtol=0)


def test_label_noise_changes_the_stated_fraction_and_is_recorded(tmp_path):
    clean = build(recipe(model={"name": "mlp", "widths": [8]}))
    noisy = build(recipe(model={"name": "mlp", "widths": [8]}, data={"label_noise": 0.25}))
    changed = (clean.loader.split.y != noisy.loader.split.y).nonzero().flatten().tolist()
    assert changed == sorted(noisy.notes["label_noise_indices"])
    assert len(changed) == round(0.25 * len(clean.loader.split.y))
    assert torch.equal(clean.val.y, noisy.val.y) and torch.equal(clean.test.y, noisy.test.y)


def test_augmentation_in_the_loop_is_seeded(tmp_path):
    crop = {"augment": [{"name": "crop", "padding": 1}]}
    r = recipe(model={"name": "mlp", "widths": [16]}, data=crop, runs_dir=str(tmp_path))
    first, second = train_recipe(r, quiet=True), train_recipe(r, quiet=True)
    plain = train_recipe(
        recipe(model={"name": "mlp", "widths": [16]}, runs_dir=str(tmp_path)), quiet=True
    )
    assert first.test_loss == second.test_loss != plain.test_loss


@pytest.mark.parametrize(
    ("sections", "expected"),
    [
        ({"model": {"norm": "lyer"}}, "unknown normalization 'lyer' (did you mean 'layer'?)"),
        ({"model": {"dropout": 1.0}}, "model.dropout: Input should be less than 1 (got 1.0)"),
        ({"init": {"weight": "xavier_unifrom"}}, "unknown initializer 'xavier_unifrom'"),
        (
            {"data": {"label_noise": 1.5}},
            "data.label_noise: Input should be less than or equal to 1",
        ),
        ({"data": {"augment": [{"name": "flop"}]}}, "data.augment"),
        ({"data": {"preprocess": {"name": "zca"}}}, "unknown preprocessor 'zca'"),
    ],
)
def test_bad_technique_settings_fail_in_one_line(sections, expected):
    with pytest.raises(RecipeError) as info:
        recipe(**sections)
    assert expected in str(info.value) and "\n" not in str(info.value)


def test_pca_k_above_feature_count_fails_before_training():
    with pytest.raises(RecipeError, match="data.preprocess: .*k must be in 1..64"):
        build(recipe(model={"name": "mlp"}, data={"preprocess": {"name": "pca", "k": 65}}))


def test_subset_keeps_a_seeded_part_of_the_training_split():
    sections = {"model": {"name": "mlp", "widths": [8]}, "data": {"subset": 200}}
    a, b = build(recipe(**sections)), build(recipe(**sections))
    assert len(a.loader.split) + len(a.val) == 200 and len(a.test) == 360
    assert torch.equal(a.loader.split.x, b.loader.split.x)
    with pytest.raises(RecipeError, match="data.subset: 5000 exceeds the 1437 training examples"):
        build(recipe(data={"subset": 5000}))


def test_train_threads_sets_torch_intra_op_threads_for_the_run_only():
    from trainlab.run.runner import run_torch_state

    torch.set_num_threads(2)
    r = recipe(model={"name": "mlp", "widths": [8]}, train={"epochs": 1, "threads": 1})
    with run_torch_state(r):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2  # the caller's count is back


def test_batch_growth_from_the_recipe_changes_the_steps_per_epoch(tmp_path):
    """data.batch_growth: the loop takes fewer, larger batches after each milestone epoch."""
    r = recipe(
        model={"name": "mlp", "widths": [8]},
        data={"batch_growth": {"epochs": [1], "factor": 4}},
        train={"epochs": 2, "log_every": 1, "early_stopping": None},
        runs_dir=str(tmp_path),
    )
    result = train_recipe(r, quiet=True)
    lines = [json.loads(x) for x in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    steps = [x for x in lines if x["kind"] == "step"]
    n = len(result.experiment.loader.split)
    first, second = -(-n // 32), -(-n // 128)
    assert [x["epoch"] for x in steps].count(1) == first  # epochs are 1-indexed in the log
    assert [x["epoch"] for x in steps].count(2) == second
    with pytest.raises(RecipeError, match="data.batch_growth.factor"):
        recipe(data={"batch_growth": {"epochs": [1], "factor": 1}})


def test_train_tta_scores_the_test_split_with_flips(tmp_path):
    """train.tta: the final test line is the flip-averaged evaluation of the trained model."""
    from trainlab.train import evaluate

    r = recipe(model={"name": "mlp", "widths": [16]}, train={"tta": ["hflip"]})
    result = train_recipe(r.model_copy(update={"runs_dir": str(tmp_path)}), quiet=True)
    exp = result.experiment
    want = evaluate(exp.model, exp.test, exp.loss_fn, 1000, True, ("hflip",))
    plain = evaluate(exp.model, exp.test, exp.loss_fn, 1000, True)
    assert (result.test_loss, result.test_acc) == want != plain
    with pytest.raises(RecipeError, match="train.tta"):
        recipe(train={"tta": ["rot90"]})


def test_keep_checkpoints_keeps_a_trajectory_for_pca_directions(tmp_path, capsys):
    """train.keep_checkpoints: the newest N checkpoints stay, enough for a PCA plane."""
    from trainlab.cli import main

    r = recipe(
        model={"name": "mlp", "widths": [8]},
        train={"epochs": 4, "keep_checkpoints": 3, "early_stopping": None},
        diagnose={"probes": False, "report": False},
        runs_dir=str(tmp_path),
    )
    run = train_recipe(r, quiet=True).run_dir
    assert len(list((run / "checkpoints").glob("step-*"))) == 3
    args = ["landscape", str(run), "--directions", "pca", "--grid", "3", "--examples", "64"]
    assert main(args) == 0
