"""The `trainlab` console script: `trainlab.cli.main` with Ctrl-C handled from the first
instant trainlab's code runs — during the imports, the build, training (a checkpoint first,
see `runner.interrupt_on_signals`) and after the result — so that a Ctrl-C never prints a
Python traceback, and one that comes after the run finished changes nothing (exit 0)."""

from __future__ import annotations

import os
import signal
import sys


def main() -> int:
    try:
        from trainlab.cli import main as cli_main

        code = cli_main()
    except BrokenPipeError:  # `trainlab runs | head`: the reader left; say nothing more
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # as Python's docs advise for SIGPIPE
        return 141
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        print("stopped: interrupted (the last checkpoint is kept; --resume continues)",
              file=sys.stderr)  # fmt: skip
        return 130
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # done: a late Ctrl-C must not turn into 130
    return code


if __name__ == "__main__":
    sys.exit(main())
