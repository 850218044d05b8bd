"""Techniques the decks teach, reached from a recipe (issue 15), each against a reference:
gradient clipping (torch's clip_grad_norm_ / clip_grad_value_), warm-up in front of any
schedule and per-epoch staircase 1/t and 1/sqrt(t) (closed forms), Adam without bias
correction (the slides' "incomplete" form, by hand), SWA / Polyak averages and MC-dropout
test scores in a run's metrics (recomputed independently)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from trainlab.nn.dropout import mc_predict
from trainlab.run.builders import build_optimizer, build_schedule
from trainlab.run.config import RecipeError, load_recipe, validate_recipe
from trainlab.run.runner import train_recipe
from trainlab.train import evaluate

QUIET = {"diagnose": {"probes": False, "report": False}}


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 3)).double()


def _grads(gen: torch.Generator, model: nn.Module, scale: float) -> list[torch.Tensor]:
    return [scale * torch.randn(p.shape, generator=gen, dtype=p.dtype) for p in model.parameters()]


@pytest.mark.parametrize(("clip", "scale"), [({"norm": 0.5}, 3.0), ({"value": 0.2}, 1.0)])
def test_clip_from_a_recipe_equals_torch_clipping(clip: dict, scale: float) -> None:
    sets = ["optimizer.name=sgd", "optimizer.lr=0.1", "optimizer.momentum=0.9"]
    recipe = load_recipe(None, sets + [f"optimizer.clip.{k}={v}" for k, v in clip.items()])
    assert recipe.optimizer.kwargs() == {"lr": 0.1, "momentum": 0.9, "dampening": 0.0,
                                         "nesterov": False, "weight_decay": 0.0}  # fmt: skip
    ours, theirs = _model(), _model()
    opt = build_optimizer(recipe.optimizer, ours)
    ref = torch.optim.SGD(theirs.parameters(), lr=0.1, momentum=0.9)
    gen = torch.Generator().manual_seed(3)
    for _ in range(6):
        grads = _grads(gen, ours, scale)
        for model in (ours, theirs):
            for p, g in zip(model.parameters(), grads, strict=True):
                p.grad = g.clone()
        if "norm" in clip:
            total = torch.nn.utils.clip_grad_norm_(theirs.parameters(), clip["norm"])
            assert total > clip["norm"]  # the clip is active in this test
        else:
            torch.nn.utils.clip_grad_value_(theirs.parameters(), clip["value"])
        opt.step()
        ref.step()
    for a, b in zip(ours.parameters(), theirs.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


def test_clip_needs_exactly_one_kind_and_a_trainlab_optimizer() -> None:
    with pytest.raises(RecipeError, match="exactly one of norm or value"):
        load_recipe(None, ["optimizer.clip.norm=1", "optimizer.clip.value=1"])
    recipe = load_recipe(None, ["optimizer.name=torch.SGD", "optimizer.clip.norm=1"])
    with pytest.raises(RecipeError, match="clip.*trainlab.optim alias"):
        build_optimizer(recipe.optimizer, _model())


def test_warmup_ramps_then_runs_the_schedule_over_the_rest() -> None:
    recipe = load_recipe(None, ["schedule.name=cosine", "schedule.warmup.epochs=2",
                                "schedule.warmup.start_factor=0.1"])  # fmt: skip
    lr, total, per_epoch = 0.2, 100, 10
    sched = build_schedule("cosine", {}, lr, total, per_epoch, recipe.schedule.warmup)
    for t in range(total):
        if t < 20:
            want = 0.02 + (lr - 0.02) * t / 20
        else:
            want = 0.5 * lr * (1 + math.cos(math.pi * (t - 20) / 80))
        assert sched(t) == pytest.approx(want, rel=1e-12, abs=1e-15)
    with pytest.raises(RecipeError, match="leave none of the run's 100 steps"):
        build_schedule("cosine", {}, lr, total, per_epoch, recipe.schedule.warmup.model_copy(
            update={"epochs": 10}))  # fmt: skip


@pytest.mark.parametrize("name", ["inverse_time", "inverse_sqrt"])
def test_staircase_per_epoch_forms(name: str) -> None:
    kwargs = {"staircase": "epoch"} | ({"k": 0.5} if name == "inverse_time" else {})
    sched = build_schedule(name, kwargs, 0.3, 200, 25)
    for t in range(200):
        epoch = t // 25
        want = 0.3 / (1 + 0.5 * epoch) if name == "inverse_time" else 0.3 / math.sqrt(epoch + 1)
        assert sched(t) == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize("name", ["adam", "adamw"])
def test_adam_without_bias_correction_by_hand(name: str) -> None:
    sets = ["optimizer.lr=0.01", "optimizer.weight_decay=0", "optimizer.bias_correction=false"]
    recipe = load_recipe(None, [f"optimizer.name={name}", *sets])
    model = _model()
    start = [p.detach().clone() for p in model.parameters()]
    opt = build_optimizer(recipe.optimizer, model)
    gen = torch.Generator().manual_seed(5)
    m = [torch.zeros_like(p) for p in start]
    v = [torch.zeros_like(p) for p in start]
    want = [p.clone() for p in start]
    for _ in range(4):
        grads = _grads(gen, model, 1.0)
        for p, g in zip(model.parameters(), grads, strict=True):
            p.grad = g.clone()
        opt.step()
        for i, g in enumerate(grads):  # seed 000's "incomplete" Adam: no 1 - beta^t factors
            m[i] = 0.9 * m[i] + 0.1 * g
            v[i] = 0.999 * v[i] + 0.001 * g * g
            want[i] = want[i] - 0.01 * m[i] / (v[i].sqrt() + 1e-8)
    for p, w in zip(model.parameters(), want, strict=True):
        torch.testing.assert_close(p.detach(), w, rtol=1e-12, atol=1e-14)


def _digits_run(tmp_path, **train) -> tuple:  # noqa: ANN001
    recipe = validate_recipe({
        "name": "avg", "runs_dir": str(tmp_path), **QUIET,
        "data": {"name": "digits", "batch_size": 64},
        "model": {"name": "mlp", "widths": [32], "dropout": 0.3, "norm": "batch"},
        "optimizer": {"name": "sgd", "lr": 0.1, "momentum": 0.9},
        "schedule": {"name": "constant"},
        "train": {"epochs": 3, "threads": 1, **train},
    })  # fmt: skip
    result = train_recipe(recipe, quiet=True)
    return result.metrics, result.experiment


def test_swa_and_mc_dropout_scores_in_a_run(tmp_path) -> None:  # noqa: ANN001
    metrics, exp = _digits_run(tmp_path, swa={"start_epoch": 2}, mc_samples=8)
    assert exp.swa is not None and exp.swa.count == 2  # the ends of epochs 2 and 3
    batches = exp.loader.split.x.split(64)
    averaged = exp.swa.averaged_model(batches)
    loss, acc = evaluate(averaged, exp.test, exp.loss_fn, 1000, True)
    assert (metrics["swa_test_loss"], metrics["swa_test_acc"]) == (loss, acc)
    with torch.random.fork_rng():
        torch.manual_seed(exp.recipe.seed)
        mean, _ = mc_predict(exp.model, exp.test.x, 8)
    assert metrics["mc_test_acc"] == pytest.approx(
        float((mean.argmax(1) == exp.test.y).float().mean())
    )
    nll = -mean.gather(1, exp.test.y.view(-1, 1)).log().mean().item()
    assert metrics["mc_test_loss"] == pytest.approx(nll, rel=1e-5)
    assert 0.5 < metrics["mc_test_acc"] <= 1.0 and metrics["swa_test_acc"] > 0.5


def test_lr_find_halving_halves_until_a_try_does_not_diverge(capsys) -> None:  # noqa: ANN001
    from trainlab.cli import main

    sets = ["--set", "data.name=digits", "--set", "model.widths=[32]"]
    assert main(["lr-find", "mlp", "--halving", "50", "--steps", "20", *sets]) == 0
    lines = [line.split() for line in capsys.readouterr().out.splitlines() if "after" in line]
    lrs = [float(words[1].rstrip(":")) for words in lines]
    assert len(lrs) >= 2
    assert lrs == pytest.approx([50 * 0.5**i for i in range(len(lrs))], rel=1e-2)
    assert all(words[-1] == "(diverged)" for words in lines[:-1]) and lines[-1][-1] == "(ok)"


def test_adversarial_training_from_a_recipe_reports_attacked_accuracy(tmp_path) -> None:  # noqa: ANN001
    from trainlab.train.adversarial import adversarial_accuracy

    adv = {"method": "pgd", "eps": 0.5, "steps": 3, "ratio": 0.5}
    metrics, exp = _digits_run(tmp_path, adversarial=adv)
    assert exp.adversary is not None
    gen = torch.Generator().manual_seed(exp.recipe.seed)
    want = adversarial_accuracy(exp.model, exp.test.x, exp.test.y, exp.loss_fn, "pgd", 0.5, 3,
                                1000, gen)  # fmt: skip
    assert metrics["adv_test_acc"] == want
    assert metrics["adv_test_acc"] < exp_test_acc(exp)


def exp_test_acc(exp) -> float:  # noqa: ANN001
    return evaluate(exp.model, exp.test, exp.loss_fn, 1000, True)[1]


def test_clip_under_sam_clips_the_descent_gradient_only() -> None:
    """SAM (Foret et al. 2021) with `optimizer.clip.norm`: the perturbation uses the raw
    gradient, the descent the clipped second gradient (by hand, plain SGD base)."""
    sets = ["optimizer.name=sgd", "optimizer.lr=0.1", "optimizer.momentum=0"]
    sets += ["optimizer.sam.policy=sam", "optimizer.sam.rho=0.05", "optimizer.clip.norm=0.1"]
    recipe = load_recipe(None, sets)
    model, twin = _model(), _model()
    opt = build_optimizer(recipe.optimizer, model)
    g = torch.Generator().manual_seed(9)
    x, y = (
        torch.randn(16, 6, generator=g, dtype=torch.float64),
        torch.randint(0, 3, (16,), generator=g),
    )

    def closure() -> torch.Tensor:
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        return loss

    opt.step(closure)
    params = list(twin.parameters())
    loss = torch.nn.functional.cross_entropy(twin(x), y)
    grads = torch.autograd.grad(loss, params)
    norm = torch.sqrt(sum(gr.pow(2).sum() for gr in grads))
    shifted = [
        (p + 0.05 * gr / norm).detach().requires_grad_()
        for p, gr in zip(params, grads, strict=True)
    ]
    names = [n for n, _ in twin.named_parameters()]
    out = torch.func.functional_call(twin, dict(zip(names, shifted, strict=True)), (x,))
    g2 = torch.autograd.grad(torch.nn.functional.cross_entropy(out, y), shifted)
    n2 = torch.sqrt(sum(gr.pow(2).sum() for gr in g2))
    assert n2 > 0.1  # the clip is active
    want = [p.detach() - 0.1 * gr * (0.1 / (n2 + 1e-6)) for p, gr in zip(params, g2, strict=True)]
    for p, w in zip(model.parameters(), want, strict=True):
        torch.testing.assert_close(p.detach(), w, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_hidden_noise_is_gaussian_on_hidden_activities_at_training_only(name: str) -> None:
    """`model.hidden_noise: s`: a GaussianNoise(s) after each hidden block; its training-mode
    output minus its input has std s (checked on a large tensor), and eval mode is exact."""
    from trainlab.nn.dropout import GaussianNoise
    from trainlab.run.builders import build_model

    shape = (1, 8, 8)
    recipe = load_recipe(None, [f"model.name={name}", "model.hidden_noise=0.3"])
    model = build_model(recipe, shape, 10)
    noises = [m for m in model.modules() if isinstance(m, GaussianNoise)]
    blocks = len(recipe.model.widths) if name == "mlp" else len(recipe.model.channels)
    assert len(noises) == blocks and all(m.std == 0.3 for m in noises)
    layer = noises[0]
    x = torch.zeros(200_000)
    layer.train()
    assert (layer(x) - x).std().item() == pytest.approx(0.3, rel=0.01)
    layer.eval()
    assert torch.equal(layer(x), x)
    assert not any(
        isinstance(m, GaussianNoise)
        for m in build_model(load_recipe(None, [f"model.name={name}"]), shape, 10).modules()
    )
