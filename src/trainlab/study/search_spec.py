"""The search file of `trainlab search SPEC.yaml`: a base recipe and a space over its fields.

    name: search-mnist1d
    base: mnist1d-mlp                 # a bundled recipe, or a path relative to this file
    set: {data.val_fraction: 0.2}     # `--set` style overrides of the base, for every trial
    space:
      optimizer.lr: {loguniform: [1.0e-3, 1.0]}
      optimizer.momentum: {uniform: [0.5, 0.99], when: {optimizer.name: sgd}}
      model.widths: {categorical: [[64, 64], [256, 256]]}
      train.epochs: {int: [5, 40], log: true}
    sampler: random                   # grid | tpe
    trials: 40
    seed: 0
    objective: val_acc                # val_loss; maximized for accuracies, minimized for losses
    pruner: none                      # median | hyperband

Random search is the default, as the decks recommend (Bergstra & Bengio 2012, "Random
search for hyper-parameter optimization": with few important dimensions, random points try
more distinct values of each than a grid); rates and decays are searched on a log scale
(CS231n, "Hyperparameter optimization"). Every problem is one `RecipeError` line before any
trial starts: an unknown field (checked by applying a sample value to the base recipe
through the recipe validation), an empty range, a log scale with a bound <= 0, an objective
the recipe does not measure.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from trainlab.names import closest_name_error
from trainlab.run.config import (
    Recipe,
    RecipeError,
    describe_error,
    override_recipe,
    read_yaml_mapping,
)

OBJECTIVES = ("val_acc", "val_loss")


class ParamSpec(BaseModel):
    """One dimension of the space, as written in the file (exactly one kind)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    loguniform: tuple[float, float] | None = None
    uniform: tuple[float, float] | None = None
    integer: tuple[int, int] | None = Field(default=None, alias="int")
    log: bool = False
    categorical: list[Any] | None = None
    when: dict[str, Any] = Field(default_factory=dict)
    points: int = Field(default=5, ge=2)  # grid sampler: values tried over a range


