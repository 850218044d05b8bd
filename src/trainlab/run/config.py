"""The recipe: one YAML file that says what to train, validated before anything runs.

`Recipe()` with no arguments *is* the built-in default recipe (a small CNN with BatchNorm on
Fashion-MNIST). A typo or a wrong type is rejected with one line naming the field, the bad
value and, for names, the closest valid one. `--set a.b=value` overrides any field.
"""

from __future__ import annotations

import difflib
import inspect
import re
import typing
from pathlib import Path
from typing import Annotated, Any, Literal

import torch
import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from trainlab.data import DATASETS, Augment, make_preprocessor
from trainlab.data.tasks import DERIVED_TASKS
from trainlab.init import INITIALIZERS
from trainlab.names import closest_name_error
from trainlab.nn import ACTIVATIONS, MAXOUT, NORMS
from trainlab.nn.activations import activation_name, make_activation
from trainlab.optim import ALIASES, POLICIES, SECOND_ORDER
from trainlab.schedules import SCHEDULES
from trainlab.train.losses import LOSSES


class RecipeError(ValueError):
    """A recipe that cannot be used; the message is one line."""


class UnknownArgument(Exception):  # not a ValueError, so pydantic lets it through
    """A name's argument it does not take; carries the field so the line names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _known(kind: str, value: str, valid: Any) -> str:
    if value not in valid:
        raise closest_name_error(kind, value, valid)
    return value


class BatchGrowthConfig(_Strict):
    """Increase the batch size instead of decaying the learning rate (Smith et al. 2018): the
    batch size is multiplied by `factor` from each epoch in `epochs` (0-indexed)."""

    epochs: Annotated[list[Annotated[int, Field(ge=1)]], Field(min_length=1)]
    factor: Annotated[int, Field(ge=2)] = 5


class FoldConfig(_Strict):
    """k-fold cross-validation (`trainlab cv`): train on every fold of the training split but
    `index` (0-based, of `count`), drawn by scikit-learn's (Stratified)KFold with the recipe's
    seed, and evaluate on the held-out fold in the test split's place."""

    count: Annotated[int, Field(ge=2)]
    index: Annotated[int, Field(ge=0)]

    @model_validator(mode="after")
    def _index_below_count(self) -> FoldConfig:
        if self.index >= self.count:
            raise ValueError(f"index {self.index} must be below count {self.count}")
        return self


