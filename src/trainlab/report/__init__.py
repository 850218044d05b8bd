"""Plots and reports of runs: learning curves, and the self-contained HTML report."""

from trainlab.report.curves import plot_curves
from trainlab.report.html import SECTIONS, NotARunError, build_report, write_report

__all__ = ["SECTIONS", "NotARunError", "build_report", "plot_curves", "write_report"]
