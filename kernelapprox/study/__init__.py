"""Studies: sweeps of kernels x maps x samplers x weights x feature counts x replications.

``run_study(spec, out)`` streams tidy rows to ``out/results.csv`` (resumable);
``write_outputs`` adds ``summary.json`` and ``convergence.png``; the ``kernelapprox study``
command does both and prints a table.
"""

from kernelapprox.study.presets import PRESETS, preset
from kernelapprox.study.report import (
    format_skipped,
    format_table,
    plot_convergence,
    summarize,
    write_outputs,
)
from kernelapprox.study.runner import COLUMNS, StudyRun, run_study
from kernelapprox.study.spec import Cell, StudySpec

__all__ = [
    "COLUMNS",
    "PRESETS",
    "Cell",
    "StudyRun",
    "StudySpec",
    "format_skipped",
    "format_table",
    "plot_convergence",
    "preset",
    "run_study",
    "summarize",
    "write_outputs",
]