class DataConfig(_Strict):
    """Which dataset, how it is split and normalized, and the batch size."""

    name: str = "fashion_mnist"
    val_fraction: Annotated[float, Field(ge=0, lt=1)] = 0.1
    stratify: bool = True
    normalize: Literal["per_channel", "per_feature", "global"] | None = "per_channel"
    batch_size: Annotated[int, Field(ge=1)] = 128
    eval_batch_size: Annotated[int, Field(ge=1)] = 1000
    options: dict[str, Any] = Field(default_factory=dict)
    preprocess: dict[str, Any] | None = None  # {name: zca_whiten, eps: 0.1}, fitted on train
    augment: list[dict[str, Any]] = Field(default_factory=list)  # [{name: crop, padding: 2}]
    label_noise: Annotated[float, Field(ge=0, le=1)] = 0.0  # fraction of training labels
    subset: Annotated[int, Field(ge=2)] | None = None  # a seeded subset of the training split
    seed: int | None = None  # dataset generation, subset, val split, label noise; None: recipe's
    fold: FoldConfig | None = None  # cross-validation: the held-out fold is the test split
    bootstrap: bool = False  # bagging: a bootstrap resample of the training split (recipe seed)
    batch_growth: BatchGrowthConfig | None = None  # e.g. {epochs: [10, 20], factor: 5}

    @field_validator("preprocess")
    @classmethod
    def _preprocess(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        if v is not None:
            make_preprocessor(**v)  # checks name and ranges now, before any data is read
        return v

    @field_validator("augment")
    @classmethod
    def _augment(cls, v: list[dict[str, Any]]) -> list[dict[str, Any]]:
        Augment(v)  # checks names and ranges now
        return v

    @field_validator("name")
    @classmethod
    def _dataset(cls, v: str) -> str:
        return _known("dataset", v, DATASETS)


class _ModelBase(_Strict):
    activation: str | dict[str, Any] = "relu"  # a name, or {name: leaky_relu, negative_slope: 0.1}
    norm: str = "none"
    norm_options: dict[str, Any] = Field(default_factory=dict)
    weight_norm: bool = False
    weight_noise: Annotated[float, Field(ge=0)] = 0.0
    # The output layer starts at zero: every class equally likely, so the loss at init is
    # log C, CS231n's first sanity check (the default CNN's BatchNorm-ReLU-max-pool features
    # otherwise give confident logits at init: 3.15 against log 10 = 2.30).
    zero_head: bool = False

    @field_validator("activation")
    @classmethod
    def _activation(cls, v: str | dict[str, Any]) -> str | dict[str, Any]:
        name = activation_name(v)
        _known("activation", name, [*ACTIVATIONS, MAXOUT])
        if name != MAXOUT:
            make_activation(v)  # an unknown or bad argument: one line, before any work
        return v

    @field_validator("norm")
    @classmethod
    def _norm(cls, v: str) -> str:
        return _known("normalization", v, NORMS)

    def zoo_options(self) -> dict[str, Any]:
        """Keyword arguments of the zoo function (the rest is applied after building)."""
        return self.model_dump(exclude={"name", "weight_norm", "weight_noise", "zero_head"})


class _Regularized(_ModelBase):
    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.0
    dropout_kind: Literal["inverted", "vanilla", "mc"] = "inverted"
    input_noise: Annotated[float, Field(ge=0)] = 0.0
    hidden_noise: Annotated[float, Field(ge=0)] = 0.0  # Gaussian noise on hidden activities
    maxout_k: Annotated[int, Field(ge=1)] = 2


class MLPConfig(_Regularized):
    """Fully connected network: flatten, hidden `widths`, linear head."""

    name: Literal["mlp"] = "mlp"
    widths: list[Annotated[int, Field(ge=1)]] = Field(default_factory=lambda: [256, 256])


class CNNConfig(_Regularized):
    """Small CNN: per stage `convs_per_stage` 3x3 convs (+norm) and a 2x2 max-pool."""

    name: Literal["cnn"] = "cnn"
    channels: list[Annotated[int, Field(ge=1)]] = Field(default_factory=lambda: [32, 64, 128])
    convs_per_stage: Annotated[int, Field(ge=1)] = 1
    norm: str = "batch"
    pool_first: bool = False  # max-pool before each stage's last norm + activation (faster)


class _BlockNet(_ModelBase):
    """Models built from blocks (resnet, densenet): no maxout, no norm options."""

    norm: str = "batch"

    @field_validator("activation")
    @classmethod
    def _no_maxout(cls, v: str | dict[str, Any]) -> str | dict[str, Any]:
        if activation_name(v) == MAXOUT:
            raise ValueError("maxout is available in mlp and cnn, not resnet or densenet")
        return v

    def zoo_options(self) -> dict[str, Any]:
        return self.model_dump(
            exclude={"name", "weight_norm", "weight_noise", "norm_options", "zero_head"}
        )


class ResNetConfig(_BlockNet):
    """CIFAR-style ResNet of depth 6n+2; `skip: false` removes the shortcuts (Li et al. 2018)."""

    name: Literal["resnet"] = "resnet"
    depth: Annotated[int, Field(ge=8)] = 20
    width: Annotated[int, Field(ge=1)] = 16
    skip: bool = True

    @field_validator("depth")
    @classmethod
    def _depth(cls, v: int) -> int:
        if (v - 2) % 6:
            raise ValueError(f"resnet depth must be 6n+2 (8, 14, 20, 32, 44, 56, 110), got {v}")
        return v


class VGGConfig(CNNConfig):
    """A small VGG-style plain network (`trainlab.nn.vgg`): `cnn` with two convs per stage and
    global average pooling."""

    name: Literal["vgg"] = "vgg"  # type: ignore[assignment]
    channels: list[Annotated[int, Field(ge=1)]] = Field(default_factory=lambda: [16, 32, 64])
    convs_per_stage: Annotated[int, Field(ge=1)] = 2


class DenseNetConfig(_BlockNet):
    """A small DenseNet (`trainlab.nn.densenet`, Huang et al. 2017)."""

    name: Literal["densenet"] = "densenet"
    growth: Annotated[int, Field(ge=1)] = 12
    blocks: Annotated[list[Annotated[int, Field(ge=1)]], Field(min_length=1)] = Field(
        default_factory=lambda: [4, 4, 4]
    )
    compression: Annotated[float, Field(gt=0, le=1)] = 0.5


ModelConfig = Annotated[
    MLPConfig | CNNConfig | VGGConfig | ResNetConfig | DenseNetConfig, Field(discriminator="name")
]
MODEL_CONFIGS: dict[str, type[_ModelBase]] = {
    "mlp": MLPConfig,
    "cnn": CNNConfig,
    "vgg": VGGConfig,
    "resnet": ResNetConfig,
    "densenet": DenseNetConfig,
}


class SamConfig(BaseModel):
    """Wrap the optimizer in SAM with a perturbation policy (sam, asam, eg-sam, og-sam, ao-sam)
    and its arguments (rho, eta, c, ...)."""

    model_config = ConfigDict(extra="allow")

    policy: str = "sam"
    # Data parallel: all-reduce the ascent pass's gradient too (the perturbation of the global
    # batch, as one process takes it) instead of each process's own (m-sharpness; the default)
    sync_ascent: bool = False

    @field_validator("policy")
    @classmethod
    def _policy(cls, v: str) -> str:
        return _known("SAM policy", v, POLICIES)

    def kwargs(self) -> dict[str, Any]:
        """The policy's arguments: every field except `policy` and `sync_ascent`."""
        return {k: v for k, v in self.model_dump().items() if k not in ("policy", "sync_ascent")}


class LookaheadConfig(_Strict):
    """Lookahead around the optimizer (Zhang et al. 2019): k fast steps, pull-back alpha."""

    k: Annotated[int, Field(ge=1)] = 5
    alpha: Annotated[float, Field(gt=0, le=1)] = 0.5


class ClipConfig(_Strict):
    """Clip the gradient before the update rule: by global L2 norm (`norm`, as torch's
    clip_grad_norm_; Pascanu et al. 2013) or each coordinate by value (`value`)."""

    norm: Annotated[float, Field(gt=0)] | None = None
    value: Annotated[float, Field(gt=0)] | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> ClipConfig:
        if (self.norm is None) == (self.value is None):
            raise ValueError("give exactly one of norm or value")
        return self


class OptimizerConfig(BaseModel):
    """A `trainlab.optim` alias by name (`sgd`, `adam`, `adamw`, ...) or `torch.<Class>` for
    torch.optim, plus keyword arguments (checked when built, before any step); or an explicit
    `chain` of primitives. `sam` and `lookahead` wrap the result."""

    model_config = ConfigDict(extra="allow")

    name: str = "sgd"
    lr: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = None  # None: the alias's
    chain: list[dict[str, Any]] | None = None
    clip: ClipConfig | None = None
    sam: SamConfig | None = None
    lookahead: LookaheadConfig | None = None

    @field_validator("name")
    @classmethod
    def _optimizer(cls, v: str) -> str:
        names = [*ALIASES, *SECOND_ORDER, "torch.<Class>"]
        return v if v.startswith("torch.") or v in SECOND_ORDER else _known("optimizer", v, names)

    @model_validator(mode="after")
    def _resolve(self) -> OptimizerConfig:
        """Every argument the alias takes, filled with its default when the recipe leaves it
        out (torch.optim's defaults: adam's lr is 1e-3, not another optimizer's), so the
        recorded recipe says every value the run used; an argument the alias does not take
        is an error naming the accepted ones."""
        if self.chain is not None or self.name.startswith("torch."):
            if self.lr is None:
                self.lr = CHAIN_LR if self.chain is not None else _torch_default_lr(self.name)
            return self
        factory = SECOND_ORDER.get(self.name) or ALIASES[self.name]
        params = {k: p for k, p in inspect.signature(factory).parameters.items() if k != "model"}
        extra = self.__pydantic_extra__ if self.__pydantic_extra__ is not None else {}
        for key in extra:
            if key not in params:
                close = difflib.get_close_matches(key, list(params), n=1)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
                raise UnknownArgument(f"optimizer.{key}", f"{self.name} has no argument "
                                      f"'{key}'{hint}; accepted: {', '.join(params)}")  # fmt: skip
        for key, param in params.items():
            default = list(param.default) if isinstance(param.default, tuple) else param.default
            if key == "lr":
                self.lr = default if self.lr is None else self.lr
            elif key not in extra:
                extra[key] = default
        return self

    def kwargs(self) -> dict[str, Any]:
        """The alias's keyword arguments: every extra field, plus lr."""
        skip = {"name", "chain", "clip", "sam", "lookahead"}
        return {k: v for k, v in self.model_dump().items() if k not in skip}


CHAIN_LR = 0.1  # an explicit chain's learning rate when the recipe gives none


def _torch_default_lr(name: str) -> float | None:
    """The default lr of torch.optim's class `name` (`torch.SGD` -> 0.001), if it has one."""
    cls = getattr(torch.optim, name.removeprefix("torch."), None)
    if not isinstance(cls, type):
        return None  # an unknown class: building says so, naming the valid ones
    default = inspect.signature(cls).parameters.get("lr")
    return default.default if default is not None and isinstance(default.default, float) else None


class PlateauConfig(_Strict):
    """Reduce the rate on a validation-loss plateau (torch's ReduceLROnPlateau, as a factor that
    multiplies the schedule, so it composes with any of them)."""

    reduction: Annotated[float, Field(gt=0, lt=1)] = 0.1
    patience: Annotated[int, Field(ge=0)] = 10
    threshold: Annotated[float, Field(ge=0)] = 1e-4
    cooldown: Annotated[int, Field(ge=0)] = 0
    min_factor: Annotated[float, Field(ge=0)] = 0.0


class WarmupConfig(_Strict):
    """A linear warm-up in front of the schedule (Goyal et al. 2017): `steps` or `epochs` long,
    from `start_factor` times the rate; the schedule then runs over the remaining steps."""

    steps: Annotated[int, Field(ge=1)] | None = None
    epochs: Annotated[int, Field(ge=1)] | None = None
    start_factor: Annotated[float, Field(ge=0, le=1)] = 0.0

    @model_validator(mode="after")
    def _one_length(self) -> WarmupConfig:
        if (self.steps is None) == (self.epochs is None):
            raise ValueError("give exactly one of steps or epochs")
        return self


class ScheduleConfig(BaseModel):
    """A learning-rate schedule by name (see `trainlab.schedules`) plus its arguments. The
    optimizer's lr and the run's total step count fill the arguments the recipe leaves out;
    `plateau` multiplies it by a reduce-on-plateau factor driven by the validation loss."""

    model_config = ConfigDict(extra="allow")

    name: str = "constant"
    plateau: PlateauConfig | None = None
    warmup: WarmupConfig | None = None

    @field_validator("name")
    @classmethod
    def _schedule(cls, v: str) -> str:
        return _known("schedule", v, SCHEDULES)

    def kwargs(self) -> dict[str, Any]:
        """The schedule's arguments: every field except `name`, `plateau` and `warmup`."""
        skip = ("name", "plateau", "warmup")
        return {k: v for k, v in self.model_dump().items() if k not in skip}


class EarlyStoppingConfig(_Strict):
    """Stop when `monitor` has not improved by `min_delta` for `patience` epochs; restore the
    best epoch's weights. On by default; `train.early_stopping: null` turns it off."""

    monitor: Literal["val_loss", "val_acc", "train_loss"] = "val_loss"
    patience: Annotated[int, Field(ge=1)] = 10
    min_delta: Annotated[float, Field(ge=0)] = 0.0
    restore_best: bool = True


class AdversarialConfig(_Strict):
    """Adversarial training (seed 003; Goodfellow et al. 2015 FGSM, Madry et al. 2018 PGD): the
    first `ratio` of each batch replaced by L-inf attacks of radius `eps` (in the model's input
    units, after normalization); the run also reports accuracy under the same attack."""

    method: Literal["fgsm", "pgd"] = "pgd"
    eps: Annotated[float, Field(gt=0)] = 0.1
    steps: Annotated[int, Field(ge=1)] = 7
    ratio: Annotated[float, Field(gt=0, le=1)] = 0.5


class SwaConfig(_Strict):
    """Evaluate a uniform average of the weights too (`trainlab.train.swa`): stochastic weight
    averaging from the end of epoch `start_epoch`, once per epoch (Izmailov et al. 2018), or
    Polyak averaging of every step's iterate (`every: step`, `start_epoch: 0`)."""

    start_epoch: Annotated[int, Field(ge=0)] = 1
    every: Literal["epoch", "step"] = "epoch"


class TrainConfig(_Strict):
    """The loop: epochs, loss, early stopping, checkpoints, logging."""

    epochs: Annotated[int, Field(ge=1)] = 4
    loss: Literal[LOSSES] = "cross_entropy"  # type: ignore[valid-type]
    early_stopping: EarlyStoppingConfig | None = Field(default_factory=EarlyStoppingConfig)
    label_smoothing: Annotated[float, Field(ge=0, lt=1)] = 0.0
    checkpoint_every: Annotated[int, Field(ge=1)] = 1
    checkpoint_every_steps: Annotated[int, Field(ge=1)] | None = None
    keep_checkpoints: Annotated[int, Field(ge=1)] = 2  # newest kept; more for PCA directions
    log_every: Annotated[int, Field(ge=1)] = 50
    channels_last: bool = True
    threads: Annotated[int, Field(ge=1)] | None = None  # torch intra-op threads; None: torch's
    sync_batchnorm: bool = False  # data parallel: BatchNorm over the global batch (GPUs only)
    dtype: Literal["float32", "float64"] = "float32"  # weights and inputs; float64 to verify
    # the forward pass: fp32, bf16 autocast (fp32 weights, optimizer and loss), or auto (bf16
    # where the hardware has it natively; trainlab.train.precision)
    precision: Literal["fp32", "bf16", "auto"] = "fp32"
    compile: bool = False  # torch.compile the model first (compile time reported apart)
    ema_decay: Annotated[float, Field(ge=0, lt=1)] | None = None  # also evaluate EMA weights
    tta: list[Literal["hflip", "vflip", "shift"]] = Field(default_factory=list)  # test-time views
    swa: SwaConfig | None = None  # also evaluate the SWA / Polyak average of the weights
    mc_samples: Annotated[int, Field(ge=2)] | None = None  # MC-dropout test score (T passes)
    adversarial: AdversarialConfig | None = None  # train on FGSM / PGD examples too
    tensorboard: bool = (
        False  # also write RUN_DIR/tensorboard (pip install 'trainlab[tensorboard]')
    )

    @model_validator(mode="after")
    def _one_precision(self) -> TrainConfig:
        if self.precision != "fp32" and self.dtype == "float64":
            raise ValueError(f"precision {self.precision} needs dtype float32 (autocast "
                             "lowers float32 operations only)")  # fmt: skip
        return self


class ActivityConfig(_Strict):
    """Penalize the outputs of the named layers (names as in model.named_modules())."""

    layers: list[str]
    l1: Annotated[float, Field(ge=0)] = 0.0
    l2: Annotated[float, Field(ge=0)] = 0.0


class RegularizationConfig(_Strict):
    """Penalties on the objective: l1·Σ|w| + l2/2·Σw² + group·Σ‖W_i‖₂ over weights (1-D
    parameters too if `include_1d`), and activity regularization; `max_norm: c` constrains
    each unit's incoming weight vector to norm <= c after every step (Srivastava et al.
    2014)."""

    l1: Annotated[float, Field(ge=0)] = 0.0
    l2: Annotated[float, Field(ge=0)] = 0.0
    group: Annotated[float, Field(ge=0)] = 0.0
    include_1d: bool = False
    activity: ActivityConfig | None = None
    max_norm: Annotated[float, Field(gt=0)] | None = None  # each unit's incoming |w| <= c


class DiagnoseConfig(_Strict):
    """Probes during training (CS231n lecture 6: watch activations, gradients and update
    ratios): on by default every `interval` steps (plus step 1), on `layers` (module names as
    in model.named_modules(); default every layer with parameters and every activation).
    Their bounded summaries go to probes.json; verdicts and report.html follow each run."""

    probes: bool = True
    interval: Annotated[int, Field(ge=1)] = 50
    layers: list[str] | None = None
    bins: Annotated[int, Field(ge=2)] = 40
    report: bool = True  # write report.html at the end of the run


class InitConfig(_Strict):
    """How weights start (trainlab.init): initializers by name (or {name, args...}) for weights
    and biases, optionally per layer type, then optionally LSUV on a training batch."""

    weight: str | dict[str, Any] = "torch_default"
    bias: str | dict[str, Any] = "torch_default"
    per_type: dict[str, Any] | None = None
    lsuv: bool = False
    lsuv_batch: Annotated[int, Field(ge=2)] = 512

    @field_validator("weight", "bias")
    @classmethod
    def _initializer(cls, v: str | dict[str, Any]) -> str | dict[str, Any]:
        name = v if isinstance(v, str) else v.get("name", "")
        return v if name in INITIALIZERS else _known("initializer", name, INITIALIZERS)


class EnsembleConfig(_Strict):
    """Train an ensemble (trainlab.train.ensembles): `members` independent runs (seeds
    seed..seed+M-1, same data), bagging (each member on a bootstrap resample), or one
    snapshot run (Huang et al. 2017: `cycles` cosine cycles, default `members`, the last
    `members` snapshots kept); predictions combined by averaging the probabilities or by
    majority vote."""

    method: str = "independent"
    members: Annotated[int, Field(ge=2)] = 5
    combine: str = "average"
    cycles: Annotated[int, Field(ge=2)] | None = None

    @field_validator("method")
    @classmethod
    def _method(cls, v: str) -> str:
        return _known("ensemble method", v, ("independent", "bagging", "snapshot"))

    @field_validator("combine")
    @classmethod
    def _combine(cls, v: str) -> str:
        return _known("ensemble combine rule", v, ("average", "vote"))

    @field_validator("cycles")
    @classmethod
    def _enough_cycles(cls, v: int | None, info: ValidationInfo) -> int | None:
        members = info.data.get("members", 2)
        if v is not None and v < members:
            raise ValueError(f"expected >= members ({members}), got {v}")
        return v


class TaskConfig(_Strict):
    """One task of a multi-task recipe: the dataset's labels (`derive: null`) or a task
    derived from them (trainlab.data.tasks), and its weight in the summed loss."""

    name: str
    weight: Annotated[float, Field(ge=0)] = 1.0
    derive: str | None = None

    @field_validator("derive")
    @classmethod
    def _derive(cls, v: str | None) -> str | None:
        return v if v is None else _known("derived task", v, DERIVED_TASKS)


class MultiTaskConfig(_Strict):
    """A shared trunk with one head per task, loss Σ_k weight_k · CE_k (trainlab.nn.multitask).
    The first task is the primary one."""

    tasks: Annotated[list[TaskConfig], Field(min_length=2)]

    @field_validator("tasks")
    @classmethod
    def _unique(cls, v: list[TaskConfig]) -> list[TaskConfig]:
        names = [t.name for t in v]
        if len(set(names)) != len(names):
            raise ValueError(f"task names must be unique, got {names}")
        return v


class Recipe(_Strict):
    """Everything a run needs. The defaults are the built-in default recipe."""

    name: str = "default"
    seed: int = 0
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=lambda: CNNConfig(zero_head=True))
    init: InitConfig | None = None
    optimizer: OptimizerConfig = Field(
        default_factory=lambda: OptimizerConfig(
            name="sgd", lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4
        )
    )
    schedule: ScheduleConfig = Field(
        default_factory=lambda: ScheduleConfig(name="one_cycle", pct_start=0.25)
    )
    train: TrainConfig = Field(default_factory=TrainConfig)
    regularization: RegularizationConfig = Field(default_factory=RegularizationConfig)
    diagnose: DiagnoseConfig = Field(default_factory=DiagnoseConfig)
    ensemble: EnsembleConfig | None = None
    multitask: MultiTaskConfig | None = None
    runs_dir: str = "runs"

    @model_validator(mode="before")
    @classmethod
    def _default_model_name(cls, raw: Any) -> Any:
        """A model section without `name` refines the default CNN."""
        if isinstance(raw, dict) and isinstance(raw.get("model"), dict):
            raw = {**raw, "model": {"name": "cnn", **raw["model"]}}
        return raw


