"""Build a recipe's model, optimizer and schedule; every bad argument becomes one RecipeError
line naming the recipe field, before any training step."""

from __future__ import annotations

import difflib
import inspect
import os
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from trainlab import init, optim
from trainlab import nn as zoo
from trainlab.data.tasks import derived_classes
from trainlab.names import closest_name_error
from trainlab.nn.multitask import MultiTaskNet
from trainlab.run.config import (
    ClipConfig,
    InitConfig,
    OptimizerConfig,
    Recipe,
    RecipeError,
    WarmupConfig,
)
from trainlab.schedules import SCHEDULES, Schedule, get_schedule, one_cycle_momentum
from trainlab.schedules import warmup as warmup_schedule
from trainlab.train.regularizers import ActivityPenalty, WeightPenalty, penalized_params


def build_model(
    recipe: Recipe,
    input_shape: tuple[int, ...],
    num_outputs: int,
    batch: torch.Tensor | None = None,
) -> nn.Module:
    """The zoo model the recipe names, initialized from the recipe's seed: torch's default
    init, or the recipe's `init` section (then LSUV on `batch` if asked), then weight
    normalization and weight noise if asked. A multi-task recipe gets one head per task on
    the network's shared trunk. The caller's global RNG is left as it was."""
    return seeded_model(recipe, input_shape, num_outputs, batch)[0]


def seeded_model(
    recipe: Recipe,
    input_shape: tuple[int, ...],
    num_outputs: int,
    batch: torch.Tensor | None = None,
) -> tuple[nn.Module, torch.Tensor]:
    """`build_model`, and the state the global RNG (seeded with the recipe's seed) was left in
    by the initialization: training draws its dropout masks from there on."""
    check_model_size(recipe, input_shape, num_outputs)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(recipe.seed)
        model = _initialized_model(recipe, input_shape, num_outputs, batch)
        return model, torch.get_rng_state()


def _initialized_model(
    recipe: Recipe, input_shape: tuple[int, ...], num_outputs: int, batch: torch.Tensor | None
) -> nn.Module:
    cfg = recipe.model
    model = zoo.MODELS[cfg.name](input_shape, num_outputs, **cfg.zoo_options())
    if recipe.multitask is not None:
        model = MultiTaskNet.from_single_head(model, task_sizes(recipe, num_outputs))
    if recipe.init is not None:
        initialize(model, recipe.init, recipe.seed, batch)
    if cfg.zero_head:
        zero_output_layer(model)
    if cfg.weight_norm:
        zoo.apply_weight_norm(model)
    if cfg.weight_noise > 0:
        zoo.add_weight_noise(model, cfg.weight_noise)
    return model


def zero_output_layer(model: nn.Module) -> None:
    """Zero the weight and bias of the model's last Linear layer (its output layer)."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise RecipeError("recipe field model.zero_head: the model has no Linear output layer")
    with torch.no_grad():
        linears[-1].weight.zero_()
        if linears[-1].bias is not None:
            linears[-1].bias.zero_()


def max_parameters() -> int:
    """The most parameters a model may have here: with gradients and two optimizer moments
    (16 bytes per float32 parameter), at most half of this machine's memory."""
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return memory // 2 // 16


