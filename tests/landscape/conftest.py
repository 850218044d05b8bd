"""Landscape tests run on one thread: their tensors are tiny, and on a shared 2-core machine
OpenMP's thread pool made them 10-50x slower under load."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
