"""Samplers whose draws depend on the study seed and the trial's slot only, never on which
worker asks first or how many workers there are: random search (Bergstra & Bengio 2012) and
a shuffled grid. Optuna's own `RandomSampler` draws from one generator per process, so two
workers would repeat each other's points and the trials would change with the worker count.

A trial's *slot* is its place among the study's fresh trials (a retried trial keeps the
slot of the trial it retries); with no retries it is the trial number. The engine tells the
sampler each trial's slot (`slots`) before the trial suggests a value; a trial without one
uses its number."""

from __future__ import annotations

import hashlib
import itertools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.samplers import BaseSampler
from optuna.study import Study
from optuna.trial import FrozenTrial

from trainlab.study.search_spec import Dim


def name_key(name: str) -> int:
    """A stable 32-bit integer for a parameter name (Python's hash() changes per process)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "little")


def draw(distribution: BaseDistribution, rng: np.random.Generator) -> Any:
    """One uniform draw (on a log scale where the distribution says so)."""
    if isinstance(distribution, CategoricalDistribution):
        return distribution.choices[int(rng.integers(len(distribution.choices)))]
    low, high, log = distribution.low, distribution.high, distribution.log
    if isinstance(distribution, IntDistribution):
        if log:
            value = math.floor(math.exp(rng.uniform(math.log(low), math.log(high + 1))))
            return int(min(max(value, low), high))
        return int(rng.integers(low, high + 1))
    if not isinstance(distribution, FloatDistribution):
        raise TypeError(f"cannot sample {type(distribution).__name__}")
    value = math.exp(rng.uniform(math.log(low), math.log(high))) if log else rng.uniform(low, high)
    return float(min(max(value, low), high))


def grid_points(dims: Sequence[Dim], base: dict[str, Any], seed: int) -> list[dict[str, Any]]:
    """Every distinct configuration of the grid (a dimension whose condition fails is left
    out, so conditional fields do not repeat points), in an order shuffled by `seed`."""
    points, seen = [], set()
    for values in itertools.product(*(d.grid_values() for d in dims)):
        point: dict[str, Any] = {}
        for dim, value in zip(dims, values, strict=True):
            if dim.active(point, base):
                point[dim.field] = value
        key = tuple(sorted((k, repr(v)) for k, v in point.items()))
        if key not in seen:
            seen.add(key)
            points.append(point)
    order = np.random.default_rng(seed).permutation(len(points))
    return [points[i] for i in order]


class SlotSampler(BaseSampler):
    """Random search, or a grid when `grid` (from `grid_points`) is given: each value is a
    pure function of (seed, slot, parameter name)."""

    def __init__(self, seed: int, grid: list[dict[str, Any]] | None = None) -> None:
        self.seed, self.grid = seed, grid
        self.slots: dict[int, int] = {}  # trial number -> slot, set by the engine

    def infer_relative_search_space(
        self, study: Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        return {}

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        return {}

    def sample_independent(
        self,
        study: Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        slot = self.slots.get(trial.number, trial.number)
        if self.grid is not None:
            return self.grid[slot % len(self.grid)][param_name]
        rng = np.random.default_rng([self.seed, slot, name_key(param_name)])
        return draw(param_distribution, rng)