def check_model_size(recipe: Recipe, input_shape: tuple[int, ...], num_outputs: int) -> None:
    """Build the recipe's model on the meta device (no memory, no random numbers) and refuse,
    in one line, one that cannot be built (a zero width, say) or would not fit in memory."""
    cfg = recipe.model
    try:
        with torch.device("meta"):
            skeleton = zoo.MODELS[cfg.name](input_shape, num_outputs, **cfg.zoo_options())
    except (ValueError, TypeError, RuntimeError, ZeroDivisionError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise RecipeError(f"recipe field model: cannot build {cfg.name!r} ({first})") from None
    count, limit = sum(p.numel() for p in skeleton.parameters()), max_parameters()
    if count > limit:
        raise RecipeError(f"recipe field model: {count:,} parameters; expected at most "
                          f"{limit:,} (half of this machine's memory)")  # fmt: skip


def task_sizes(recipe: Recipe, num_classes: int) -> list[int]:
    """The number of classes of each task of a multi-task recipe."""
    tasks = recipe.multitask.tasks if recipe.multitask is not None else []
    try:
        return [num_classes if t.derive is None else derived_classes(t.derive, num_classes)
                for t in tasks]  # fmt: skip
    except ValueError as err:
        raise RecipeError(f"recipe field multitask.tasks: {err}") from None


def initialize(model: nn.Module, cfg: InitConfig, seed: int, batch: torch.Tensor | None) -> None:
    """Apply the recipe's initializers (seeded generator), then LSUV if asked."""
    generator = torch.Generator().manual_seed(seed)
    try:
        init.init_model(model, cfg.weight, cfg.bias, generator=generator, per_type=cfg.per_type)
    except (ValueError, TypeError) as err:
        raise RecipeError(f"recipe field init: {err}") from None
    if cfg.lsuv:
        if batch is None:
            raise RecipeError("recipe field init.lsuv: needs a training batch")
        init.lsuv(model, batch, generator=generator, pre_init=False)


def _torch_optimizer(name: str, kwargs: dict[str, Any], model: nn.Module) -> torch.optim.Optimizer:
    """`torch.<Class>` from torch.optim, e.g. `torch.SGD`."""
    cls_name = name.removeprefix("torch.")
    valid = [n for n, c in vars(torch.optim).items() if isinstance(c, type) and n != "Optimizer"]
    if cls_name not in valid:
        raise closest_name_error("torch optimizer", cls_name, valid)
    cls = getattr(torch.optim, cls_name)
    _check_arguments(name, kwargs, [p for p in inspect.signature(cls).parameters if p != "params"])
    return cls(model.parameters(), **kwargs)


def _check_arguments(owner: str, kwargs: dict[str, Any], accepted: list[str]) -> None:
    """One RecipeError line for the first keyword `owner` does not take."""
    for key in kwargs:
        if key not in accepted:
            close = difflib.get_close_matches(key, accepted, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise RecipeError(
                f"recipe field optimizer.{key}: {owner} has no argument '{key}'{hint}; "
                f"accepted: {', '.join(accepted)}"
            )


def _transform(cfg: OptimizerConfig, momentum: Schedule | None) -> optim.Transform:
    if cfg.chain is not None:
        if momentum is not None:
            raise RecipeError(_no_momentum("an explicit chain"))
        return optim.chain_from_spec(cfg.chain, cfg.lr)
    if cfg.name not in optim.ALIASES:
        raise closest_name_error("optimizer", cfg.name, [*optim.ALIASES, "torch.<Class>"])
    accepted = list(inspect.signature(optim.ALIASES[cfg.name]).parameters)
    kwargs = cfg.kwargs()  # arguments checked by the recipe (OptimizerConfig)
    if momentum is not None:
        kwargs = _with_momentum(cfg.name, kwargs, accepted, momentum)
    return optim.get_optimizer(cfg.name, **kwargs)


def _no_momentum(what: str) -> str:
    return (
        f"recipe field schedule.cycle_momentum: {what} has no momentum or beta1 for one_cycle "
        "to cycle; set schedule.cycle_momentum: false"
    )


def _with_momentum(
    name: str, kwargs: dict[str, Any], accepted: list[str], momentum: Schedule
) -> dict[str, Any]:
    """The alias's arguments with ``momentum`` (SGD, RMSprop) or beta1 (Adam family) replaced
    by the schedule, as torch's OneCycleLR overwrites ``group["momentum"]`` / ``betas[0]``."""
    if "momentum" in accepted:
        return kwargs | {"momentum": momentum}
    if "betas" in accepted:
        default = inspect.signature(optim.ALIASES[name]).parameters["betas"].default
        b2 = kwargs.get("betas", default)[1]
        return kwargs | {"betas": (momentum, b2)}
    raise RecipeError(_no_momentum(name))


def _make_optimizer(
    cfg: OptimizerConfig, model: nn.Module, momentum: Schedule | None
) -> torch.optim.Optimizer:
    if cfg.name in optim.SECOND_ORDER:
        if any(x is not None for x in (cfg.chain, cfg.clip, cfg.sam, cfg.lookahead)):
            raise ValueError(f"{cfg.name} takes no chain, clip, sam or lookahead")
        if momentum is not None:
            raise RecipeError(_no_momentum(cfg.name))
        return optim.SECOND_ORDER[cfg.name](model, **cfg.kwargs())
    if cfg.name.startswith("torch."):
        if cfg.chain is not None or cfg.lookahead is not None or cfg.clip is not None:
            raise ValueError(
                "chain, clip and lookahead need a trainlab.optim alias, not torch.optim"
            )
        if momentum is not None:
            raise RecipeError(
                f"recipe field schedule.cycle_momentum: {cfg.name} cannot follow a momentum "
                f"schedule; use the trainlab alias or set schedule.cycle_momentum: false"
            )
        base: torch.optim.Optimizer | optim.Transform = _torch_optimizer(
            cfg.name, cfg.kwargs(), model
        )
    else:
        base = _transform(cfg, momentum)
        if cfg.clip is not None and not (cfg.sam is not None and cfg.clip.norm is not None):
            base = _clipped(base, cfg.clip)  # under SAM, a norm clip is SAM's own (below)
        if cfg.lookahead is not None:
            base = optim.lookahead(base, k=cfg.lookahead.k, alpha=cfg.lookahead.alpha)
    if cfg.sam is not None:
        policy = optim.get_policy(cfg.sam.policy, **cfg.sam.kwargs())
        if cfg.sam.sync_ascent:
            policy = policy._replace(sync_first=True)
        params = None if isinstance(base, torch.optim.Optimizer) else list(model.parameters())
        max_norm = cfg.clip.norm if cfg.clip is not None else None
        return optim.SAM(params, base, policy, model=model, max_grad_norm=max_norm)
    if isinstance(base, torch.optim.Optimizer):
        return base
    return optim.Optimizer(model.parameters(), base)


def _clipped(base: optim.Transform, cfg: ClipConfig) -> optim.Transform:
    """``chain(clip, base)`` keeping base's torch param-group knobs (and its in-place step)."""
    clip = optim.clip_by_global_norm(cfg.norm) if cfg.norm is not None else optim.clip(cfg.value)
    return optim.chain(clip, base)._replace(hyperparams=base.hyperparams)


def build_optimizer(
    cfg: OptimizerConfig, model: nn.Module, momentum: Schedule | None = None
) -> torch.optim.Optimizer:
    """The recipe's optimizer as a torch.optim.Optimizer (trainlab's adapter, SAM, or torch's).
    ``momentum`` (`build_momentum_schedule`) becomes the alias's momentum or beta1."""
    try:
        return _make_optimizer(cfg, model, momentum)
    except RecipeError:
        raise
    except (ValueError, TypeError) as err:
        raise RecipeError(f"recipe field optimizer: {err}") from None


MOMENTUM_KEYS = ("cycle_momentum", "base_momentum", "max_momentum")
"""The schedule fields of one_cycle's momentum cycle (as torch OneCycleLR's arguments)."""


def build_schedule(
    name: str,
    kwargs: dict[str, Any],
    lr: float,
    total_steps: int,
    steps_per_epoch: int | None = None,
    warmup: WarmupConfig | None = None,
) -> Callable[[int], float]:
    """`get_schedule(name, ...)`, filling its lr (`lr`, `max_lr`) and `total_steps` arguments
    from the optimizer and the run length when the recipe leaves them out; ``staircase: epoch``
    becomes the steps per epoch. With ``warmup``, a linear ramp from ``start_factor * lr`` over
    its steps (or epochs) comes first and the schedule runs over the remaining steps (Goyal et
    al. 2017). one_cycle's momentum fields are left to `build_momentum_schedule`."""
    if name == "one_cycle":
        kwargs = {k: v for k, v in kwargs.items() if k not in MOMENTUM_KEYS}
    if name not in SCHEDULES:
        err = closest_name_error("schedule", name, SCHEDULES)
        raise RecipeError(f"recipe field schedule.name: {err}")
    if kwargs.get("staircase") == "epoch":
        kwargs = kwargs | {"staircase": steps_per_epoch or 1}
    ramp = _warmup_steps(warmup, steps_per_epoch, total_steps)
    params = inspect.signature(SCHEDULES[name]).parameters
    filled = {"lr": lr, "max_lr": lr, "total_steps": total_steps - ramp}
    args = {k: v for k, v in filled.items() if k in params} | kwargs
    try:
        schedule = get_schedule(name, **args)
    except (ValueError, TypeError) as err:
        raise RecipeError(f"recipe field schedule: {err}") from None
    if warmup is None:
        return schedule
    return warmup_schedule(schedule, ramp, start_lr=warmup.start_factor * lr, shift=True)


def _warmup_steps(warmup: WarmupConfig | None, steps_per_epoch: int | None, total: int) -> int:
    """The warm-up length in steps; one line if it leaves no step for the schedule."""
    if warmup is None:
        return 0
    steps = warmup.steps if warmup.steps is not None else warmup.epochs * (steps_per_epoch or 1)
    if steps >= total:
        raise RecipeError(
            f"recipe field schedule.warmup: {steps} warm-up steps leave none of the run's "
            f"{total} steps for the schedule; expected fewer"
        )
    return steps


def build_momentum_schedule(name: str, kwargs: dict[str, Any], total_steps: int) -> Schedule | None:
    """The momentum (or beta1) schedule that comes with the recipe's rate schedule, or None.

    ``one_cycle`` cycles it inversely to the rate, as torch's ``OneCycleLR`` does by default:
    from ``max_momentum`` (0.95) down to ``base_momentum`` (0.85) and back, with the same
    ``pct_start``, ``anneal_strategy`` and ``three_phase``; ``cycle_momentum: false`` turns it
    off. Other schedules leave momentum alone and refuse the momentum fields.
    """
    given = [k for k in MOMENTUM_KEYS if k in kwargs]
    if name != "one_cycle":
        if given:
            raise RecipeError(
                f"recipe field schedule.{given[0]}: only one_cycle cycles momentum, not {name!r}"
            )
        return None
    cycle = kwargs.get("cycle_momentum", True)
    if not isinstance(cycle, bool):
        raise RecipeError(
            f"recipe field schedule.cycle_momentum: expected true or false, got {cycle!r}"
        )
    if not cycle:
        return None
    shared = ("pct_start", "anneal_strategy", "three_phase", "base_momentum", "max_momentum")
    args = {k: kwargs[k] for k in shared if k in kwargs}
    try:
        return one_cycle_momentum(total_steps, **args)
    except (ValueError, TypeError) as err:
        raise RecipeError(f"recipe field schedule: {err}") from None


def build_penalty(recipe: Recipe, model: nn.Module) -> Callable[[], torch.Tensor] | None:
    """The recipe's weight and activity penalties as one callable, or None if all are off."""
    reg = recipe.regularization
    parts: list[Callable[[], torch.Tensor]] = []
    if reg.l1 or reg.l2 or reg.group:
        params = penalized_params(model, reg.include_1d)
        parts.append(WeightPenalty(params, l1=reg.l1, l2=reg.l2, group=reg.group))
    if reg.activity is not None:
        try:
            parts.append(
                ActivityPenalty(model, reg.activity.layers, reg.activity.l1, reg.activity.l2)
            )
        except ValueError as err:
            raise RecipeError(f"recipe field regularization.activity.layers: {err}") from None
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else lambda: sum(p() for p in parts)
