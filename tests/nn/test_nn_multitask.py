"""Multi-task learning (trainlab.nn.multitask, trainlab.data.tasks): the loss is Σ w_k L_k by
hand, a zero weight leaves its head without gradient, derived labels follow their tables, and
a multi-task recipe trains and reports each task's accuracy."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from trainlab import nn as tnn
from trainlab.data import TensorSplit
from trainlab.data.tasks import derive_labels, derived_classes, with_task_labels
from trainlab.nn.multitask import MultiTaskLoss, MultiTaskNet, task_accuracies
from trainlab.run.config import Recipe, RecipeError, validate_recipe
from trainlab.run.runner import train_recipe

QUIET = (
    {"diagnose": {"probes": False, "report": False}} if "diagnose" in Recipe.model_fields else {}
)


def _hand_cross_entropy(logits: list[list[float]], labels: list[int]) -> float:
    """mean over rows of log Σ_j e^{s_j} − s_y."""
    terms = [
        math.log(sum(math.exp(s) for s in row)) - row[y]
        for row, y in zip(logits, labels, strict=True)
    ]
    return sum(terms) / len(terms)


def test_loss_is_weighted_sum_of_task_cross_entropies_by_hand() -> None:
    g = torch.Generator().manual_seed(0)
    outputs = torch.randn(5, 3 + 2, generator=g, dtype=torch.float64)
    targets = torch.tensor([[0, 1], [2, 0], [1, 1], [0, 0], [2, 1]])
    loss = MultiTaskLoss((3, 2), (0.7, 2.5))(outputs, targets)
    first = _hand_cross_entropy(outputs[:, :3].tolist(), targets[:, 0].tolist())
    second = _hand_cross_entropy(outputs[:, 3:].tolist(), targets[:, 1].tolist())
    assert float(loss) == pytest.approx(0.7 * first + 2.5 * second, rel=1e-12)


def _net() -> MultiTaskNet:
    torch.manual_seed(0)
    return MultiTaskNet.from_single_head(tnn.mlp((1, 4, 4), 10, widths=(8,)), (10, 2))


def test_zero_weight_leaves_its_head_without_gradient() -> None:
    net = _net()
    x = torch.randn(6, 1, 4, 4, generator=torch.Generator().manual_seed(1))
    y = torch.stack([torch.arange(6) % 10, torch.arange(6) % 2], dim=1)
    MultiTaskLoss((10, 2), (1.0, 0.0))(net(x), y).backward()
    silent, spoken = net.heads[1], net.heads[0]
    assert all(p.grad is None or not p.grad.any() for p in silent.parameters())
    assert all(p.grad is not None and p.grad.any() for p in spoken.parameters())
    assert any(p.grad is not None and p.grad.any() for p in net.trunk.parameters())


def test_from_single_head_shares_the_trunk_and_concatenates_heads() -> None:
    net = _net()
    assert isinstance(net.trunk[-1], nn.ReLU) and len(net.heads) == 2
    x = torch.randn(3, 1, 4, 4)
    h = net.trunk(x)
    expected = torch.cat([net.heads[0](h), net.heads[1](h)], dim=1)
    assert torch.equal(net(x), expected) and net(x).shape == (3, 12)


def test_task_accuracies_by_hand() -> None:
    net = _net()
    x = torch.randn(20, 1, 4, 4, generator=torch.Generator().manual_seed(2))
    y = torch.stack([torch.arange(20) % 10, torch.arange(20) % 2], dim=1)
    out = net.eval()(x)
    hand = [float((out[:, :10].argmax(1) == y[:, 0]).float().mean()),
            float((out[:, 10:].argmax(1) == y[:, 1]).float().mean())]  # fmt: skip
    assert task_accuracies(net, x, y, (10, 2), batch_size=7) == pytest.approx(hand)


def test_derived_labels_follow_their_tables() -> None:
    y = torch.arange(10)
    assert derive_labels("fashion_groups", y).tolist() == [0, 1, 0, 1, 0, 2, 0, 2, 2, 2]
    assert derive_labels("fashion_footwear", y).tolist() == [0, 0, 0, 0, 0, 1, 0, 1, 0, 1]
    assert derive_labels("parity", y).tolist() == [0, 1] * 5
    assert derived_classes("fashion_groups", 10) == 3
    with pytest.raises(ValueError, match="maps 10 classes"):
        derived_classes("fashion_groups", 4)
    split = with_task_labels(TensorSplit(torch.zeros(10, 2), y), [None, "fashion_groups"])
    assert split.y.shape == (10, 2) and torch.equal(split.y[:, 0], y)


def test_bad_task_weight_and_name_are_one_line_errors() -> None:
    tasks = [{"name": "digit"}, {"name": "parity", "derive": "parity", "weight": -1}]
    with pytest.raises(
        RecipeError, match=r"multitask\.tasks\.1\.weight: .*greater than or equal to 0"
    ):
        validate_recipe({"multitask": {"tasks": tasks}})
    tasks[1] = {"name": "parity", "derive": "pairty"}
    with pytest.raises(RecipeError, match="did you mean 'parity'"):
        validate_recipe({"multitask": {"tasks": tasks}})


def test_multitask_recipe_reports_each_task(tmp_path) -> None:  # noqa: ANN001
    recipe = validate_recipe({
        "name": "mt", "runs_dir": str(tmp_path), **QUIET,
        "data": {"name": "digits", "batch_size": 64},
        "model": {"name": "mlp", "widths": [32]},
        "optimizer": {"name": "sgd", "lr": 0.1, "momentum": 0.9},
        "schedule": {"name": "constant"},
        "train": {"epochs": 2, "threads": 1, "early_stopping": None},
        "multitask": {"tasks": [{"name": "digit"}, {"name": "odd", "derive": "parity"}]},
    })  # fmt: skip
    result = train_recipe(recipe, quiet=True)
    exp = result.experiment
    assert exp is not None and exp.test.y.shape[1] == 2
    accs = result.metrics["task_test_acc"]
    assert list(accs) == ["digit", "odd"]
    assert list(accs.values()) == task_accuracies(exp.model, exp.test.x, exp.test.y, (10, 2))
    assert accs["digit"] > 0.5 and accs["odd"] > 0.6