# ---------------------------------------------------------------- loading and errors


class _Loader(yaml.SafeLoader):
    """YAML 1.1's safe loader, reading `1e-4` as a number as YAML 1.2 does (1.1 wants a dot,
    `1.0e-4`, and would hand an optimizer the string '1e-4')."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def load_yaml(text: str) -> Any:
    """Parse YAML text (recipes, `--set` values) with `_Loader`."""
    return yaml.load(text, Loader=_Loader)


NAMED_SECTIONS = ("optimizer", "schedule", "model")  # a new name starts from its defaults


def _parse_override(item: str) -> tuple[str, str]:
    key, sep, text = item.partition("=")
    if not sep or not key:
        raise RecipeError(f"--set expects key.path=value, got '{item}'")
    return key, text


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply `key.path=value` overrides; values are parsed as YAML (`0.1`, `true`, `[1, 2]`).
    Each changes one field and keeps its siblings; a new `name` for a named section
    (optimizer, schedule, model) starts that section afresh from the new name's defaults, and
    is applied before the section's other fields, whatever their order."""
    parsed = [_parse_override(item) for item in overrides]
    renames = [(k, t) for k, t in parsed if k.count(".") == 1 and k.split(".")[0] in NAMED_SECTIONS
               and k.endswith(".name")]  # fmt: skip
    for key, _ in renames:
        raw[key.split(".")[0]] = {}
    for key, text in [*renames, *[(k, t) for k, t in parsed if (k, t) not in renames]]:
        node = raw
        *parents, leaf = key.split(".")
        for part in parents:
            child = node.get(part)
            if child is None:  # an absent or null section: start one
                child = node[part] = {}
            if not isinstance(child, dict):
                raise RecipeError(f"--set {key}: '{part}' is a value, not a section")
            node = child
        try:
            node[leaf] = load_yaml(text)
        except yaml.YAMLError as err:
            raise RecipeError(f"--set {key}: not a YAML value ({_first_line(err)})") from None
    return raw


