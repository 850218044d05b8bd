"""Stability of `trainlab lr-find` suggestions across seeds (issue 5: "rerunning with another
seed moves it by less than a factor of 2 on the bundled recipes").

Protocol: for each recipe, `lr_range_test` with the CLI defaults (1e-7 -> 10, 100 steps,
beta 0.98, stop at 4x the best smoothed loss) on the model, optimizer, loss and loader that
`trainlab.run.experiment.build` makes from the recipe with `seed` = 0..SEEDS-1 (the seed changes
the initial weights, the batch order and the validation split; MNIST-1D is also regenerated).
Per rule, the factor is max/min of the suggestion over the seeds (1.0 = identical); the issue
asks for < 2. One thread (torch.set_num_threads(1)).
Run: .venv/bin/python bench/lr_find_stability.py [--seeds N] [--steps N] [--set K=V] [RECIPE ...]
"""

from __future__ import annotations

import argparse

import torch

from trainlab.cli import _recipe_path
from trainlab.diagnose import lr_range_test
from trainlab.run.config import load_recipe
from trainlab.run.experiment import build


def suggestions(recipe_name: str, seed: int, steps: int, sets: list[str]) -> dict[str, float]:
    overrides = [*sets, f"seed={seed}", "train.threads=1"]
    recipe = load_recipe(_recipe_path(recipe_name), overrides)
    exp = build(recipe)
    result = lr_range_test(exp.model, exp.optimizer, exp.loss_fn, exp.loader, steps=steps)
    return result.suggestions


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("recipes", nargs="*", default=["mnist1d-mlp", "mlp", "overfit-mlp"])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = p.parse_args()
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, {args.seeds} seeds, {args.steps} steps, 1 thread")
    for name in args.recipes:
        runs = [suggestions(name, seed, args.steps, args.set) for seed in range(args.seeds)]
        for rule in runs[0]:
            values = [r[rule] for r in runs]
            factor = max(values) / min(values)
            shown = " ".join(f"{v:.3g}" for v in values)
            flag = "ok" if factor < 2 else "UNSTABLE"
            print(f"{name:<12} {rule:<11} factor {factor:5.2f}  {flag:<8} ({shown})")


if __name__ == "__main__":
    main()
