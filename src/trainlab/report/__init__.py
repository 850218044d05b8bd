"""Plots and reports of runs."""

from trainlab.report.curves import plot_curves

__all__ = ["plot_curves"]
