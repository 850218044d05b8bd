"""A short digest of the data a run trains, validates and tests on, recorded in its data.json,
so that commands combining runs (interpolate, connect, compare) can tell whether the runs saw
the same data before putting their numbers side by side."""

from __future__ import annotations

import hashlib

from trainlab.data.bundle import TensorSplit


def data_fingerprint(*splits: TensorSplit) -> str:
    """BLAKE2b (16 hex digits) over each split's shapes, dtypes and bytes, in order."""
    h = hashlib.blake2b(digest_size=8)
    for split in splits:
        for t in (split.x, split.y):
            h.update(f"{tuple(t.shape)}{t.dtype};".encode())
            h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()
