"""Convergence-rate fits: ``error ~ C m^slope`` on a log-log scale, with confidence intervals.

With ``R`` independent replications of a whole convergence curve, the slope is fitted by
least squares on ``(log m, log error)`` *per replication*; the reported slope is their mean
and its interval a Student-t interval over replications (the replications are independent,
the points of one curve are not). With a single curve the interval comes from the
regression's residuals (``k - 2`` degrees of freedom).

:func:`fit_rmse_rate` fits the slope of the *root mean square* error instead, from signed
errors of ``R`` replications per size: one weighted regression of ``log RMSE`` on ``log m``
with delta-method weights, for errors whose individual values may be 0 or change sign
(quadrature errors, kernel estimates minus the kernel).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import stats

from kernelapprox.estimators.replications import check_level, mean_and_se, replication_interval


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


@dataclass(frozen=True)
class RmseRateFit:
    """A fitted log-log slope of the RMSE, :func:`fit_rmse_rate`'s result.

    ``rate`` is the slope with its delta-method standard error and normal interval;
    ``rmse`` the measured RMSE at each size of ``n_features`` (in the order given).
    """

    rate: RateFit
    n_features: tuple[int, ...]
    rmse: tuple[float, ...]

    @property
    def slope(self) -> float:
        return self.rate.slope

    @property
    def stderr(self) -> float:
        return self.rate.stderr

    def __str__(self) -> str:
        return f"{self.rate.slope:.3f} +- {self.rate.stderr:.3f}"

    def as_dict(self) -> dict[str, Any]:
        return {**self.rate.as_dict(), "n_features": list(self.n_features), "rmse": list(self.rmse)}


def fit_rmse_rate(n_features: Any, errors: Any, *, level: float = 0.95) -> RmseRateFit:
    r"""Weighted least-squares slope of ``log RMSE`` on ``log m`` from signed errors.

    With :math:`R` independent signed errors :math:`e_{ri}` at size :math:`m_i`, the mean
    square :math:`q_i = \frac1R \sum_r e_{ri}^2` has standard error :math:`s_i`
    (:func:`~kernelapprox.estimators.replications.mean_and_se` of the squares), so by the
    delta method :math:`\operatorname{sd}(\log \mathrm{RMSE}_i) = \sigma_i = s_i / (2 q_i)`.
    With :math:`x_i = \log m_i`, :math:`y_i = \tfrac12 \log q_i` and weights
    :math:`w_i = \sigma_i^{-2}`,

    .. math:: \hat\beta = \frac{\sum_i w_i (x_i - \bar x_w)\, y_i}
                               {\sum_i w_i (x_i - \bar x_w)^2},\qquad
              \mathrm{SE}(\hat\beta) = \Big(\sum_i w_i (x_i - \bar x_w)^2\Big)^{-1/2}

    (weighted least squares with known variances; e.g. Draper & Smith, *Applied Regression
    Analysis*, Sec. 9.2), and a normal interval at ``level``. A size whose squared errors do
    not vary gets :math:`\sigma_i = 10^{-12}`.

    Parameters
    ----------
    n_features : array_like of shape (k,)
        Sizes (features, points), at least two distinct, positive.
    errors : array_like of shape (R, k)
        Signed errors, one row per independent replication (``R >= 2``), finite; each size
        must have a non-zero error in some replication.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> m = 2 ** np.arange(4, 12)
    >>> fit = fit_rmse_rate(m, m**-1.0 * rng.standard_normal((256, m.size)))
    >>> bool(abs(fit.slope + 1.0) < 5 * fit.stderr)
    True
    """
    level = check_level(level)
    m = np.asarray(n_features, dtype=np.float64).ravel()
    e = np.asarray(errors, dtype=np.float64)
    if e.ndim != 2 or e.shape[1] != m.size:
        raise ValueError(
            f"errors must have shape (R, {m.size}) to match n_features, got {np.shape(errors)}"
        )
    if m.size < 2 or np.unique(m).size < 2:
        raise ValueError("n_features must hold at least two distinct sizes for a rate fit")
    if np.any(~np.isfinite(m)) or np.any(m <= 0):
        raise ValueError("n_features must be positive and finite for a log-log fit")
    if e.shape[0] < 2:
        raise ValueError(f"errors must hold at least 2 replications (rows), got {e.shape[0]}")
    mse, se_mse = mean_and_se(e**2, axis=0)
    if np.any(mse <= 0):
        raise ValueError("errors must not be all zero at a size (the log RMSE is undefined)")
    sd_log = np.maximum(se_mse / (2 * mse), 1e-12)
    x, y, w = np.log(m), 0.5 * np.log(mse), 1.0 / sd_log**2
    xbar = np.sum(w * x) / np.sum(w)
    sxx = np.sum(w * (x - xbar) ** 2)
    slope = float(np.sum(w * (x - xbar) * y) / sxx)
    stderr = float(1.0 / np.sqrt(sxx))
    intercept = float(np.sum(w * y) / np.sum(w) - slope * xbar)
    half = float(stats.norm.ppf(0.5 + level / 2.0)) * stderr
    rate = RateFit(slope, stderr, slope - half, slope + half, intercept, level, m.size, e.shape[0])
    return RmseRateFit(rate, tuple(int(v) for v in m), tuple(float(v) for v in np.sqrt(mse)))


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
