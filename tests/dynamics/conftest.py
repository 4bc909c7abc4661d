"""Dynamics tests run torch on one CPU thread.

Their matrices are at most 100 x 100, which gain nothing from threads, while on a shared,
oversubscribed 2-core machine OpenMP threads slowed the completion test down more than tenfold.
"""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
