"""Mixed precision: the forward pass in bfloat16 under ``torch.autocast``, everything else fp32.

``train.precision: bf16`` runs each training step's forward pass under
``torch.autocast(device, dtype=torch.bfloat16)``: matrix products and convolutions take bf16
inputs and accumulate in fp32, while the weights (the master copy), their gradients and the
optimizer state stay fp32; the logits are cast back to fp32 before the loss, so losses,
metrics, probes and checkpoints are fp32 as before. bf16 keeps fp32's exponent range, so no
loss scaling is needed (unlike fp16). ``auto`` takes bf16 where the hardware runs it natively
(a CPU with AVX-512 BF16 or AMX-BF16, a GPU that reports bf16 support) and fp32 elsewhere,
where emulated bf16 is slower than fp32. Evaluation stays fp32.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import torch

PRECISIONS = ("fp32", "bf16", "auto")
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_bf16_flags() -> list[str]:
    """The native-bf16 flags of this CPU (from /proc/cpuinfo; empty where it is absent)."""
    info = Path("/proc/cpuinfo")
    text = info.read_text() if info.exists() else ""
    flags = next((ln for ln in text.splitlines() if ln.startswith("flags")), "").split()
    return [f for f in NATIVE_BF16_FLAGS if f in flags]


def resolve_precision(name: str, device: str = "cpu") -> tuple[torch.dtype | None, str]:
    """(autocast dtype, or None for fp32; one line saying which and why) for a recipe's
    ``train.precision`` on `device`."""
    if name not in PRECISIONS:
        raise ValueError(f"precision {name!r}: expected one of {', '.join(PRECISIONS)}")
    if name == "fp32":
        return None, "precision: fp32"
    if name == "bf16":
        return torch.bfloat16, "precision: bf16 autocast (asked for), fp32 weights and loss"
    if device == "cuda":
        if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
            return torch.bfloat16, "precision: bf16 autocast (auto: the GPU supports bf16)"
        return None, "precision: fp32 (auto: the GPU lacks bf16)"
    flags = cpu_bf16_flags()
    if flags:
        return torch.bfloat16, f"precision: bf16 autocast (auto: the CPU has {flags[0]})"
    return None, "precision: fp32 (auto: the CPU has no native bf16, where bf16 is slower)"


@contextlib.contextmanager
def autocast_to(dtype: torch.dtype | None, device: str = "cpu") -> Iterator[None]:
    """``torch.autocast(device, dtype)`` when `dtype` is given, else nothing."""
    if dtype is None:
        yield
        return
    with torch.autocast(device, dtype=dtype):
        yield
