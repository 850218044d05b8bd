"""Many small models of one architecture trained at once, as one stacked model (torch.func):
`StackedModel`, `fit_stacked`, per-model learning rates and weight decay (`stacked_transform`)
and models of different widths padded into one stack (`trainlab.stack.widths`)."""

from trainlab.stack.fit import StackedRun, evaluate_stacked, fit_stacked, stacked_batches
from trainlab.stack.hyper import (
    StackedOptimizer,
    per_model_l2,
    per_model_rate,
    stacked_optimizer,
    stacked_transform,
)
from trainlab.stack.model import StackedModel
from trainlab.stack.widths import pad_mlp, plan_buckets, unpad

__all__ = [
    "StackedModel",
    "StackedOptimizer",
    "StackedRun",
    "evaluate_stacked",
    "fit_stacked",
    "per_model_l2",
    "per_model_rate",
    "stacked_batches",
    "stacked_optimizer",
    "stacked_transform",
    "pad_mlp",
    "plan_buckets",
    "unpad",
]
