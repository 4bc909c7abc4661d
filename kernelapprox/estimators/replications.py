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


def _samples(samples: Any, axis: int | None) -> tuple[np.ndarray, int, int]:
    """``samples`` as float64 (flattened when ``axis`` is None), the replication axis of that
    array, and the number of replications along it."""
    x = np.asarray(samples, dtype=np.float64)
    if axis is None:
        x = x.ravel()
    elif isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"axis must be an integer or None, got {axis!r}")
    elif not -x.ndim <= axis < x.ndim:
        raise ValueError(f"axis must be in [{-x.ndim}, {x.ndim}) for samples of shape {x.shape}")
    along = 0 if axis is None else int(axis)
    R = x.shape[along]
    if R < 2:
        raise ValueError(f"samples must hold at least 2 replications along the axis, got {R}")
    if not np.all(np.isfinite(x)):
        raise ValueError("samples must be finite")
    return x, along, R


def _shifted(samples: Any, axis: int | None) -> tuple[np.ndarray, np.ndarray, int, int]:
    """The samples minus their first replication (the "shifted data" algorithm: less
    cancellation, and exactly zero spread for replications that do not vary; Chan, Golub &
    LeVeque, *Am. Stat.* 37, 1983), that first replication, the axis and its length."""
    x, along, R = _samples(samples, axis)
    first = np.take(x, [0], axis=along)
    return x - first, np.squeeze(first, axis=along), along, R


def mean_and_se(samples: Any, *, axis: int | None = None) -> tuple[Any, Any]:
    r"""Sample mean of independent replications and its standard error.

    .. math:: \bar x = \frac1R \sum_r x_r,\qquad
              \mathrm{SE}(\bar x) = \frac{s}{\sqrt R},\quad
              s^2 = \frac1{R-1}\sum_r (x_r - \bar x)^2.

    The one implementation of mean +- SE in the package: the estimators, the moment
    assertions of :mod:`kernelapprox.testing` and the claims of ``proofs/`` call it.

    Parameters
    ----------
    samples : array_like
        Independent replications, at least 2 along ``axis``; finite.
    axis : int, optional
        The replication axis; ``None`` (default) flattens and returns two floats, an integer
        returns two arrays with that axis removed.

    Examples
    --------
    >>> mean_and_se([1.0, 2.0, 3.0, 6.0])
    (3.0, 1.0801234497346435)
    """
    shifted, first, along, R = _shifted(samples, axis)
    mean = first + shifted.mean(axis=along)
    se = shifted.std(axis=along, ddof=1) / np.sqrt(R)
    return (float(mean), float(se)) if axis is None else (mean, se)


def variance_and_se(samples: Any, *, axis: int | None = None) -> tuple[Any, Any]:
    r"""Unbiased sample variance of independent replications and its large-sample SE.

    .. math:: s^2 = \frac1{R-1}\sum_r (x_r - \bar x)^2,\qquad
              \mathrm{SE}(s^2) = \sqrt{\frac{\hat\mu_4 - s^4}{R}},\quad
              \hat\mu_4 = \frac1R \sum_r (x_r - \bar x)^4,

    from :math:`\operatorname{Var}(s^2) = (\mu_4 - \sigma^4)/R + O(R^{-2})`, valid for
    non-normal replications (Casella & Berger, *Statistical Inference*, Ex. 5.8); for normal
    ones it is :math:`\sigma^2 \sqrt{2/R}`. ``samples`` and ``axis`` as in
    :func:`mean_and_se`.

    Examples
    --------
    >>> var, se = variance_and_se([1.0, 2.0, 3.0, 6.0])
    >>> var, round(se, 6)
    (4.666666666666667, 0.824958)
    """
    shifted, _, along, R = _shifted(samples, axis)
    centred = shifted - shifted.mean(axis=along, keepdims=True)
    variance = np.sum(centred**2, axis=along) / (R - 1)
    mu4 = np.mean(centred**4, axis=along)
    se = np.sqrt(np.maximum(mu4 - variance**2, 0.0) / R)
    return (float(variance), float(se)) if axis is None else (variance, se)


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
    if R == 1:
        nan = float("nan")
        return ErrorEstimate(float(x[0]), nan, nan, nan, level, "replications", n, 1)
    mean, stderr = mean_and_se(x)
    half = float(stats.t.ppf(0.5 + level / 2.0, df=R - 1)) * stderr
    return ErrorEstimate(mean, stderr, mean - half, mean + half, level, "replications", n, R)


