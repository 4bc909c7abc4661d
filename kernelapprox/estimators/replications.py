"""Confidence intervals from independent replications (Student t).

For ``R`` independent randomizations with estimates ``e_1..e_R``:
``mean +- t_{R-1, 1 - alpha/2} s / sqrt(R)``. This is the valid interval for randomized QMC
(scipy ``qmc_quad``; QMCPy ``CubQMCRepStudentT``; L'Ecuyer, Nakayama, Owen & Tuffin, WSC 2023):
the spread of the points *inside* one QMC set says nothing about its error.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import stats

from kernelapprox.estimators._result import ErrorEstimate


def check_level(level: Any) -> float:
    level = float(level)
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    return level


def replication_interval(values: Any, *, level: float = 0.95, n: int = 0) -> ErrorEstimate:
    """Student-t interval for the mean of independent replications.

    With one replication the standard error and the interval are ``nan``.

    Parameters
    ----------
    values : array_like of shape (R,)
        One estimate per independent randomization; must be finite.
    level : float
        Nominal coverage.
    n : int
        Sample size behind each estimate (recorded, not used).

    Examples
    --------
    >>> est = replication_interval([1.0, 2.0, 3.0])
    >>> round(est.value, 3), round(est.stderr, 3), round(est.ci_high - est.value, 3)
    (2.0, 0.577, 2.484)
    """
    level = check_level(level)
    x = np.asarray(values, dtype=np.float64).ravel()
    if x.size == 0:
        raise ValueError("values must hold at least one replication")
    if not np.all(np.isfinite(x)):
        raise ValueError("values must be finite")
    R = x.size
    mean = float(x.mean())
    if R == 1:
        nan = float("nan")
        return ErrorEstimate(mean, nan, nan, nan, level, "replications", n, 1)
    stderr = float(x.std(ddof=1) / np.sqrt(R))
    half = float(stats.t.ppf(0.5 + level / 2.0, df=R - 1)) * stderr
    return ErrorEstimate(mean, stderr, mean - half, mean + half, level, "replications", n, R)
