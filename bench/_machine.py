"""What every benchmark prints beside its timings: the CPU (lscpu's model name and whether it
has native bf16, which changes the figures 2-3x on this machine kind) and a same-run anchor, a
large float32 matmul's GFLOP/s."""

from __future__ import annotations

import os
import platform
import statistics
import time
from pathlib import Path

import torch


def cpu_line() -> str:
    """Model name, native bf16 flags (avx512_bf16 / amx_bf16) and CPU count."""
    cpuinfo = Path("/proc/cpuinfo")
    info = cpuinfo.read_text() if cpuinfo.exists() else ""
    model = next((ln.split(":", 1)[1].strip() for ln in info.splitlines()
                  if ln.startswith("model name")), platform.processor() or "unknown")  # fmt: skip
    flags = next((ln for ln in info.splitlines() if ln.startswith("flags")), "").split()
    native = [f for f in ("avx512_bf16", "amx_bf16") if f in flags]
    return f"{model}; native bf16 flags: {', '.join(native) or 'none'}; {os.cpu_count()} CPUs"


def matmul_gflops(n: int = 2048, reps: int = 10) -> float:
    """GFLOP/s of an n x n float32 matmul (median of ``reps``), at the current thread count."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    times = []
    for _ in range(reps):
        started = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - started)
    return 2 * n**3 / statistics.median(times) / 1e9
