"""One worker process of `trainlab search --workers N` (started by `search.run_search`):
`python -m trainlab.study.search_worker SPEC --study NAME --study-dir DIR --budget N
--index I [--threads T]`; the storage URL, if any, comes in $TRAINLAB_SEARCH_STORAGE."""

from __future__ import annotations

import argparse
import sys

from trainlab.run.config import RecipeError


def main(argv: list[str] | None = None) -> int:
    """Run trials until the study's budget is claimed; exit 0, 1 on bad input, 130 on Ctrl-C."""
    from trainlab.study.search import work, worker_plan

    p = argparse.ArgumentParser(prog="trainlab.study.search_worker")
    p.add_argument("spec")
    p.add_argument("--study", required=True)
    p.add_argument("--study-dir", required=True)
    p.add_argument("--budget", type=int, required=True)
    p.add_argument("--index", type=int, default=0)
    p.add_argument("--threads", type=int)
    args = p.parse_args(argv)
    try:
        work(worker_plan(args), args.index)
    except RecipeError as err:
        print(f"error: worker {args.index}: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
