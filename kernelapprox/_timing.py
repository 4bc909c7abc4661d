"""Timing of callables: wall-clock and process CPU seconds over repeated runs.

The one timer of the project. It sits at the base of the layout (it imports nothing of the
package), so that every room may time its work with it: the ``kernelapprox bench`` harness
and the opt-in scripts in ``benchmarks/`` (through its public name
:mod:`kernelapprox.bench.timing`), and the model-compression experiments. On a shared CPU the
wall time includes the time the process waited for a core; the process CPU time (all
threads) does not, and is the steadier number there. Speeds are reported as ratios against a
peer measured in the same run, never as a time limit in a test.

* :func:`measure`: the wall and CPU seconds of each of ``repeats`` runs after a warm-up;
* :func:`median_time`: the median of those wall times;
* :func:`interleaved_times`: several callables timed in rounds (wall or CPU seconds), the
  order rotated from round to round, so that a drift of the machine's load weighs on all of
  them alike (a paired comparison in one process).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from kernelapprox._validation import check_positive_int


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


def interleaved_times(
    fns: Mapping[str, Callable[[], Any]],
    rounds: int,
    *,
    calls: int | Mapping[str, int] = 1,
    warm_up: bool = True,
    cpu: bool = False,
) -> dict[str, list[float]]:
    """Wall seconds (process CPU seconds with ``cpu``) per call of each of ``fns``, one value
    per round, in interleaved rounds.

    Round ``r`` (``0 <= r < rounds``) runs every callable once, in the order of ``fns``
    rotated by ``r`` places, so that no callable always goes first and a drift of the load
    weighs on all alike; round ``r``'s values form a paired sample (ratios between the
    callables of one round). Each timing covers ``calls`` back-to-back calls (one count for
    all, or one per name, for callables too fast to time singly) and is divided by it.

    Parameters
    ----------
    fns : mapping of str to callable
        The callables, each taking no argument; at least one.
    rounds : int
        Number of rounds, >= 1.
    calls : int or mapping of str to int
        Calls per timing, >= 1 (default 1).
    warm_up : bool
        Call each callable once before the first round (default ``True``); ``False`` when
        the caller has warmed them up already.
    cpu : bool
        Time with the process CPU clock (all threads) instead of the wall clock (default
        ``False``): on a shared machine it leaves out the time spent waiting for a core.

    Returns
    -------
    dict of str to list of float
        ``name -> [seconds per call in round 0, round 1, ...]``, in the order of ``fns``.
    """
    names = list(fns)
    if not names:
        raise ValueError("fns must hold at least one callable")
    rounds = check_positive_int(rounds, "rounds")
    per_name = calls if isinstance(calls, Mapping) else dict.fromkeys(names, calls)
    if set(per_name) != set(names):
        raise ValueError(f"calls must name exactly the callables {names}, got {sorted(per_name)}")
    counts = {name: check_positive_int(per_name[name], f"calls[{name!r}]") for name in names}
    if warm_up:
        for fn in fns.values():
            fn()
    now = time.process_time if cpu else time.perf_counter
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            fn, n = fns[name], counts[name]
            start = now()
            for _ in range(n):
                fn()
            times[name].append((now() - start) / n)
    return times
