"""Data-parallel throughput: the default CNN recipe in 1 process x 2 threads vs 2 processes x
1 thread (`trainlab train --nproc 2`, gloo on CPU), measured in one run.

Protocol: the default recipe (CNN on Fashion-MNIST, batch 128 = the global batch) on a
SUBSET-example training subset for EPOCHS epochs; the figure is the median training
samples/s of the epochs after the first (metrics.jsonl's ``samples_per_s``: steps only, not
validation), run REPS times per arm, arms interleaved so load drift hits both. The anchor is
the 1-process arm itself (ratio = 2 processes / 1 process) and a 2048 matmul's GFLOP/s in the
same run. On 2 cores a ratio below 1 is the expected honest answer: both arms have the same
two cores, and the 2-process arm adds a gradient all-reduce per step and runs each process's
convolutions on one thread, where the 1-process arm's two threads share one batch.
Run: .venv/bin/python bench/ddp.py [--reps N] [--subset N] [--epochs N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from _machine import cpu_line, matmul_gflops

ARMS = {
    "1 process x 2 threads": ["--set", "train.threads=2"],
    "2 processes x 1 thread": ["--nproc", "2"],
}


def samples_per_s(args: list[str], run_dir: Path) -> float:
    """Median training samples/s of the epochs after the first in one `trainlab train`."""
    subprocess.run(  # noqa: S603 - a fixed argument list
        [sys.executable, "-m", "trainlab.cli", "train", "--run-dir", str(run_dir), "--quiet",
         *args], check=True, capture_output=True, text=True,
    )  # fmt: skip
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    epochs = [r["samples_per_s"] for r in rows if r.get("kind") == "epoch"]
    return statistics.median(epochs[1:] or epochs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--subset", type=int, default=12000)
    parser.add_argument("--epochs", type=int, default=3)
    opts = parser.parse_args()
    common = ["--set", f"data.subset={opts.subset}", "--set", f"train.epochs={opts.epochs}",
              "--set", "train.early_stopping=null", "--set", "diagnose.report=false"]  # fmt: skip
    print(cpu_line())
    torch.set_num_threads(2)
    print(f"anchor: matmul 2048^2 fp32, 2 threads: {matmul_gflops():.1f} GFLOP/s")
    measured: dict[str, list[float]] = {arm: [] for arm in ARMS}
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(opts.reps):
            order = list(ARMS) if rep % 2 == 0 else list(reversed(ARMS))
            for arm in order:
                run_dir = Path(tmp) / f"{rep}-{len(measured[arm])}-{arm.split()[0]}"
                measured[arm].append(samples_per_s([*common, *ARMS[arm]], run_dir))
    for arm, values in measured.items():
        shown = ", ".join(f"{v:,.0f}" for v in values)
        print(f"{arm:24s} median {statistics.median(values):8,.0f} samples/s  ({shown})")
    one, two = (statistics.median(measured[arm]) for arm in ARMS)
    print(f"ratio 2 processes / 1 process: {two / one:.2f}")


if __name__ == "__main__":
    main()