class SearchSpec(BaseModel):
    """The search file's schema."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str = "search"
    base: str
    overrides: dict[str, Any] = Field(default_factory=dict, alias="set")
    space: dict[str, ParamSpec] = Field(min_length=1)
    sampler: Literal["random", "grid", "tpe"] = "random"
    trials: int = Field(default=20, ge=1)
    seed: int = 0
    objective: str = "val_acc"
    pruner: Literal["none", "median", "hyperband"] = "none"

    @property
    def direction(self) -> Literal["minimize", "maximize"]:
        """Losses are minimized, accuracies maximized."""
        return "minimize" if self.objective.endswith("loss") else "maximize"


@dataclass(frozen=True)
class Dim:
    """One checked dimension: a recipe field, its kind and range or choices, its condition."""

    field: str
    kind: Literal["float", "int", "categorical"]
    low: float = 0.0
    high: float = 0.0
    log: bool = False
    choices: tuple[Any, ...] = ()
    when: tuple[tuple[str, Any], ...] = ()
    points: int = 5

    def distribution(self) -> Any:
        """The Optuna distribution; non-scalar choices (lists) become their JSON text."""
        from optuna.distributions import (
            CategoricalDistribution,
            FloatDistribution,
            IntDistribution,
        )

        if self.kind == "float":
            return FloatDistribution(self.low, self.high, log=self.log)
        if self.kind == "int":
            return IntDistribution(int(self.low), int(self.high), log=self.log)
        return CategoricalDistribution([_encode(c) for c in self.choices])

    def grid_values(self) -> list[Any]:
        """The values the grid sampler tries (Optuna's representation)."""
        if self.kind == "categorical":
            return [_encode(c) for c in self.choices]
        space = np.geomspace if self.log else np.linspace
        values = space(self.low, self.high, self.points)
        if self.kind == "int":
            return sorted({int(round(v)) for v in values})
        return [float(v) for v in values]

    def active(self, values: dict[str, Any], base: dict[str, Any]) -> bool:
        """Whether the condition holds for the values sampled so far (else the base's)."""
        return all(_lookup(values, base, f) == v for f, v in self.when)


def _encode(choice: Any) -> Any:
    scalar = choice is None or isinstance(choice, bool | int | float | str)
    return choice if scalar else "json:" + json.dumps(choice)


def _is_encoded(value: Any) -> bool:
    return isinstance(value, str) and value.startswith("json:")


def decode_value(value: Any) -> Any:
    """A sampled value (Optuna's representation) as the recipe field's value."""
    return json.loads(value[5:]) if _is_encoded(value) else value


def _lookup(values: dict[str, Any], base: dict[str, Any], field: str) -> Any:
    if field in values:
        return decode_value(values[field])
    node: Any = base
    for part in field.split("."):
        if not isinstance(node, dict) or part not in node:
            return _MISSING
        node = node[part]
    return node


_MISSING = object()


@dataclass(frozen=True)
class Search:
    """A checked search: the spec, the base recipe (raw mapping) and the dimensions."""

    spec: SearchSpec
    path: Path
    base_raw: dict[str, Any]
    base: Recipe  # the base with `set:` applied
    dims: tuple[Dim, ...]

    def sets(self) -> list[str]:
        """The spec's `set:` overrides as `--set` items."""
        return [f"{k}={json.dumps(v)}" for k, v in self.spec.overrides.items()]

    def recipe(self, params: dict[str, Any], extra: list[str] | None = None) -> Recipe:
        """The trial recipe: base, `set:`, the sampled values (Optuna's representation), then
        `extra` overrides."""
        sampled = [f"{k}={json.dumps(decode_value(v))}" for k, v in params.items()]
        return override_recipe(dict(self.base_raw), [*self.sets(), *sampled, *(extra or [])])


def load_search(path: Path) -> Search:
    """Read and check a search file; every problem is one RecipeError line naming the file."""
    try:
        spec = SearchSpec.model_validate(read_yaml_mapping(path, "a search file"))
    except ValidationError as err:
        raise RecipeError(f"{path}: {_spec_error(err.errors()[0])}") from None
    from trainlab.run.bundled import base_recipe_file

    try:
        base_raw = read_yaml_mapping(base_recipe_file(spec.base, path))
    except RecipeError as err:
        raise RecipeError(f"{path}: field base: {err}") from None
    sets = [f"{k}={json.dumps(v)}" for k, v in spec.overrides.items()]
    try:
        base = override_recipe(dict(base_raw), sets)
    except RecipeError as err:
        raise RecipeError(f"{path}: field set: {err}") from None
    dims = _ordered(path, [_dim(path, field, p) for field, p in spec.space.items()])
    search = Search(spec, path, base_raw, base, dims)
    for dim in dims:
        _check_field(search, dim)
    check_objective(search)
    return search


def _spec_error(error: dict[str, Any]) -> str:
    """A pydantic error of the search file as 'field X: ...' (or the recipe wording)."""
    where = ".".join(str(p) for p in error["loc"])
    if error["type"] == "extra_forbidden":
        return f"field {where}: unknown field"
    if error["type"] == "literal_error":
        return f"field {where}: {error['msg']} (got {error.get('input')!r})"
    return describe_error(error).replace("recipe field", "field", 1)


def _dim(path: Path, field: str, p: ParamSpec) -> Dim:
    """The checked dimension of one space entry."""
    where = f"{path}: space {field}"
    kinds = {k: v for k, v in (("loguniform", p.loguniform), ("uniform", p.uniform),
             ("int", p.integer), ("categorical", p.categorical)) if v is not None}  # fmt: skip
    if len(kinds) != 1:
        raise RecipeError(f"{where}: give exactly one of loguniform, uniform, int, categorical")
    (kind, value), when = next(iter(kinds.items())), tuple(p.when.items())
    if kind == "categorical":
        if not value:
            raise RecipeError(f"{where}: categorical needs at least one choice")
        return Dim(field, "categorical", choices=tuple(value), when=when)
    low, high = value
    log = p.log or kind == "loguniform"
    if not low < high:
        raise RecipeError(f"{where}: empty range [{low}, {high}]; expected low < high")
    if log and low <= 0:
        raise RecipeError(f"{where}: a log scale needs bounds > 0, got [{low}, {high}]")
    if not (math.isfinite(low) and math.isfinite(high)):
        raise RecipeError(f"{where}: bounds must be finite, got [{low}, {high}]")
    return Dim(field, "int" if kind == "int" else "float", low, high, log, (), when, p.points)


def _ordered(path: Path, dims: list[Dim]) -> tuple[Dim, ...]:
    """The dimensions with each one after those its condition reads (else the file's order)."""
    fields, placed, out = {d.field for d in dims}, set(), []
    while len(out) < len(dims):
        ready = [d for d in dims if d.field not in placed
                 and all(c in placed or c not in fields for c, _ in d.when)]  # fmt: skip
        if not ready:
            cycle = sorted(d.field for d in dims if d.field not in placed)
            raise RecipeError(f"{path}: space: the conditions of {', '.join(cycle)} form a cycle")
        out.append(ready[0])
        placed.add(ready[0].field)
    return tuple(out)


def _check_field(search: Search, dim: Dim) -> None:
    """Apply a sample value (the low bound, or each choice), with the dimension's condition
    met, to the base recipe through the recipe validation."""
    where = f"{search.path}: space {dim.field}"
    base = search.base.model_dump(mode="json")
    known = {d.field for d in search.dims}
    for cond, _ in dim.when:
        if cond not in known and _lookup({}, base, cond) is _MISSING:
            raise RecipeError(f"{where}: when: recipe field {cond}: unknown field")
    samples = dim.choices if dim.kind == "categorical" else (dim.low,)
    if dim.kind == "int":
        samples = (int(dim.low),)
    conditions = {c: _encode(v) for c, v in dim.when}
    for sample in samples:
        try:
            search.recipe({**conditions, dim.field: _encode(sample)})
        except RecipeError as err:
            raise RecipeError(f"{where}: {err}") from None


def check_objective(search: Search) -> None:
    """The objective must be a validation metric the recipe measures every epoch."""
    spec, where = search.spec, f"{search.path}: objective {search.spec.objective}"
    if spec.objective not in OBJECTIVES:
        unknown = closest_name_error("objective", spec.objective, OBJECTIVES)
        raise RecipeError(f"{search.path}: {unknown}")
    if search.base.data.val_fraction == 0 and "data.val_fraction" not in spec.space:
        raise RecipeError(f"{where}: the recipe has no validation split (data.val_fraction "
                          "is 0); give set: {data.val_fraction: 0.1}")  # fmt: skip
