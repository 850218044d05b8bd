"""Plots and reports of runs: learning curves, and the self-contained HTML report."""

from trainlab.report.curves import plot_curves
from trainlab.report.html import (
    REPORT_FILE,
    SECTIONS,
    NotARunError,
    build_report,
    refresh_report,
    write_report,
)

__all__ = [
    "REPORT_FILE",
    "SECTIONS",
    "NotARunError",
    "build_report",
    "plot_curves",
    "refresh_report",
    "write_report",
]
