"""Optimizer tests use tiny tensors: one intra-op thread avoids OpenMP contention on a busy
2-core machine (restored after each test, so other packages' tests are unaffected)."""

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
