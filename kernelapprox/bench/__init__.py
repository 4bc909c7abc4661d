"""Speed and memory measurement: the harness of ``kernelapprox bench`` and one timer.

* :mod:`kernelapprox.bench.attention`: feature attention against torch SDPA and
  performer-pytorch, with the roofline ratio against a same-run matmul;
* :mod:`kernelapprox.bench.timing`: wall-clock and CPU seconds of a callable, or of several
  in interleaved rounds, used here and by the opt-in scripts in ``benchmarks/`` (the
  implementation sits at the base of the layout, :mod:`kernelapprox._timing`).

Measurements only: nothing here is asserted as a time limit in the tests.
"""
