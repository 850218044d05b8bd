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
import signal
import sys
import uuid
from pathlib import Path

from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
from torch.distributed.launcher.api import LaunchConfig, elastic_launch

QUIET_LOGGERS = ("torch.distributed.elastic", "torch.distributed.launcher")
SILENT_EXITS = {1, 2, 3, 130}  # rank 0 has printed its own line (bad input, NaN, interrupt)


def launch_local(worker_args: list[str], nproc: int, run_dir: Path) -> int:
    """Run ``trainlab train *worker_args`` in `nproc` processes on this machine (a
    single-node torchrun with a rendezvous on a free loopback port); return the exit code."""
    config = LaunchConfig(
        min_nodes=1, max_nodes=1, nproc_per_node=nproc, run_id=f"trainlab-{uuid.uuid4().hex}",
        rdzv_backend="c10d", rdzv_endpoint="127.0.0.1:0", max_restarts=0,
        monitor_interval=0.1, start_method="spawn",
    )  # fmt: skip
    for name in QUIET_LOGGERS:  # the launcher's own reports: one line below says what failed
        logging.getLogger(name).setLevel(logging.CRITICAL)
    try:
        elastic_launch(config, sys.executable)("-m", "trainlab.cli", "train", *worker_args)
    except ChildFailedError as err:
        return _report(err, nproc, run_dir)
    return 0


def _report(err: ChildFailedError, nproc: int, run_dir: Path) -> int:
    """One line for the first worker that failed; its exit code (1 when killed by a signal)."""
    first = min(err.failures.items(), key=lambda kv: kv[1].timestamp)
    rank, failure = first
    code = failure.exitcode
    if code in SILENT_EXITS and rank == 0:
        return code
    how = f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited with {code}"
    resume = f"trainlab train --resume {run_dir} --nproc {nproc}"
    print(f"error: rank {rank} {how}; the job stopped (the last checkpoint is kept). "
          f"Resume with: {resume}", file=sys.stderr, flush=True)  # fmt: skip
    return 1 if code <= 0 else code
