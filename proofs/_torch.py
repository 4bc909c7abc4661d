"""Run a claim's torch work on one intra-op thread.

The claims evaluate the package's feature maps on tiny inputs (a pair of points, a few hundred
frequencies) thousands of times; there, torch's intra-op thread pool only adds contention and
is 3-10x slower on a busy machine. Results do not depend on the thread count.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

import torch

F = TypeVar("F", bound=Callable)


def single_threaded(fn: F) -> F:
    """Decorate ``fn`` so that it runs with ``torch.set_num_threads(1)``, restored afterwards."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return fn(*args, **kwargs)
        finally:
            torch.set_num_threads(threads)

    return wrapper  # type: ignore[return-value]