def read_yaml_mapping(path: str | Path, what: str = "a recipe") -> dict[str, Any]:
    """The mapping in a YAML file, or one RecipeError line saying what is wrong with the file
    (missing, a directory, not UTF-8 text, not YAML, not a mapping)."""
    path = Path(path)
    if path.is_dir():
        raise RecipeError(f"{path}: a directory; expected {what} (a YAML file)")
    if not path.is_file():
        raise RecipeError(f"{what} file not found: {path}")
    try:
        raw = load_yaml(path.read_bytes().decode("utf-8")) or {}
    except UnicodeDecodeError:
        raise RecipeError(f"{path}: not UTF-8 text; expected {what} (a YAML file)") from None
    except yaml.YAMLError as err:
        raise RecipeError(f"{path}: not valid YAML ({_first_line(err)})") from None
    if not isinstance(raw, dict):
        raise RecipeError(f"{path}: {what} is a mapping of sections, got {type(raw).__name__}")
    return raw


def load_recipe(path: str | Path | None = None, overrides: list[str] | None = None) -> Recipe:
    """Read, override and validate a recipe; with no path, the built-in default recipe."""
    raw = {} if path is None else read_yaml_mapping(path)
    return override_recipe(raw, overrides or [])


def override_recipe(raw: dict[str, Any], overrides: list[str]) -> Recipe:
    """The recipe `raw` resolved (every default written out), then `overrides` applied to the
    resolved fields (`apply_overrides`) and validated again."""
    recipe = validate_recipe(raw)
    if not overrides:
        return recipe
    return validate_recipe(apply_overrides(recipe.model_dump(mode="json"), overrides))


