"""Diagnostics for babysitting training (CS231n lecture 6, the seed-000 deck).

Probes (:class:`Probes`): per-layer activation statistics, dead/saturated units, gradient norms,
update-to-weight ratios, weight norms and the first NaN/Inf, at an interval and in bounded
memory. The activation-statistics lab (:func:`activation_stats`, :func:`run_lab`): the lecture's
10-layer experiment on how initialization shapes activations.
"""

from trainlab.diagnose.activation_stats import activation_stats, save_histograms
from trainlab.diagnose.buffer import SeriesBuffer
from trainlab.diagnose.lab import run_lab
from trainlab.diagnose.lr_find import (
    HalvingResult,
    HalvingTry,
    LrFindResult,
    halving_search,
    lr_range_test,
    plot_lr_find,
)
from trainlab.diagnose.probes import Probes, default_layers, find_nonfinite

__all__ = [
    "HalvingResult",
    "HalvingTry",
    "LrFindResult",
    "halving_search",
    "lr_range_test",
    "plot_lr_find",
    "Probes",
    "SeriesBuffer",
    "activation_stats",
    "default_layers",
    "find_nonfinite",
    "run_lab",
    "save_histograms",
]
