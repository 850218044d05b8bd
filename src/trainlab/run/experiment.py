"""An experiment: everything a recipe builds before the first training step (data splits,
model, optimizer, schedule, loss, penalties, callbacks), each failure one RecipeError line."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import nn

from trainlab.data import (
    Augment,
    DataBundle,
    InMemoryLoader,
    TensorSplit,
    UnknownDatasetError,
    load_dataset,
    make_preprocessor,
    prepare_splits,
    with_label_noise,
)
from trainlab.data.fingerprint import data_fingerprint
from trainlab.data.kfold import kfold_splits, take
from trainlab.data.tasks import with_task_labels
from trainlab.nn.multitask import MultiTaskLoss
from trainlab.run.builders import (
    build_momentum_schedule,
    build_optimizer,
    build_penalty,
    build_schedule,
    seeded_model,
    task_sizes,
)
from trainlab.run.config import Recipe, RecipeError
from trainlab.schedules import PlateauController, plateau_scaled
from trainlab.train import get_loss
from trainlab.train.adversarial import adversarial_batch
from trainlab.train.callbacks import Callback, PlateauOnMetric
from trainlab.train.constraints import MaxNorm
from trainlab.train.early_stopping import EarlyStopping
from trainlab.train.ema import EMAWeights
from trainlab.train.ensembles import SnapshotEnsemble, bootstrap_split
from trainlab.train.loop import Adversary
from trainlab.train.losses import LossFn
from trainlab.train.precision import resolve_precision
from trainlab.train.swa import SWAWeights


@dataclass
class Experiment:
    """Everything a recipe builds before the first step."""

    recipe: Recipe
    model: nn.Module
    optimizer: torch.optim.Optimizer
    schedule: Callable[[int], float]
    loader: InMemoryLoader
    val: TensorSplit
    test: TensorSplit
    loss_fn: LossFn
    notes: dict[str, Any]  # what building found or did (data source, label-noise indices)
    augment: Augment | None
    callbacks: list[Callback]  # recipe-driven callbacks (plateau, early stopping)
    stateful: dict[str, Any]  # components whose state_dict() goes into checkpoints
    penalty: Callable[[], torch.Tensor] | None
    ema: EMAWeights | None = None  # averaged weights for evaluation (train.ema_decay)
    swa: SWAWeights | None = None  # uniform average for evaluation (train.swa)
    snapshots: SnapshotEnsemble | None = None  # ensemble.method: snapshot
    inputs: InputTransform | None = None  # raw examples -> what the model takes (`predict`)
    rng_state: torch.Tensor | None = None  # the global RNG after the seeded initialization
    adversary: Adversary | None = None  # train.adversarial: attacks mixed into the batches


@dataclass(frozen=True)
class InputTransform:
    """What the splits went through after loading, fitted on the training split: the
    normalization, then the recipe's preprocessing (e.g. ZCA). Applied to new raw examples,
    it makes them what the model was trained on."""

    normalize: Any = None  # a fitted Standardizer, or None
    preprocess: Any = None  # a fitted preprocessor, or None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        for step in (self.normalize, self.preprocess):
            if step is not None:
                x = step.apply(x)
        return x


DEFAULT_DATA_SEED = 0


def data_seed(recipe: Recipe) -> int:
    """The seed of the data's random choices (subset, validation split, label noise):
    `data.seed`, else a fixed default — not the recipe's seed, so that runs with different
    model seeds train and are tested on the same data (a comparison over seeds then measures
    the training's variance, not the data's). Generated datasets are drawn with `data.seed`
    too when it is given, else with their canonical seed (`load_dataset`)."""
    return DEFAULT_DATA_SEED if recipe.data.seed is None else recipe.data.seed


def load_bundle(recipe: Recipe) -> DataBundle:
    """The recipe's dataset (train and test splits), or one clear error line."""
    try:
        return load_dataset(recipe.data.name, seed=recipe.data.seed, **recipe.data.options)
    except UnknownDatasetError:
        raise
    except ValueError as err:
        raise RecipeError(f"recipe field data.options: {err}") from None


def training_subset(bundle: DataBundle, size: int, seed: int) -> DataBundle:
    """`bundle` with only `size` training examples, drawn by a seeded permutation."""
    if size > len(bundle.train):
        n = len(bundle.train)
        raise RecipeError(f"recipe field data.subset: {size} exceeds the {n} training examples")
    order = torch.randperm(len(bundle.train), generator=torch.Generator().manual_seed(seed))
    return replace(bundle, train=take(bundle.train, order[:size]))


