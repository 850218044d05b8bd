"""What a finished run measures besides the test loss and accuracy, all in eval mode at the
final weights (after early stopping has restored the best ones):

* ``train_loss`` / ``train_acc`` on the training split as trained on (no augmentation, dropout
  off, BatchNorm running statistics): the train side of the train–test gap. The running
  train-mode mean of the last epoch mixes weights from across the epoch and dropout masks,
  so it misstates how well the final model fits the training set. Large splits are measured
  on their first `TRAIN_EVAL_LIMIT` examples (a standard error below 0.5%, at a fraction of
  an epoch's cost); ``train_eval_examples`` says how many.
* ``ema_val_*`` / ``ema_test_*`` with the exponential moving average of the weights
  (``train.ema_decay``; seed 000, "Model Ensembles": ``x_test = 0.995*x_test + 0.005*x``).
* ``swa_val_*`` / ``swa_test_*`` with the uniform average of the weights (``train.swa``; SWA,
  Izmailov et al. 2018, or Polyak averaging), BatchNorm statistics recomputed over the
  training split.
* ``mc_test_acc`` / ``mc_test_loss``: Monte-Carlo dropout (``train.mc_samples`` passes with
  dropout on, probabilities averaged; Gal & Ghahramani 2016), beside the deterministic score.
* ``adv_test_acc``: accuracy on the test split under the recipe's attack
  (``train.adversarial``: FGSM or PGD, the same radius and steps as in training).
* ``task_test_acc`` (and ``ema_task_test_acc``): each task's accuracy for a multi-task recipe.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from torch import nn

from trainlab.data import TensorSplit
from trainlab.durable import replacing
from trainlab.nn.dropout import mc_predict
from trainlab.nn.multitask import MultiTaskLoss, task_accuracies
from trainlab.run.experiment import Experiment
from trainlab.train import evaluate
from trainlab.train.adversarial import adversarial_accuracy

FINAL_WEIGHTS = "model.safetensors"
TRAIN_EVAL_LIMIT = 10_000


def final_metrics(exp: Experiment) -> dict[str, Any]:
    """The metrics above, as a flat dict of JSON-ready values (keys absent when not asked)."""
    out: dict[str, Any] = {}
    split = exp.loader.split
    if len(split) > TRAIN_EVAL_LIMIT:
        split = TensorSplit(split.x[:TRAIN_EVAL_LIMIT], split.y[:TRAIN_EVAL_LIMIT])
    train_loss, train_acc = _evaluate(exp, exp.model, split)
    out["train_loss"], out["train_eval_examples"] = train_loss, len(split)
    if train_acc is not None:
        out["train_acc"] = train_acc
    out |= _task_metrics(exp, exp.model, "")
    for prefix, model in _averaged_models(exp):
        for name, split in (("val", exp.val), ("test", exp.test)):
            if len(split) > 0:
                loss, acc = _evaluate(exp, model, split)
                out[f"{prefix}{name}_loss"], out[f"{prefix}{name}_acc"] = loss, acc
        out |= _task_metrics(exp, model, prefix)
    adv = exp.recipe.train.adversarial
    if adv is not None and len(exp.test) > 0:
        gen = torch.Generator().manual_seed(exp.recipe.seed)
        out["adv_test_acc"] = adversarial_accuracy(
            exp.model, exp.test.x, exp.test.y, exp.loss_fn, adv.method, adv.eps, adv.steps,
            exp.recipe.data.eval_batch_size, gen,
        )  # fmt: skip
    if exp.recipe.train.mc_samples is not None and len(exp.test) > 0:
        out["mc_test_loss"], out["mc_test_acc"] = _mc_dropout(exp, exp.recipe.train.mc_samples)
    return out


def _averaged_models(exp: Experiment) -> list[tuple[str, nn.Module]]:
    """(metric prefix, model) for each average of the weights the recipe keeps."""
    models = []
    if exp.ema is not None:
        models.append(("ema_", exp.ema.averaged_model()))
    if exp.swa is not None:
        batches = exp.loader.split.x.split(exp.recipe.data.batch_size)
        models.append(("swa_", exp.swa.averaged_model(batches)))
    return models


def _mc_dropout(exp: Experiment, samples: int) -> tuple[float, float]:
    """Test NLL and accuracy of the averaged probabilities of ``samples`` dropout passes; the
    masks come from the recipe's seed, and the caller's random numbers are left as they were."""
    nll, correct = 0.0, 0
    with torch.random.fork_rng():
        torch.manual_seed(exp.recipe.seed)
        for x, y in zip(
            *(t.split(exp.recipe.data.eval_batch_size) for t in (exp.test.x, exp.test.y)),
            strict=True,
        ):
            mean, _ = mc_predict(exp.model, x, samples)
            nll -= mean.gather(1, y.view(-1, 1)).clamp_min(1e-12).log().sum().item()
            correct += int((mean.argmax(1) == y).sum())
    return nll / len(exp.test), correct / len(exp.test)


def save_final_weights(model: nn.Module, run_dir: Path) -> Path:
    """The model's final weights (what the test metrics measured) as run_dir/model.safetensors."""
    path = run_dir / FINAL_WEIGHTS
    weights = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    with replacing(path) as tmp:
        save_file(weights, str(tmp))
    return path


def _evaluate(exp: Experiment, model: nn.Module, split: TensorSplit) -> tuple[float, float | None]:
    data, train = exp.recipe.data, exp.recipe.train
    return evaluate(model, split, exp.loss_fn, data.eval_batch_size, train.channels_last)


def _task_metrics(exp: Experiment, model: nn.Module, prefix: str) -> dict[str, Any]:
    if not isinstance(exp.loss_fn, MultiTaskLoss) or exp.recipe.multitask is None:
        return {}
    names = [t.name for t in exp.recipe.multitask.tasks]
    accs = task_accuracies(model, exp.test.x, exp.test.y, exp.loss_fn.sizes,
                           exp.recipe.data.eval_batch_size)  # fmt: skip
    return {f"{prefix}task_test_acc": dict(zip(names, accs, strict=True))}


def describe_metrics(metrics: dict[str, Any]) -> str:
    """One line for the final-metrics dict ('' when there is nothing to add)."""
    parts = []
    if "train_acc" in metrics:
        parts.append(f"train accuracy (eval mode) {_pct(metrics['train_acc'])}")
    for key, label in (
        ("ema_test_acc", "EMA"),
        ("swa_test_acc", "SWA"),
        ("mc_test_acc", "MC-dropout"),
        ("adv_test_acc", "adversarial"),
    ):
        if metrics.get(key) is not None:
            parts.append(f"{label} test accuracy {_pct(metrics[key])}")
    for key, label in (("task_test_acc", "tasks"), ("ema_task_test_acc", "EMA tasks")):
        if key in metrics:
            tasks = ", ".join(f"{k} {_pct(v)}" for k, v in metrics[key].items())
            parts.append(f"{label}: {tasks}")
    return "  ".join(parts)


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.2f}%"
