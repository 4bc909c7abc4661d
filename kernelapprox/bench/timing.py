"""Timing of a callable: wall-clock and process CPU seconds over repeated runs.

The public name of the project's one timer, used by the ``kernelapprox bench`` harness and
the opt-in scripts in ``benchmarks/``. It is implemented in :mod:`kernelapprox._timing`, at
the base of the layout, so that rooms below ``bench/`` (the model-compression experiments)
time their work with the same code. On a shared CPU the wall time includes the time the
process waited for a core; the process CPU time (all threads) does not, and is the steadier
number there. Speeds are reported as ratios against a peer measured in the same run.
"""

from __future__ import annotations

from kernelapprox._timing import interleaved_times, measure, median_time

__all__ = ["interleaved_times", "measure", "median_time"]