def _t_quantile(level: float, dof: float) -> float:
    return float(stats.t.ppf(0.5 + level / 2.0, df=dof))


def log_scale_interval(values: Any, *, level: float = 0.95, n: int = 0) -> ErrorEstimate:
    r"""Interval for the mean of positive replications, built on the log scale.

    With mean :math:`\bar e`, standard error :math:`s` and :math:`t = t_{R-1, 1-\alpha/2}`,
    the delta method gives :math:`\operatorname{se}(\log \bar e) \approx s / \bar e`, so

    .. math:: [\bar e\, e^{-t s / \bar e},\ \bar e\, e^{t s / \bar e}],

    the "log-transformed" interval for a positive quantity (Kalbfleisch & Prentice 2002,
    Sec. 1.3; the same construction as the log-log survival interval). It cannot reach 0,
    is symmetric in log space (``ci_low * ci_high = mean**2``) and agrees with the
    Student-t interval :func:`replication_interval` to first order in ``s / mean``.
    One replication gives ``nan`` for the standard error and the interval; a mean of
    exactly 0 (every replication 0) gives the interval ``[0, 0]``.

    Examples
    --------
    >>> est = log_scale_interval([1.0, 2.0, 3.0])
    >>> round(est.ci_low * est.ci_high, 12) == round(est.value**2, 12), est.ci_low > 0
    (True, True)
    """
    level = check_level(level)
    x = np.asarray(values, dtype=np.float64).ravel()
    if x.size == 0:
        raise ValueError("values must hold at least one replication")
    if not np.all(np.isfinite(x)) or np.any(x < 0):
        raise ValueError("values must be finite and >= 0 (errors)")
    R = x.size
    if R == 1:
        nan = float("nan")
        return ErrorEstimate(float(x[0]), nan, nan, nan, level, "log-t", n, 1)
    mean, stderr = mean_and_se(x)
    if mean == 0.0:
        return ErrorEstimate(0.0, stderr, 0.0, 0.0, level, "log-t", n, R)
    factor = float(np.exp(_t_quantile(level, R - 1) * stderr / mean))
    return ErrorEstimate(mean, stderr, mean / factor, mean * factor, level, "log-t", n, R)


def rms_interval(values: Any, *, level: float = 0.95, n: int = 0) -> ErrorEstimate:
    r"""The root mean square :math:`\sqrt{\overline{e^2}}` of replications, with an interval.

    The mean of the squares :math:`e_r^2` gets the log-scale interval of
    :func:`log_scale_interval`; its square roots bound the RMS (a monotone map keeps the
    coverage). The standard error is the delta-method one, :math:`s_{e^2} / (2\,\mathrm{RMS})`.
    This is what an analytic *RMS* prediction must be compared with: the mean error is
    smaller than the RMS by Jensen's inequality, so a mean-error interval excludes an exact
    RMS prediction by construction whenever the error varies.
    """
    x = np.asarray(values, dtype=np.float64).ravel()
    sq = log_scale_interval(x * x, level=level, n=n)
    rms = float(np.sqrt(sq.value))
    stderr = sq.stderr / (2.0 * rms) if rms > 0 else float("nan")
    return ErrorEstimate(
        rms, stderr, float(np.sqrt(sq.ci_low)), float(np.sqrt(sq.ci_high)), sq.level, "rms-log-t",
        n, sq.replications,
    )  # fmt: skip
