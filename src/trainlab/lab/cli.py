"""``trainlab lab list | run NAME [--quick] | all [--quick]``: the decks' claims, measured."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.table import Column, Table

from trainlab.durable import read_json
from trainlab.lab.book import write_book
from trainlab.lab.registry import load_all
from trainlab.lab.runner import FINDING, run_all
from trainlab.names import closest_name_error

COMMANDS = ("list", "run", "all", "book")


def lab_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="trainlab lab", description="The decks' claims, measured.")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="every experiment: name, deck, claim, expected minutes")
    run = sub.add_parser("run", help="run experiments by name and (re)write the lab book")
    run.add_argument("names", nargs="+", metavar="NAME")
    every = sub.add_parser("all", help="run every experiment and write OUT/lab.html")
    sub.add_parser("book", help="rewrite OUT/lab.html from the findings already in OUT")
    for q in (run, every):
        q.add_argument("--quick", action="store_true", help="small, fast versions (seconds)")
        q.add_argument("--seed", type=int, default=0)
    for q in (run, every, sub.choices["book"]):
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


def main(argv: list[str]) -> int:
    """Entry point of ``trainlab lab`` for the commands in `COMMANDS`."""
    args = lab_parser().parse_args(argv)
    if args.command == "list":
        return _list()
    out = Path(args.out)
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