def validate_recipe(raw: dict[str, Any]) -> Recipe:
    """`Recipe.model_validate` with the first problem turned into one readable line."""
    try:
        return Recipe.model_validate(raw)
    except ValidationError as err:
        raise RecipeError(describe_error(err.errors()[0])) from None
    except UnknownArgument as err:
        raise RecipeError(f"recipe field {err.field}: {err}") from None


def dump_recipe(recipe: Recipe) -> str:
    """The resolved recipe as YAML (every default written out)."""
    return yaml.safe_dump(recipe.model_dump(mode="json"), sort_keys=False)


def _first_line(err: Exception) -> str:
    return str(err).strip().splitlines()[0]


def describe_error(error: dict[str, Any]) -> str:
    """One line for a pydantic error: the dotted field, the bad value, what was expected."""
    loc = [str(p) for p in error["loc"] if str(p) not in MODEL_CONFIGS or p == error["loc"][-1]]
    field = ".".join(loc) or "recipe"
    kind, value = error["type"], error.get("input")
    if kind == "extra_forbidden":
        return f"recipe field {field}: unknown field{_closest_field(error['loc'])}"
    if kind == "union_tag_invalid":
        tag = value.get("name") if isinstance(value, dict) else value
        return f"recipe field {field}.name: {closest_name_error('model', tag, MODEL_CONFIGS)}"
    if kind == "value_error":
        return f"recipe field {field}: {error['msg'].removeprefix('Value error, ')}"
    return f"recipe field {field}: {error['msg']} (got {value!r})"


def _closest_field(loc: tuple[Any, ...]) -> str:
    """ " (did you mean 'x'?)" for an unknown key, searching the fields of its section."""
    fields = _section_fields(loc[:-1])
    close = difflib.get_close_matches(str(loc[-1]), fields, n=1, cutoff=0.5)
    if close:
        return f" (did you mean '{close[0]}'?)"
    return f"; valid: {', '.join(fields)}" if fields else ""


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model an annotation holds (`X`, `X | None`, `list[X]`, ...), if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _section_fields(loc: tuple[Any, ...]) -> list[str]:
    """The field names of the section at `loc` (list items are skipped over), or []."""
    cls: Any = Recipe
    for part in loc:
        if isinstance(part, int):
            continue
        if part in MODEL_CONFIGS:
            cls = MODEL_CONFIGS[part]
            continue
        info = cls.model_fields.get(part)
        cls = None if info is None else _model_in(info.annotation)
        if cls is None:
            return []
    return list(cls.model_fields)
