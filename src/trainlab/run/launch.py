"""`trainlab train RECIPE --nproc N`: N local worker processes through torchrun's launcher
(`torch.distributed.launcher`, the code behind the ``torchrun`` command), each running
``python -m trainlab.cli train`` in the run directory made here; a worker that dies stops the
job with one line naming its rank.

For many machines, run torchrun itself on each (the README shows it)::

    torchrun --nnodes 2 --nproc-per-node 1 --rdzv-backend c10d \\
        --rdzv-endpoint HOST:29500 -m trainlab.cli train RECIPE --run-dir DIR
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import uuid
from pathlib import Path

from torch.distributed.elastic.multiprocessing.api import SignalException
from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
from torch.distributed.launcher.api import LaunchConfig, elastic_launch

QUIET_LOGGERS = ("torch.distributed.elastic", "torch.distributed.launcher")
LAUNCHED = "TRAINLAB_LAUNCHED"  # set for workers started here: the launcher reports failures
SILENT_EXITS = {1, 2, 3, 130}  # rank 0 has printed its own line (bad input, NaN, interrupt)


def launch_local(worker_args: list[str], nproc: int, run_dir: Path) -> int:
    """Run ``trainlab train *worker_args`` in `nproc` processes on this machine (a
    single-node torchrun with a rendezvous on a free loopback port); return the exit code."""
    config = LaunchConfig(
        min_nodes=1, max_nodes=1, nproc_per_node=nproc, run_id=f"trainlab-{uuid.uuid4().hex}",
        rdzv_backend="c10d", rdzv_endpoint="127.0.0.1:0", max_restarts=0,
        monitor_interval=0.1, start_method="spawn",
    )  # fmt: skip
    _quiet_launcher_logs()
    os.environ[LAUNCHED] = "1"  # inherited by the workers
    try:
        elastic_launch(config, sys.executable)("-m", "trainlab.cli", "train", *worker_args)
    except ChildFailedError as err:
        return _report(err, nproc, run_dir)
    except SignalException as err:  # Ctrl-C / SIGTERM: the workers stop together and say so
        return 128 + int(err.sigval)
    finally:
        os.environ.pop(LAUNCHED, None)
    return 0


def _quiet_launcher_logs() -> None:
    """Silence the launcher's own log lines (its loggers set their levels one by one): the
    workers and `_report` say what happened, one line each."""
    names = [n for n in logging.root.manager.loggerDict if n.startswith(QUIET_LOGGERS)]
    for name in (*QUIET_LOGGERS, *names):
        logging.getLogger(name).setLevel(logging.CRITICAL)


def _report(err: ChildFailedError, nproc: int, run_dir: Path) -> int:
    """One line for the worker that failed first (one killed by a signal other than the
    launcher's own SIGTERM comes first: the others failed because it went away); its exit
    code, 1 for a signal. When no worker was killed and rank 0 stopped by itself (bad input,
    NaN, Ctrl-C: all ranks stop together), rank 0 has printed the line: its code is passed
    on silently."""
    failures = sorted(err.failures.items(), key=lambda kv: (_rank_of_blame(kv[1].exitcode),
                                                             kv[1].timestamp))  # fmt: skip
    rank, failure = failures[0]
    code = failure.exitcode
    own = err.failures.get(0)
    if code >= 0 and own is not None and own.exitcode in SILENT_EXITS:
        return own.exitcode
    how = f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited with {code}"
    resume = f"trainlab train --resume {run_dir} --nproc {nproc}"
    print(f"error: rank {rank} {how}; the job stopped (the last checkpoint is kept). "
          f"Resume with: {resume}", file=sys.stderr, flush=True)  # fmt: skip
    return 1 if code <= 0 else code


def _rank_of_blame(code: int) -> int:
    """0 for a worker killed from outside, 1 for one that exited, 2 for the launcher's own
    SIGTERM of the survivors."""
    if code < 0:
        return 2 if -code == signal.SIGTERM else 0
    return 1
