"""Timing of a callable: wall-clock and process CPU seconds over repeated runs.

One helper for every speed measurement of the project (the ``kernelapprox bench`` harness and
the opt-in scripts in ``benchmarks/``). On a shared CPU the wall time includes the time the
process waited for a core; the process CPU time (all threads) does not, and is the steadier
number there. Speeds are reported as ratios against a peer measured in the same run.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np


def measure(
    fn: Callable[[], Any], repeats: int, *, sync: Callable[[], Any] | None = None
) -> tuple[list[float], list[float]]:
    """Wall-clock and process CPU seconds of ``repeats`` runs of ``fn`` after one warm-up run.

    ``sync`` (e.g. ``torch.cuda.synchronize``) is called after every run, so that
    asynchronous work is inside the measured time.
    """
    fn()  # warm-up (autotuning, allocator, caches)
    if sync is not None:
        sync()
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        if sync is not None:
            sync()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return wall, cpu


def median_time(fn: Callable[[], Any], repeats: int) -> float:
    """Median wall time of ``fn()`` over ``repeats`` calls, after one warm-up call."""
    return float(np.median(measure(fn, repeats)[0]))
