"""Studies: sweeps of kernels x maps x samplers x weights x feature counts x replications.

``run_study(spec, out)`` streams tidy, checksummed rows to ``out/results.csv`` (resumable
and extendable, never rewritten; see :mod:`kernelapprox.study.store`), ``load_results(out)``
reads them back verified, ``write_outputs`` adds ``summary.json`` and a figure per metric;
the ``kernelapprox study`` command does all of it and prints a table per metric and its
comparison with the baseline sampler (``format_table``, ``format_comparison``).
"""

from kernelapprox.study.presets import PRESETS, preset
from kernelapprox.study.report import (
    format_comparison,
    format_skipped,
    format_table,
    plot_convergence,
    summarize,
    write_outputs,
)
from kernelapprox.study.runner import COLUMNS, StudyRun, run_study
from kernelapprox.study.spec import Cell, StudySpec
from kernelapprox.study.store import StoreWarning, load_results

__all__ = [
    "COLUMNS",
    "PRESETS",
    "Cell",
    "StoreWarning",
    "StudyRun",
    "StudySpec",
    "format_comparison",
    "format_skipped",
    "format_table",
    "load_results",
    "plot_convergence",
    "preset",
    "run_study",
    "summarize",
    "write_outputs",
]
