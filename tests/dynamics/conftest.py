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


@pytest.fixture
def saved_figures(monkeypatch):
    """The matplotlib figures saved during the test, in order (they are still written)."""
    import matplotlib.pyplot as plt

    figures = []
    original = plt.Figure.savefig

    def keep(fig, *args, **kwargs):
        figures.append(fig)
        return original(fig, *args, **kwargs)

    monkeypatch.setattr(plt.Figure, "savefig", keep)
    return figures
