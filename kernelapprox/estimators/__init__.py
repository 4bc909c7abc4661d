"""Error estimators: every number a study reports gets an error bar.

Interval estimators return :class:`ErrorEstimate`; rate fits return :class:`RateFit`.
"""

from kernelapprox.estimators._result import ErrorEstimate
from kernelapprox.estimators.gram import METRICS, gram_error
from kernelapprox.estimators.rates import RateFit, features_needed, fit_rate
from kernelapprox.estimators.replications import replication_interval

__all__ = [
    "METRICS",
    "ErrorEstimate",
    "RateFit",
    "features_needed",
    "fit_rate",
    "gram_error",
    "replication_interval",
]
