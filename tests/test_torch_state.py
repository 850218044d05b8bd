"""No library call leaves process-wide torch state changed: the thread count, the global RNG
and the default dtype are the caller's again after `build`, `fit`, the LR range test, the
runner and the analysis entry points (before, building a recipe called torch.manual_seed and
torch.set_num_threads and never put them back)."""

from __future__ import annotations

import pytest
import torch

from trainlab.run.config import load_recipe

RECIPE = ["data.name=digits", "model.name=mlp", "model.widths=[16]", "model.dropout=0.3",
          "train.epochs=1", "train.threads=1", "diagnose.report=false"]  # fmt: skip


def _state() -> tuple[int, bytes, torch.dtype]:
    return (
        torch.get_num_threads(),
        torch.get_rng_state().numpy().tobytes(),
        torch.get_default_dtype(),
    )


@pytest.fixture
def recipe(tmp_path):
    return load_recipe(None, [*RECIPE, f"runs_dir={tmp_path}"])


def _same_state_after(call) -> object:
    torch.manual_seed(12345)
    torch.set_num_threads(2)
    before = _state()
    out = call()
    assert _state() == before
    return out


def test_build_fit_and_lr_find_leave_the_state_alone(recipe):
    from trainlab.diagnose import lr_range_test
    from trainlab.run.experiment import build
    from trainlab.train import fit

    exp = _same_state_after(lambda: build(recipe))
    _same_state_after(lambda: fit(exp.model, exp.loader, exp.optimizer, exp.loss_fn, epochs=1))
    _same_state_after(lambda: lr_range_test(exp.model, exp.optimizer, exp.loss_fn, exp.loader,
                                            steps=10))  # fmt: skip


def test_a_run_and_the_analyses_of_it_leave_the_state_alone(recipe):
    from trainlab.run.landscape import LandscapeOptions, run_landscape
    from trainlab.run.runner import train_recipe
    from trainlab.run.trained import run_sharpness_report

    result = _same_state_after(lambda: train_recipe(recipe, quiet=True))
    run_dir = result.run_dir
    _same_state_after(lambda: run_sharpness_report(run_dir, 32, max_iter=3, trace_samples=2))
    opts = LandscapeOptions(mode="line", grid=3, examples=32)
    _same_state_after(lambda: run_landscape(run_dir, opts))


def test_a_run_draws_the_same_numbers_whatever_the_callers_rng(recipe, tmp_path):
    """The run seeds itself: dropout does not depend on what the caller drew before."""
    from trainlab.run.runner import train_recipe

    results = []
    for caller_seed in (1, 2):
        torch.manual_seed(caller_seed)
        run = tmp_path / f"r{caller_seed}"
        results.append(train_recipe(recipe, quiet=True, run_dir=run).test_loss)
    assert results[0] == results[1]
