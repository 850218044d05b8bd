"""`trainlab check RECIPE`: the sanity checks of :mod:`trainlab.diagnose.checks` on what a
recipe builds (CS231n lecture 6, "Babysitting the learning process": loss at init, gradient
check, overfit a tiny subset, crank up regularization; plus batch independence)."""

from __future__ import annotations

import inspect
from typing import Any

import torch
from torch import nn

from trainlab import optim
from trainlab.diagnose.checks import (
    CheckResult,
    batch_independence_check,
    expected_initial_loss,
    gradient_check,
    initial_loss_check,
    overfit_check,
    regularization_check,
)
from trainlab.run.builders import build_model, build_optimizer, build_penalty
from trainlab.run.config import OptimizerConfig, Recipe, RecipeError, validate_recipe
from trainlab.run.experiment import Experiment, build

__all__ = ["optimizer_weight_decay", "run_checks", "unregularized"]

_DECAY_STEPS = ("add_l2", "add_decayed_weights")
NOMINAL_L2 = 1e-2  # used by the regularization check when the recipe regularizes nothing


def _decay_default(cfg: OptimizerConfig) -> Any:
    """The `weight_decay` default of the optimizer's alias or torch class; None if it has none."""
    if cfg.name.startswith("torch."):
        target = getattr(torch.optim, cfg.name.removeprefix("torch."), None)
    else:
        target = optim.ALIASES.get(cfg.name)
    if target is None:
        return None
    param = inspect.signature(target).parameters.get("weight_decay")
    return None if param is None else param.default


def optimizer_weight_decay(cfg: OptimizerConfig) -> float:
    """The optimizer's weight decay (explicit, its alias's default as AdamW's 1e-2, or the
    `add_l2` / `add_decayed_weights` steps of a chain); 0.0 if none."""
    if cfg.chain is not None:
        return sum(
            float(s.get("weight_decay", 0.0)) for s in cfg.chain if s["name"] in _DECAY_STEPS
        )
    value = cfg.kwargs().get("weight_decay", _decay_default(cfg))
    return float(value) if isinstance(value, int | float) else 0.0


def unregularized(recipe: Recipe) -> Recipe:
    """`recipe` with every regularizer off: dropout, input, hidden and weight noise, penalties,
    optimizer weight decay, augmentation and label noise (for the overfitting check)."""
    raw = recipe.model_dump(mode="json")
    for key in ("dropout", "input_noise", "hidden_noise", "weight_noise"):
        if key in raw["model"]:
            raw["model"][key] = 0.0
    raw["regularization"] = {}
    raw["data"].update(augment=[], label_noise=0.0)
    opt = raw["optimizer"]
    if recipe.optimizer.chain is not None:
        opt["chain"] = [s for s in opt["chain"] if s["name"] not in _DECAY_STEPS]
    elif _decay_default(recipe.optimizer) is not None:
        opt["weight_decay"] = 0.0
    return validate_recipe(raw)


def _penalty_factory(recipe: Recipe) -> tuple[Any, str]:
    """`penalty_at(model, scale)` with every penalty strength (and the optimizer's weight decay,
    taken as the equivalent L2 term wd/2·‖w‖²) times `scale`, and a phrase saying what."""
    reg = recipe.regularization
    wd = optimizer_weight_decay(recipe.optimizer)
    act = reg.activity
    base = {"l1": reg.l1, "l2": reg.l2 + wd, "group": reg.group}
    names = [f"{k}={v:g}" for k, v in base.items() if v]
    names += ["activity"] if act and (act.l1 or act.l2) else []
    what = ", ".join(names) + (" (optimizer weight decay as L2)" if wd else "")
    if not names:
        base["l2"], what = NOMINAL_L2, f"L2 {NOMINAL_L2:g} (the recipe has none)"

    def penalty_at(model: nn.Module, scale: float):
        update: dict[str, Any] = {k: v * scale for k, v in base.items()}
        if act is not None:
            update["activity"] = act.model_copy(update={"l1": act.l1 * scale, "l2": act.l2 * scale})
        scaled = recipe.model_copy(update={"regularization": reg.model_copy(update=update)})
        return build_penalty(scaled, model)

    return penalty_at, what


def _num_outputs(model: nn.Module, x: torch.Tensor) -> int:
    """The model's output width on one example (eval mode, restored afterwards)."""
    was_training = model.training
    with torch.no_grad():
        width = int(model.eval()(x[:1]).shape[-1])
    model.train(was_training)
    return width


def _tiny_subset(exp: Experiment, size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    split = exp.loader.split
    if not 2 <= size <= len(split):
        raise RecipeError(f"check --examples: expected 2..{len(split)} examples, got {size}")
    order = torch.randperm(len(split), generator=torch.Generator().manual_seed(seed))[:size]
    return split.x[order], split.y[order]


def _overfit(exp: Experiment, size: int, max_steps: int) -> CheckResult:
    """Overfit `size` training examples with a fresh, unregularized model and optimizer."""
    recipe = unregularized(exp.recipe)
    x, y = _tiny_subset(exp, size, recipe.seed)
    outputs = _num_outputs(exp.model, x)
    lsuv_batch = exp.loader.split.x[: recipe.init.lsuv_batch] if recipe.init else None
    model = build_model(recipe, tuple(x.shape[1:]), outputs, lsuv_batch)
    optimizer = build_optimizer(recipe.optimizer, model)
    return overfit_check(model, optimizer, exp.loss_fn, x, y, max_steps=max_steps, seed=recipe.seed)


def run_checks(
    recipe: Recipe,
    *,
    examples: int = 20,
    max_steps: int = 300,
    batch: int = 256,
    grad_examples: int = 4,
    coords: int = 5,
) -> list[CheckResult]:
    """Build `recipe` and run the five sanity checks on its initial model: loss at init on
    `batch` training examples, gradient check on `grad_examples` examples and `coords`
    coordinates per parameter tensor, overfitting `examples` examples within `max_steps`
    steps, regularization ×10 vs ×0, batch independence on 8 examples."""
    if max_steps < 1:
        raise RecipeError(f"check --steps: expected an int >= 1, got {max_steps}")
    exp = build(recipe)
    _tiny_subset(exp, examples, recipe.seed)  # bad --examples fails before any check runs
    x, y = exp.loader.split.x[:batch], exp.loader.split.y[:batch]
    seed = recipe.seed
    classes = None if y.is_floating_point() else _num_outputs(exp.model, x)
    expected, how = expected_initial_loss(recipe.train.loss, classes)
    penalty_at, what = _penalty_factory(recipe)
    return [
        initial_loss_check(exp.model, exp.loss_fn, x, y, expected, how=how, seed=seed),
        gradient_check(
            exp.model, exp.loss_fn, x[:grad_examples], y[:grad_examples], coords=coords, seed=seed
        ),  # fmt: skip
        _overfit(exp, examples, max_steps),
        regularization_check(exp.model, exp.loss_fn, x, y, penalty_at, what=what, seed=seed),
        batch_independence_check(exp.model, exp.loss_fn, x[:8], y[:8], seed=seed),
    ]
