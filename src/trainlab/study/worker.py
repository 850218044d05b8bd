"""One worker process of a study on the engine (`trainlab.study.engine`), started by
`engine.worker_command`: `python -m trainlab.study.worker KIND ARGS... --study NAME
--study-dir DIR --budget N --index I [--threads T]`, where KIND ARGS rebuild the task
(`search SPEC`, `compare SPEC`, `ensemble RUN_DIR`, `cv RECIPE FOLDS`); the storage URL,
if any, comes in $TRAINLAB_SEARCH_STORAGE."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from trainlab.run.config import RecipeError


def rebuild_task(kind: str, args: list[str]) -> Any:
    """The task a `worker_args()` list names."""
    if kind == "search":
        from trainlab.study.search import search_from_args

        return search_from_args(args)
    if kind == "compare":
        from trainlab.study.compare import compare_from_args

        return compare_from_args(args)
    if kind == "ensemble":
        from trainlab.study.ensemble import ensemble_from_args

        return ensemble_from_args(args)
    if kind == "cv":
        from trainlab.study.cv import cv_from_args

        return cv_from_args(args)
    raise RecipeError(
        f"worker: unknown study kind {kind!r}; expected search, compare, ensemble or cv"
    )


def main(argv: list[str] | None = None) -> int:
    """Run slots until the study's budget is claimed; exit 0, 1 on bad input, 130 on Ctrl-C."""
    from trainlab.study.engine import STORAGE_ENV, Plan, work

    p = argparse.ArgumentParser(prog="trainlab.study.worker")
    p.add_argument("kind")
    p.add_argument("task_args", nargs="+")
    p.add_argument("--study", required=True)
    p.add_argument("--study-dir", required=True)
    p.add_argument("--budget", type=int, required=True)
    p.add_argument("--index", type=int, default=0)
    p.add_argument("--threads", type=int)
    args = p.parse_args(argv)
    try:
        task = rebuild_task(args.kind, args.task_args)
        plan = Plan(task, Path(args.study_dir), args.study, os.environ.get(STORAGE_ENV),
                    args.budget, threads=args.threads)  # fmt: skip
        work(plan, args.index)
    except RecipeError as err:
        print(f"error: worker {args.index}: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