def held_out_fold(bundle: DataBundle, recipe: Recipe) -> DataBundle:
    """`bundle` with the training split less fold `data.fold.index` and that fold as the test
    split (`trainlab cv`); the folds are drawn from the recipe's seed."""
    fold = recipe.data.fold
    assert fold is not None
    stratify = recipe.data.stratify and bundle.num_classes is not None
    try:
        splits = kfold_splits(bundle.train, fold.count, seed=recipe.seed, stratify=stratify)
    except ValueError as err:
        raise RecipeError(f"recipe field data.fold: {err}") from None
    train_idx, held_idx = splits[fold.index]
    return replace(bundle, train=take(bundle.train, train_idx), test=take(bundle.train, held_idx))


def build(recipe: Recipe, bundle: DataBundle | None = None) -> Experiment:
    """Load the data (unless `bundle` is given, e.g. a cross-validation fold) and build model,
    optimizer, schedule and loss; fail before training."""
    data = recipe.data
    bundle = bundle or load_bundle(recipe)
    if data.fold is not None:
        bundle = held_out_fold(bundle, recipe)
    if data.subset is not None:
        bundle = training_subset(bundle, data.subset, data_seed(recipe))
    train, val, test, norm = prepare_splits(
        bundle, val_fraction=data.val_fraction, seed=data_seed(recipe),
        stratify=data.stratify, normalize=data.normalize,
    )  # fmt: skip
    if data.batch_size > len(train):
        n = len(train)
        raise RecipeError(
            f"recipe field data.batch_size: {data.batch_size} exceeds the {n} examples"
        )
    notes: dict[str, Any] = {"data_source": bundle.source}
    notes["precision"] = resolve_precision(recipe.train.precision)[1]
    train, val, test, fitted = prepare_extra(recipe, train, val, test, bundle.num_classes, notes)
    dtype = getattr(torch, recipe.train.dtype)
    train, val, test = (_as_dtype(s, dtype) for s in (train, val, test))
    notes["data_fingerprint"] = data_fingerprint(train, val, test)
    growth = data.batch_growth
    loader = InMemoryLoader(
        train, data.batch_size, seed=recipe.seed,
        grow_at=tuple(growth.epochs) if growth else (), grow_factor=growth.factor if growth else 1,
    )  # fmt: skip
    num_outputs = bundle.num_classes or int(train.y.shape[-1])
    lsuv_batch = train.x[: recipe.init.lsuv_batch].float() if recipe.init is not None else None
    model, rng_state = seeded_model(recipe, tuple(train.x.shape[1:]), num_outputs, lsuv_batch)
    model = model.to(dtype)
    if recipe.train.channels_last:
        model = model.to(memory_format=torch.channels_last)
    total = loader.total_steps(recipe.train.epochs)
    sched = recipe.schedule
    per_epoch = loader.total_steps(1)
    schedule = build_schedule(
        sched.name, sched.kwargs(), recipe.optimizer.lr, total, per_epoch, sched.warmup
    )
    momentum = build_momentum_schedule(sched.name, sched.kwargs(), total)
    if recipe.ensemble is not None and recipe.ensemble.method == "snapshot":
        momentum = None  # the snapshot cycles replace the recipe's schedule, momentum included
    optimizer = build_optimizer(recipe.optimizer, model, momentum)
    stateful: dict[str, Any] = {}
    callbacks: list[Callback] = []
    snapshots = snapshot_ensemble(recipe, model, total)
    if snapshots is not None:  # Huang et al. 2017: the cyclic schedule replaces the recipe's
        schedule = snapshots.schedule(recipe.optimizer.lr)
        stateful["snapshots"] = snapshots
        callbacks.append(snapshots)
    if recipe.schedule.plateau is not None:
        plateau = PlateauController(**recipe.schedule.plateau.model_dump())
        schedule = plateau_scaled(schedule, plateau)
        stateful["plateau"] = plateau
        callbacks.append(PlateauOnMetric(plateau))
    if recipe.train.early_stopping is not None:
        stopper = EarlyStopping(
            model, **recipe.train.early_stopping.model_dump(), mode=_mode(recipe)
        )
        stateful["early_stopping"] = stopper
        callbacks.append(stopper)
    ema = None
    if recipe.train.ema_decay is not None:
        ema = EMAWeights(model, recipe.train.ema_decay)
        stateful["ema"] = ema
        callbacks.append(ema)
    if recipe.regularization.max_norm is not None:
        callbacks.append(MaxNorm(model, recipe.regularization.max_norm))
    swa = None
    if recipe.train.swa is not None:
        swa = SWAWeights(model, **recipe.train.swa.model_dump())
        stateful["swa"] = swa
        callbacks.append(swa)
    loss_fn = build_loss(recipe, num_outputs)
    return Experiment(
        recipe, model, optimizer, schedule, loader, val, test, loss_fn,
        notes, Augment(data.augment) if data.augment else None, callbacks, stateful,
        build_penalty(recipe, model), ema, swa, snapshots, InputTransform(norm, fitted),
        rng_state, build_adversary(recipe, model, loss_fn),
    )  # fmt: skip


