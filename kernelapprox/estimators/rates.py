"""Convergence-rate fits: ``error ~ C m^slope`` on a log-log scale, with confidence intervals.

With ``R`` independent replications of a whole convergence curve, the slope is fitted by
least squares on ``(log m, log error)`` *per replication*; the reported slope is their mean
and its interval a Student-t interval over replications (the replications are independent,
the points of one curve are not). With a single curve the interval comes from the
regression's residuals (``k - 2`` degrees of freedom).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import stats

from kernelapprox.estimators.replications import check_level, replication_interval


@dataclass(frozen=True)
class RateFit:
    """A fitted log-log slope ``d log(error) / d log(m)`` with its confidence interval."""

    slope: float
    stderr: float
    ci_low: float
    ci_high: float
    intercept: float
    level: float
    points: int
    replications: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _validate_curve(n_features: Any, errors: Any) -> tuple[np.ndarray, np.ndarray]:
    m = np.asarray(n_features, dtype=np.float64).ravel()
    e = np.asarray(errors, dtype=np.float64)
    e = e[None, :] if e.ndim == 1 else e
    if e.ndim != 2 or e.shape[1] != m.size:
        raise ValueError(
            f"errors must have shape ({m.size},) or (R, {m.size}) to match n_features, "
            f"got {np.shape(errors)}"
        )
    if m.size < 2 or np.unique(m).size < 2:
        raise ValueError("a rate fit needs at least two distinct feature counts")
    if np.any(m <= 0) or np.any(~np.isfinite(e)) or np.any(e <= 0):
        raise ValueError("feature counts and errors must be positive and finite for a log-log fit")
    return m, e


def fit_rate(n_features: Any, errors: Any, *, level: float = 0.95) -> RateFit:
    """Fit ``log(error) = a + slope * log(m)``.

    Parameters
    ----------
    n_features : array_like of shape (k,)
    errors : array_like of shape (k,) or (R, k)
        Errors per feature count, one row per independent replication.

    Examples
    --------
    >>> m = [16, 32, 64, 128]
    >>> round(fit_rate(m, [1 / np.sqrt(x) for x in m]).slope, 6)
    -0.5
    """
    level = check_level(level)
    m, e = _validate_curve(n_features, errors)
    x, y = np.log(m), np.log(e)
    xc = x - x.mean()
    slopes = (y - y.mean(axis=1, keepdims=True)) @ xc / (xc @ xc)
    intercept = float(np.mean(y.mean(axis=1) - slopes * x.mean()))
    R = e.shape[0]
    if R >= 2:
        est = replication_interval(slopes, level=level)
        return RateFit(est.value, est.stderr, est.ci_low, est.ci_high, intercept, level, m.size, R)
    slope = float(slopes[0])
    dof = m.size - 2
    if dof == 0:
        nan = float("nan")
        return RateFit(slope, nan, nan, nan, intercept, level, m.size, 1)
    resid = y[0] - (intercept + slope * x)
    stderr = float(np.sqrt(resid @ resid / dof / (xc @ xc)))
    half = float(stats.t.ppf(0.5 + level / 2.0, df=dof)) * stderr
    return RateFit(slope, stderr, slope - half, slope + half, intercept, level, m.size, 1)


def features_needed(n_features: Any, mean_errors: Any, target: float) -> float:
    """Feature count at which a decreasing error curve reaches ``target``.

    Interpolates linearly in ``(log m, log error)`` between the first pair of consecutive
    points that brackets ``target``; returns ``nan`` when the measured curve never reaches it
    (no extrapolation), and ``m[0]`` when it is already below at the first point. Comparing
    two samplers by "features needed for equal error" reads off this function.
    """
    m, e = _validate_curve(n_features, mean_errors)
    if e.shape[0] != 1:
        raise ValueError("mean_errors must be one curve of shape (k,)")
    if not (np.isfinite(target) and target > 0):
        raise ValueError(f"target must be a positive error, got {target}")
    order = np.argsort(m)
    m, e = m[order], e[0, order]
    if e[0] <= target:
        return float(m[0])
    for i in range(1, m.size):
        if e[i] <= target:
            lm0, lm1, le0, le1 = np.log(m[i - 1]), np.log(m[i]), np.log(e[i - 1]), np.log(e[i])
            frac = (np.log(target) - le0) / (le1 - le0)
            return float(np.exp(lm0 + frac * (lm1 - lm0)))
    return float("nan")
