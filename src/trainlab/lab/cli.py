"""``trainlab lab list | run NAME [--quick] | all [--quick] | book | double-descent [options]``:
the decks' claims, measured."""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from rich.console import Console
from rich.table import Column, Table

from trainlab.durable import read_json
from trainlab.lab.book import write_book
from trainlab.lab.registry import load_all
from trainlab.lab.runner import FINDING, run_all, run_experiment
from trainlab.names import closest_name_error

COMMANDS = ("list", "run", "all", "book", "double-descent")


def lab_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="trainlab lab", description="The decks' claims, measured.")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="every experiment: name, deck, claim, expected minutes")
    run = sub.add_parser("run", help="run experiments by name and (re)write the lab book")
    run.add_argument("names", nargs="+", metavar="NAME")
    every = sub.add_parser("all", help="run every experiment and write OUT/lab.html")
    sub.add_parser("book", help="rewrite OUT/lab.html from the findings already in OUT")
    dd = sub.add_parser("double-descent", help="the model-wise double-descent sweep, with options")
    dd.add_argument(
        "--noise",
        type=float,
        nargs="+",
        default=[0.15, 0.0],
        metavar="P",
        help="label-noise fractions, one sweep each (default 0.15 0.0)",
    )
    dd.add_argument("--seeds", type=int, default=3, help="seeds per width (default 3)")
    dd.add_argument("--epochs", type=int, default=500, help="epochs (default 500)")
    dd.add_argument("--widths", type=int, default=24, help="log-spaced widths 2..400 (24)")
    dd.add_argument(
        "--epochwise",
        action="store_true",
        help="test error after every epoch: the width x epoch heat map",
    )
    for q in (run, every, dd):
        q.add_argument("--quick", action="store_true", help="small, fast versions (seconds)")
        q.add_argument("--seed", type=int, default=0)
    for q in (run, every, sub.choices["book"], dd):
        q.add_argument("--out", default="lab", help="directory of the findings (default lab/)")
    return p


def _list() -> int:
    table = Table(Column("experiment", no_wrap=True), "deck", "claim", "minutes")
    for e in sorted(load_all().values(), key=lambda e: e.name):
        table.add_row(e.name, e.deck, e.claim, f"{e.minutes:g}")
    Console().print(table)
    return 0


def _book(out: Path) -> Path:
    """The book over every finding in ``out`` (in the registry's order)."""
    records = [read_json(out / name / FINDING) for name in sorted(load_all())]
    return write_book([r for r in records if r is not None], out)


def _double_descent(args: argparse.Namespace, out: Path) -> int:
    """`trainlab lab double-descent`: the registered experiment with the sweep's options."""
    from trainlab.lab.experiments.double_descent import Sweep, double_descent, width_grid

    if args.seeds < 1 or args.epochs < 1 or args.widths < 2:
        raise ValueError("lab double-descent: --seeds and --epochs must be >= 1, --widths >= 2")
    if any(not 0 <= p <= 1 for p in args.noise):
        raise ValueError(f"lab double-descent: --noise must be in [0, 1], got {args.noise}")
    sweep = Sweep(widths=width_grid(args.widths), seeds=args.seeds, noises=tuple(args.noise),
                  epochs=args.epochs, epochwise=args.epochwise, seed=args.seed)  # fmt: skip
    if args.quick:
        sweep = replace(sweep, widths=(4, 8, 16, 32, 64, 128), seeds=1, epochs=40)
    exp = replace(
        load_all()["double-descent"], run=lambda where, q, s: double_descent(where, sweep)
    )
    out.mkdir(parents=True, exist_ok=True)
    record = run_experiment(exp, out, quick=args.quick, seed=args.seed)
    Console().print(f"{record['verdict']}: {record['note']}", markup=False)
    print(f"lab book: {_book(out)}")
    return 0


def main(argv: list[str]) -> int:
    """Entry point of ``trainlab lab`` for the commands in `COMMANDS`."""
    args = lab_parser().parse_args(argv)
    if args.command == "list":
        return _list()
    out = Path(args.out)
    if args.command == "double-descent":
        return _double_descent(args, out)
    if args.command in ("run", "all"):
        experiments = load_all()
        names = None if args.command == "all" else args.names
        for name in names or []:
            if name not in experiments:
                raise closest_name_error("lab experiment", name, experiments)
        out.mkdir(parents=True, exist_ok=True)
        records = run_all(out, quick=args.quick, seed=args.seed, names=names)
        failed = [r["name"] for r in records if r["verdict"] == "error"]
    else:
        failed = []
    print(f"lab book: {_book(out)}")
    return 1 if failed else 0