def _as_dtype(split: TensorSplit, dtype: torch.dtype) -> TensorSplit:
    """`split` with floating inputs (and regression targets) in `dtype` (`train.dtype`)."""
    x = split.x.to(dtype) if split.x.is_floating_point() else split.x
    y = split.y.to(dtype) if split.y.is_floating_point() else split.y
    return TensorSplit(x, y)


def build_adversary(recipe: Recipe, model: nn.Module, loss_fn: LossFn) -> Adversary | None:
    """`train.adversarial`: each batch's first `ratio` replaced by FGSM / PGD examples."""
    adv = recipe.train.adversarial
    if adv is None:
        return None

    def adversary(x: torch.Tensor, y: torch.Tensor, gen: torch.Generator) -> tuple:
        return adversarial_batch(
            model, loss_fn, x, y, adv.method, adv.eps, adv.steps, adv.ratio, gen
        )

    return adversary


def build_loss(recipe: Recipe, num_outputs: int) -> LossFn:
    """The recipe's loss, or Σ_k w_k · CE_k over the tasks of a multi-task recipe."""
    train = recipe.train
    if recipe.multitask is None:
        return get_loss(train.loss, train.label_smoothing)
    if train.loss != "cross_entropy":
        raise RecipeError(
            f"recipe field train.loss: multitask needs cross_entropy, got {train.loss}"
        )
    if recipe.ensemble is not None:
        raise RecipeError("recipe field ensemble: not available with multitask (one task only)")
    weights = [t.weight for t in recipe.multitask.tasks]
    return MultiTaskLoss(task_sizes(recipe, num_outputs), weights, train.label_smoothing)


def snapshot_ensemble(recipe: Recipe, model: nn.Module, total: int) -> SnapshotEnsemble | None:
    """The snapshot callback of `ensemble.method: snapshot` (Huang et al. 2017): `cycles`
    cosine cycles of whole epochs over the run, the last `members` snapshots kept."""
    ens = recipe.ensemble
    if ens is None or ens.method != "snapshot":
        return None
    cycles = ens.cycles or ens.members
    if recipe.train.epochs % cycles:
        raise RecipeError(
            f"recipe field train.epochs: snapshot ensembles need a multiple of the {cycles} "
            f"cycles, got {recipe.train.epochs}"
        )
    if recipe.train.early_stopping is not None:
        raise RecipeError(
            "recipe field train.early_stopping: must be null for a snapshot ensemble "
            "(the run needs all its cycles)"
        )
    return SnapshotEnsemble(model, total, cycles, keep=ens.members)


def prepare_extra(
    recipe: Recipe,
    train: TensorSplit,
    val: TensorSplit,
    test: TensorSplit,
    classes: int | None,
    notes: dict[str, Any],
) -> tuple[TensorSplit, TensorSplit, TensorSplit, Any]:
    """The recipe's preprocessing (fitted on the training split only, applied to all), label
    noise on the training split (validation and test labels stay clean; the indices of the
    changed labels are recorded in `notes`), the bootstrap resample of bagging, and the label
    columns of a multi-task recipe. Returns the splits and the fitted preprocessor (or None)."""
    data = recipe.data
    fitted = None
    if data.preprocess is not None:
        try:
            fitted, (train, val, test) = make_preprocessor(**data.preprocess).fit_apply(
                train, val, test
            )
        except ValueError as err:
            raise RecipeError(f"recipe field data.preprocess: {err}") from None
    if data.label_noise > 0:
        if classes is None:
            raise RecipeError("recipe field data.label_noise: needs a classification dataset")
        train, flipped = with_label_noise(train, data.label_noise, classes, seed=data_seed(recipe))
        notes["label_noise_indices"] = flipped.tolist()
    if data.bootstrap:  # bagging (Breiman 1996): each member's own resample, by its seed
        train = bootstrap_split(train, torch.Generator().manual_seed(recipe.seed))
    if recipe.multitask is not None:
        if classes is None:
            raise RecipeError("recipe field multitask: needs a classification dataset")
        derive = [t.derive for t in recipe.multitask.tasks]
        train, val, test = (with_task_labels(s, derive) for s in (train, val, test))
    return train, val, test, fitted


def _mode(recipe: Recipe) -> str:
    monitor = recipe.train.early_stopping.monitor if recipe.train.early_stopping else ""
    return "max" if monitor.endswith("acc") else "min"
