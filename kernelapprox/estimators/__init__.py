"""Error estimators: every number a study reports gets an error bar.

All estimators return :class:`ErrorEstimate`.
"""

from kernelapprox.estimators._result import ErrorEstimate

__all__ = ["ErrorEstimate"]
