"""Verdicts: each rule on synthetic records with a known answer, then every verdict triggered
by a deliberately broken recipe (small data, few steps) and none by a healthy one."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import numpy as np
import pytest
import torch

from trainlab.diagnose.loss_watch import LossWatch
from trainlab.diagnose.verdicts import find_verdicts, format_verdicts
from trainlab.run.config import RecipeError, validate_recipe
from trainlab.run.runner import RunStopped, train_recipe
from trainlab.train import StepRecord

# ---------------------------------------------------------------- synthetic records


def probe_summary(steps: list[int], layers: dict, params: dict) -> dict[str, Any]:
    """The structure of Probes.summary() with only what the rules read."""
    full_layers = {
        name: {"kind": kind, "mean": None, "std": None, "hist": None, "edges": None,
               "hist_total": None, "dead_fraction": None, "saturated_fraction": None, **extra}
        for name, (kind, extra) in layers.items()
    }  # fmt: skip
    full_params = {
        name: {"layer": name.rpartition(".")[0], "grad_norm": None, "weight_norm": None,
               "update_ratio": None, **{k: np.asarray(v, float) for k, v in extra.items()}}
        for name, extra in params.items()
    }  # fmt: skip
    return {"every": 5, "probes": len(steps), "stride": 1, "steps": np.array(steps),
            "layers": full_layers, "params": full_params, "first_nonfinite": None}  # fmt: skip


def epochs(train: list[float], val: list[float], train_acc: list[float] | None = None) -> list:
    accs = train_acc or [0.99] * len(train)
    return [
        {"kind": "epoch", "epoch": i + 1, "step": 10 * (i + 1), "train_loss": t, "val_loss": v,
         "train_acc": a, "val_acc": a}
        for i, (t, v, a) in enumerate(zip(train, val, accs, strict=True))
    ]  # fmt: skip


def codes(verdicts: list) -> list[str]:
    return [v.code for v in verdicts]


def test_dead_relus_since_the_step_they_stayed_dead() -> None:
    dead = np.array([0.1, 0.7, 0.2, 0.6, 0.65, 0.63])
    probes = probe_summary(
        [1, 50, 100, 150, 200, 250], {"4": ("relu", {"dead_fraction": dead})}, {}
    )
    (v,) = find_verdicts([], probes)
    assert v.message == "layer 4: 63% of ReLUs dead since step 150"
    assert v.evidence == {"layer": "4", "dead_fraction": 0.63, "since_step": 150}


def test_gradient_ratio_between_first_and_last_weight_layer() -> None:
    layers = {"1": ("linear", {}), "5": ("batchnorm1d", {}), "10": ("linear", {})}
    grads = {
        "1.weight": {"grad_norm": [2e-6, 1e-6, 1e-6]},
        "1.bias": {"grad_norm": [1.0] * 3},
        "5.weight": {"grad_norm": [1e-9] * 3},  # a norm layer's scale: not a weight layer
        "10.weight": {"grad_norm": [1.0, 1.0, 2.0]},
    }
    (v,) = find_verdicts([], probe_summary([1, 5, 10], layers, grads))
    assert v.message == "vanishing gradients: layer 1 gradient norm is 1e-6 of layer 10's"
    grads["1.weight"]["grad_norm"] = [5e3] * 3
    (v,) = find_verdicts([], probe_summary([1, 5, 10], layers, grads))
    assert v.code == "exploding_gradients" and "is 5e3 of layer 10's" in v.message


def test_exploding_gradient_growth_over_the_run() -> None:
    layers = {"0": ("linear", {}), "2": ("linear", {})}
    grads = {"0.weight": {"grad_norm": [0.3, 30.0, 3e3]}, "2.weight": {"grad_norm": [0.4, 40, 4e3]}}
    (v,) = find_verdicts([], probe_summary([1, 5, 10], layers, grads))
    assert v.code == "exploding_gradients"
    assert v.message == (
        "exploding gradients: gradient norm grew from 0.5 at step 1 to 5e+03 at step 10 (×1e4)"
    )


def test_update_ratio_far_from_1e_3() -> None:
    layers = {"0": ("linear", {}), "2": ("linear", {})}
    ratios = {"0.weight": {"update_ratio": [2e-3] * 3}, "2.weight": {"update_ratio": [0.3] * 3},
              "2.bias": {"update_ratio": [50.0] * 3}}  # fmt: skip
    (v,) = find_verdicts([], probe_summary([1, 2, 3], layers, ratios))
    expected = "update/weight ratio 3e-1 in layer 2 (healthy ~1e-3): learning rate too high"
    assert v.message == expected
    ratios["2.weight"]["update_ratio"] = [1e-3] * 3
    ratios["0.weight"]["update_ratio"] = [np.nan, 2e-7, 3e-7]
    (v,) = find_verdicts([], probe_summary([1, 2, 3], layers, ratios))
    assert v.code == "update_ratio_low" and "ratio 2e-7 in layer 0" in v.message


def test_saturated_units_over_the_last_probes() -> None:
    frac = np.array([0.9, 0.1, 0.2, 0.3, 0.5, 0.4])  # last five: median 0.3
    probes = probe_summary(list(range(6)), {"3": ("tanh", {"saturated_fraction": frac})}, {})
    (v,) = find_verdicts([], probes)
    assert v.message == "layer 3: 30% of tanh units saturated (local gradient < 0.02)"


def test_overfitting_validation_rising_while_training_falls() -> None:
    train = [1.0, 0.6, 0.4, 0.3, 0.25, 0.2, 0.15, 0.1, 0.08]
    val = [1.0, 0.7, 0.5, 0.45, 0.46, 0.47, 0.49, 0.5, 0.49]
    (v,) = find_verdicts(epochs(train, val))
    assert v.message.startswith(
        "overfitting: validation loss rising for 5 epochs while training loss falls (gap 0.41;"
    )
    assert v.evidence["best_epoch"] == 4
    assert find_verdicts(epochs(train, val[:5] + [0.44] * 4)) == []  # not rising: no verdict


def test_underfitting_and_its_threshold() -> None:
    records = epochs([2.0] * 20, [2.0] * 20, [0.5] * 19 + [0.61])
    (v,) = find_verdicts(records)
    assert v.message == "underfitting: training accuracy 61% after 20 epochs"
    assert find_verdicts(epochs([2.0], [2.0], [0.8])) == []


def test_divergence_from_a_nonfinite_loss_the_loss_watch_or_the_logged_losses() -> None:
    probes = probe_summary([1], {}, {})
    probes["first_nonfinite"] = {"where": "activation", "layer": "3", "step": 40}
    (v,) = find_verdicts([{"kind": "nonfinite", "step": 40, "value": "nan"}], probes)
    assert v.message == (
        "learning rate too high: loss diverged at step 40 (loss became nan); first NaN/Inf in "
        "the activation of layer 3 at step 40"
    )
    watch = {"kind": "loss_watch", "step": 90, "first_step": 1, "first_loss": 2.3,
             "peak_step": 12, "peak_loss": 1e6, "factor": 3.0, "diverged_step": 4}  # fmt: skip
    (v,) = find_verdicts([watch])
    assert v.code == "diverged" and "loss diverged at step 4 (from 2.3 at step 1" in v.message
    assert find_verdicts([{**watch, "diverged_step": None}]) == []
    steps = [{"kind": "step", "step": 50 * i, "loss": x} for i, x in enumerate([2, 3, 7, 9], 1)]
    (v,) = find_verdicts(steps)
    assert v.evidence == {"step": 150, "loss": 7, "first": 2}


def test_format_lists_messages_and_advice() -> None:
    assert "no problem found" in format_verdicts([])
    text = format_verdicts(find_verdicts(epochs([2.0], [2.0], [0.5])))
    assert "underfitting: training accuracy 50% after 1 epochs" in text and "try:" in text


# ---------------------------------------------------------------- broken recipes


BASE: dict[str, Any] = {
    "data": {"name": "digits", "batch_size": 64, "normalize": "global"},
    "model": {"name": "mlp", "widths": [64, 64]},
    "optimizer": {"name": "adam", "lr": 1e-3},
    "schedule": {"name": "constant"},
    "train": {"epochs": 3, "early_stopping": None, "checkpoint_every": 100, "log_every": 5,
              "channels_last": False, "threads": 1},
    "diagnose": {"interval": 5, "report": False},
}  # fmt: skip

BROKEN = {
    # every weight and bias 0: every ReLU outputs 0, so none ever passes a gradient
    "zero_init": ({"init": {"weight": "zeros", "bias": "zeros"}}, {"dead_relu"}),
    # lr 10 with SGD: the loss leaves 2.3 for 1e6 within a few steps
    "lr_10": ({"optimizer": {"name": "sgd", "lr": 10.0}, "train": {"epochs": 2}},
              {"diverged", "exploding_gradients"}),
    # 20 sigmoid layers: each multiplies the gradient by at most 1/4 on the way back
    "sigmoid_depth_20": ({"model": {"widths": [32] * 20, "activation": "sigmoid"},
                          "train": {"epochs": 1}}, {"vanishing_gradients"}),
    # tanh with N(0, 1) weights on 64 inputs: pre-activations of std ~8, outputs at ±1
    "tanh_std_1": ({"model": {"activation": "tanh", "widths": [128, 128]},
                    "init": {"weight": {"name": "normal", "std": 1.0}}, "train": {"epochs": 1}},
                   {"saturated"}),
    # plain SGD at lr 0.5: updates of ~5% of the weights per step
    "sgd_lr_0.5": ({"optimizer": {"name": "sgd", "lr": 0.5}, "train": {"epochs": 2}},
                   {"update_ratio_high"}),
    # lr 1e-4 for 3 epochs: nothing is learned
    "tiny_lr": ({"optimizer": {"name": "sgd", "lr": 1e-4}}, {"underfitting", "update_ratio_low"}),
    # 100 training examples (200, half kept for validation), no regularization, a 256-256
    # MLP and Adam 1e-2: memorized within 7 epochs, then the validation loss climbs
    "no_reg_200_examples": (
        {"data": {"subset": 200, "val_fraction": 0.5, "batch_size": 20},
         "model": {"widths": [256, 256]}, "optimizer": {"name": "adam", "lr": 1e-2},
         "train": {"epochs": 15}, "diagnose": {"interval": 20}},
        {"overfitting"},
    ),
}  # fmt: skip

HEALTHY = {"train": {"epochs": 10}}  # the base recipe: Adam 1e-3 on digits, ~96% test accuracy


def merged(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in over.items():
        is_section = isinstance(value, dict) and isinstance(out.get(key), dict)
        out[key] = merged(out[key], value) if is_section else value
    return out


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def run(tmp_path, name: str, over: dict) -> list[dict]:
    recipe = validate_recipe(merged(BASE, {**over, "name": name, "runs_dir": str(tmp_path)}))
    result = train_recipe(recipe, quiet=True)
    stored = json.loads((result.run_dir / "verdicts.json").read_text())
    assert stored == [v.as_dict() for v in result.verdicts]
    assert (result.run_dir / "probes.json").is_file()
    return stored


@pytest.mark.parametrize("name", list(BROKEN))
def test_each_broken_recipe_raises_its_verdict(tmp_path, name) -> None:
    over, expected = BROKEN[name]
    found = run(tmp_path, name, over)
    assert expected <= {v["code"] for v in found}, [v["message"] for v in found]
    for v in found:
        assert re.search(r"\d", v["message"]) and v["evidence"] and v["advice"]


def test_healthy_recipe_raises_no_verdict(tmp_path) -> None:
    assert run(tmp_path, "healthy", HEALTHY) == []


def test_every_rule_has_a_broken_recipe() -> None:
    rule_codes = {"dead_relu", "diverged", "exploding_gradients", "vanishing_gradients",
                  "saturated", "update_ratio_high", "update_ratio_low", "underfitting",
                  "overfitting"}  # fmt: skip
    assert set().union(*(codes for _, codes in BROKEN.values())) == rule_codes


def test_nan_loss_run_leaves_its_verdict(tmp_path) -> None:
    over = {"optimizer": {"name": "sgd", "lr": 1e30}, "train": {"epochs": 1}}
    recipe = validate_recipe(merged(BASE, {**over, "name": "nan", "runs_dir": str(tmp_path)}))
    with pytest.raises(RunStopped):
        train_recipe(recipe, quiet=True)
    (run_dir,) = tmp_path.iterdir()
    (v, *_) = json.loads((run_dir / "verdicts.json").read_text())
    assert v["code"] == "diverged" and "loss became" in v["message"]


def test_unknown_probe_layer_is_one_line_before_the_run_directory(tmp_path) -> None:
    over = {"diagnose": {"layers": ["1", "fc9"]}, "runs_dir": str(tmp_path)}
    recipe = validate_recipe(merged(BASE, {**over, "name": "bad"}))
    with pytest.raises(RecipeError, match=r"^recipe field diagnose.layers: .*'fc9'") as err:
        train_recipe(recipe, quiet=True)
    assert "\n" not in str(err.value) and not any(tmp_path.iterdir())


def test_loss_watch_finds_the_first_step_past_three_times_the_first_loss() -> None:
    def record(step: int, loss: float) -> StepRecord:
        return StepRecord(epoch=0, batch=step - 1, step=step, loss=loss, correct=0, size=1, lr=1)

    watch = LossWatch()
    for step, loss in enumerate([2.3, 2.0, 6.8, float("nan"), 7.0, 1e6, 3.0], 1):
        watch.on_step_end(record(step, loss))
    line = watch.record()
    assert line["first_loss"] == 2.3 and line["diverged_step"] == 5
    assert (line["peak_step"], line["peak_loss"]) == (6, 1e6) and line["step"] == 7
    resumed = LossWatch()  # a resumed run continues from the checkpointed state
    resumed.load_state_dict(watch.state_dict())
    resumed.on_step_end(record(8, 0.1))
    assert resumed.record() == {**line, "step": 8}
