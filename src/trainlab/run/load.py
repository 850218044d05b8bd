"""`trainlab.load_run`: a run directory back as Python objects — the model with its weights,
the resolved recipe and the data splits it was trained and tested on.

    >>> run = trainlab.load_run("runs/20261205-101500-mlp")
    >>> run.model(run.test.x[:8]).argmax(1)      # eval mode, final weights

The weights are the run's final `model.safetensors` (what its test result measured); for a
run that has not finished, those of its newest usable checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from safetensors.torch import load_file
from torch import nn

from trainlab.data import TensorSplit
from trainlab.durable import read_json
from trainlab.run.config import Recipe, RecipeError, load_recipe
from trainlab.run.evaluation import FINAL_WEIGHTS
from trainlab.run.experiment import Experiment, build
from trainlab.run.trained import load_weights
from trainlab.train.checkpoint import usable_checkpoint


@dataclass
class LoadedRun:
    """A run read back: `model` (eval mode) with its weights, and what it was built from."""

    run_dir: Path
    recipe: Recipe
    model: nn.Module
    weights: str  # "final" or the checkpoint's name
    result: dict[str, Any] | None  # result.json, None if the run has not finished
    experiment: Experiment

    @property
    def test(self) -> TensorSplit:
        return self.experiment.test

    @property
    def val(self) -> TensorSplit:
        return self.experiment.val

    @property
    def train(self) -> TensorSplit:
        return self.experiment.loader.split


def load_run(run_dir: str | Path) -> LoadedRun:
    """The run in `run_dir` rebuilt from its recipe (data included) with its weights loaded;
    RecipeError (one line) if it is not a run directory or has no weights yet."""
    run_dir = Path(run_dir)
    if not (run_dir / "recipe.yaml").is_file():
        raise RecipeError(f"load_run: {run_dir} has no recipe.yaml; expected a run directory")
    recipe = load_recipe(run_dir / "recipe.yaml")
    exp = build(recipe)
    result = read_json(run_dir / "result.json")
    if isinstance(result, dict) and (run_dir / FINAL_WEIGHTS).is_file():
        state, weights = load_file(str(run_dir / FINAL_WEIGHTS)), "final"
    else:
        ckpt = usable_checkpoint(run_dir / "checkpoints", move_aside=False)  # read only
        if ckpt is None:
            raise RecipeError(f"load_run: {run_dir} has no weights yet (no usable checkpoint)")
        state, weights, result = ckpt.weights, ckpt.path.name, None
    load_weights(exp.model, state, run_dir)
    return LoadedRun(run_dir, recipe, exp.model.eval(), weights, result, exp)
