"""``trainlab lab``: the lectures' experiments as commands (the CLI calls :func:`run_lab`).

``trainlab lab activation-stats --activation tanh --init normal --std 0.01`` reruns CS231n's
activation-statistics slides (seed 000): a table of per-layer mean and std (or ``--json``: a
list of ``{"layer", "mean", "std"}``, layer 0 being the input) and a PNG of per-layer
histograms. Exit codes: 0 success, 1 bad input (one line on stderr), 2 usage error (one line).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import NoReturn

from rich.console import Console
from rich.table import Table

from trainlab.diagnose.activation_stats import activation_stats, save_histograms

__all__ = ["lab_parser", "run_lab"]

PROG = "trainlab lab"


class _Parser(argparse.ArgumentParser):
    """argparse whose usage errors are one line on stderr and exit code 2."""

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(2)


def lab_parser() -> argparse.ArgumentParser:
    """The ``trainlab lab`` argument parser."""
    p = _Parser(prog=PROG, description="Rerun the lectures' experiments.")
    sub = p.add_subparsers(dest="experiment", required=True, parser_class=_Parser)
    s = sub.add_parser(
        "activation-stats",
        help="per-layer activation mean/std of a deep plain net (CS231n)",
        description=(
            "Feed unit-Gaussian data through DEPTH layers of WIDTH units, H = f(X @ W) without "
            "bias, W drawn by --init, and print each layer's activation mean and std "
            "(CS231n lecture 6, 'Lets look at some activation statistics')."
        ),
    )
    s.add_argument("--activation", required=True, help="tanh, relu, sigmoid, ...")
    s.add_argument(
        "--init",
        required=True,
        help="normal (with --std), xavier (randn/sqrt(fan_in)), he (randn/sqrt(fan_in/2)), "
        "or any trainlab.init name (xavier_normal, kaiming_normal, ...)",
    )
    s.add_argument("--std", type=float, help="std for --init normal (default 0.01)")
    s.add_argument("--depth", type=int, default=10)
    s.add_argument("--width", type=int, default=500)
    s.add_argument("--samples", type=int, default=1000)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--json", action="store_true", help="print a JSON list of layer/mean/std")
    s.add_argument("--out", help="histogram PNG (default activation-stats-ACT-INIT.png)")
    return p


def _fmt(value: float) -> str:
    return f"{value:.6f}" if value == 0 or abs(value) >= 1e-3 else f"{value:.3e}"


def _activation_stats(args: argparse.Namespace) -> int:
    stats = activation_stats(
        args.activation, args.init, args.std, args.depth, args.width, args.samples, args.seed
    )
    scale = "" if args.std is None else f"(std={args.std:g})"
    label = f"{args.activation}, {args.init}{scale}"
    suffix = "" if args.std is None else f"-{args.std:g}"
    default = f"activation-stats-{args.activation}-{args.init}{suffix}.png"
    out = save_histograms(
        stats,
        Path(args.out or default),
        title=f"{label}: {args.depth} layers of {args.width}, {args.samples} samples",
    )
    if args.json:
        rows = [{"layer": s["layer"], "mean": s["mean"], "std": s["std"]} for s in stats]
        print(json.dumps(rows))
        print(f"histograms: {out}", file=sys.stderr)
        return 0
    console = Console(file=sys.stdout)
    console.print(
        f"activation statistics: {label}; {args.depth} layers of {args.width} units, "
        f"{args.samples} unit-Gaussian samples, seed {args.seed}",
        highlight=False,
        soft_wrap=True,
    )
    table = Table()
    table.add_column("layer")
    table.add_column("mean", justify="right")
    table.add_column("std", justify="right")
    for s in stats:
        name = "input" if s["layer"] == 0 else f"hidden {s['layer']}"
        table.add_row(name, _fmt(s["mean"]), _fmt(s["std"]))
    console.print(table)
    console.print(f"histograms: {out}", highlight=False, soft_wrap=True)
    return 0


def run_lab(argv: list[str]) -> int:
    """Run ``trainlab lab ARGV``; return the exit code (0 ok, 1 bad input, 2 usage)."""
    try:
        args = lab_parser().parse_args(argv)
    except SystemExit as done:  # --help (0) or a usage error already printed (2)
        return done.code if isinstance(done.code, int) else 2
    try:
        if args.experiment == "activation-stats":
            return _activation_stats(args)
    except ValueError as err:
        print(f"{PROG} {args.experiment}: error: {err}", file=sys.stderr)
        return 1
    raise AssertionError(f"unhandled experiment {args.experiment!r}")  # pragma: no cover
