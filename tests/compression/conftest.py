"""Compression tests run torch on one CPU thread.

Their layers are tiny (a few hundred weights per row), which gain nothing from threads, while on
a shared 2-core machine every small op waited on the thread pool.
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
