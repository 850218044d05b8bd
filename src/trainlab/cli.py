"""The `trainlab` command: a thin layer over the library, callable in-process via `main(argv)`.

Exit codes: 0 success, 1 bad input (one line on stderr), 2 usage error, 3 non-finite loss,
130 interrupted (after saving a checkpoint)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rich.console import Console

from trainlab.config import RecipeError, load_recipe
from trainlab.data import DATASETS, DataNotFoundError, UnknownDatasetError, dataset_info
from trainlab.runner import RunStopped, resume_run, train_recipe

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _recipe_path(name: str | None) -> Path | None:
    """A recipe file path, or a bundled recipe's name (`mlp` -> examples/mlp.yaml)."""
    if name is None or Path(name).is_file():
        return None if name is None else Path(name)
    bundled = EXAMPLES / f"{name.removesuffix('.yaml')}.yaml"
    return bundled if bundled.is_file() else Path(name)


def cmd_train(args: argparse.Namespace) -> int:
    err = Console(stderr=True)
    if args.resume:
        result = resume_run(Path(args.resume), quiet=args.quiet or args.json, console=err)
    else:
        recipe = load_recipe(_recipe_path(args.recipe), args.set)
        result = train_recipe(recipe, quiet=args.quiet or args.json, console=err)
    if args.json:
        print(json.dumps(result.summary()))
        return 0
    acc = "n/a" if result.test_acc is None else f"{100 * result.test_acc:.2f}%"
    print(
        f"test accuracy {acc}  test loss {result.test_loss:.4f}  "
        f"({result.epochs} epochs, {result.train_seconds:.1f} s of training)  {result.run_dir}"
    )
    return 0


def cmd_recipes(args: argparse.Namespace) -> int:
    print("default  (built in: small CNN with BatchNorm on Fashion-MNIST)")
    for path in sorted(EXAMPLES.glob("*.yaml")):
        first = path.read_text().splitlines()[0].lstrip("# ").strip()
        print(f"{path.stem:<8} {path}  {first}")
    return 0


def cmd_data(args: argparse.Namespace) -> int:
    names = DATASETS if args.action == "list" else [args.name]
    if args.action == "info" and not args.name:
        raise RecipeError("trainlab data info NAME: give a dataset name, e.g. fashion_mnist")
    for name in names:
        info = dataset_info(name)
        if args.action == "info":
            print(json.dumps(info, indent=2, default=str))
        else:
            print(f"{name:<14} {info.get('task', ''):<15} {info.get('where', '')}")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="trainlab", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train a recipe (default: CNN on Fashion-MNIST)")
    t.add_argument("recipe", nargs="?", help="recipe YAML file or bundled name (trainlab recipes)")
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a recipe field, e.g. --set optimizer.lr=0.05")  # fmt: skip
    t.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.add_argument("--json", action="store_true", help="print the result as one JSON line")
    t.set_defaults(func=cmd_train)
    r = sub.add_parser("recipes", help="list bundled recipes")
    r.set_defaults(func=cmd_recipes)
    d = sub.add_parser("data", help="datasets: list, or info NAME")
    d.add_argument("action", choices=["list", "info"])
    d.add_argument("name", nargs="?")
    d.set_defaults(func=cmd_data)
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except (RecipeError, DataNotFoundError, UnknownDatasetError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except RunStopped as err:
        print(f"stopped: {err}", file=sys.stderr)
        return err.exit_code


if __name__ == "__main__":
    sys.exit(main())
