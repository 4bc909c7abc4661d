r"""Comparisons of error distributions: ratios against a baseline, tests against predictions.

- :func:`error_ratio`: the ratio of two samplers' errors at equal :math:`m`, as a ratio of
  geometric means with a Student-t interval on log errors (paired when the replications
  share their randomness, Welch otherwise);
- :func:`features_ratio`: how many features one sampler needs for the error the other
  reaches, by log-log interpolation of the measured curves, with a bootstrap interval;
- :func:`rms_p_value` and :func:`holm_adjust`: does a measured RMS error agree with an
  analytic RMS prediction, with Holm's correction for testing many cells;
- :func:`too_few_replications`: Cochran's rule for the normal approximation of a mean
  under skewness.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import stats

from kernelapprox._validation import SeedLike, check_positive_int
from kernelapprox.estimators._result import ErrorEstimate
from kernelapprox.estimators.bootstrap import bootstrap_replications
from kernelapprox.estimators.replications import check_level, mean_and_se

__all__ = [
    "cochran_replications",
    "error_ratio",
    "features_ratio",
    "holm_adjust",
    "rms_p_value",
    "too_few_replications",
]


def _positive(values: Any, name: str) -> np.ndarray:
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0 or not np.all(np.isfinite(x)) or np.any(x <= 0):
        raise ValueError(f"{name} must be non-empty, finite and > 0 (errors on a log scale)")
    return x


def error_ratio(
    values: Any, baseline: Any, *, paired: bool = False, level: float = 0.95
) -> ErrorEstimate:
    r"""Ratio of geometric mean errors, ``values`` over ``baseline``, with a t interval.

    With :math:`u_r = \log e_r` and :math:`v_r = \log b_r` the ratio is
    :math:`\exp(\bar u - \bar v)`, an interval on the log scale mapped back by ``exp`` (so it
    is positive, and ``1`` inside it means no detected difference).

    ``paired=True`` (replication :math:`r` of both shares its randomness, e.g. common seeds):
    the one-sample t interval of the differences :math:`u_r - v_r` (``R - 1`` degrees of
    freedom), as scipy's ``ttest_rel``. Otherwise the two samples are independent: Welch's
    interval with Welch-Satterthwaite degrees of freedom, as scipy's
    ``ttest_ind(equal_var=False)`` (Welch 1947). One replication on either side (or a paired
    difference of zero spread with one replication) gives a ``nan`` interval.
    """
    level = check_level(level)
    u = np.log(_positive(values, "values")).ravel()
    v = np.log(_positive(baseline, "baseline")).ravel()
    nan = float("nan")
    if paired:
        if u.size != v.size:
            raise ValueError(
                f"paired comparisons need as many replications on both sides, got {u.size} "
                f"and {v.size}"
            )
        d = u - v
        R = d.size
        diff = float(d.mean())
        if R < 2:
            return ErrorEstimate(float(np.exp(diff)), nan, nan, nan, level, "paired-log-t", 0, R)
        diff, se = mean_and_se(d)
        dof = R - 1.0
        method = "paired-log-t"
    else:
        R = min(u.size, v.size)
        diff = float(u.mean() - v.mean())
        if R < 2:
            return ErrorEstimate(float(np.exp(diff)), nan, nan, nan, level, "welch-log-t", 0, R)
        a, b = mean_and_se(u)[1] ** 2, mean_and_se(v)[1] ** 2  # squared SEs of the means
        se = float(np.sqrt(a + b))
        denom = a * a / (u.size - 1) + b * b / (v.size - 1)
        dof = float((a + b) ** 2 / denom) if denom > 0 else float(u.size + v.size - 2)
        method = "welch-log-t"
    half = float(stats.t.ppf(0.5 + level / 2.0, df=dof)) * se
    return ErrorEstimate(
        float(np.exp(diff)), float(np.exp(diff) * se), float(np.exp(diff - half)),
        float(np.exp(diff + half)), level, method, 0, R,
    )  # fmt: skip


def _first_crossing(log_m: np.ndarray, log_curves: np.ndarray, log_target: np.ndarray) -> tuple:
    """Features each curve needs for its target: log-log interpolation at the first crossing.

    ``log_curves`` has shape ``(B, k)``, ``log_target`` shape ``(B,)``. Returns
    ``(log m needed, code)`` per curve, code 0 inside the grid, -1 when the curve is
    already below the target at the smallest m, +1 when it never reaches it. The same
    rule as :func:`~kernelapprox.estimators.rates.features_needed` (checked against it in
    the tests), for many curves at once.
    """
    below = log_curves <= log_target[:, None]
    reached = below.any(axis=1)
    i = np.argmax(below, axis=1)  # first index at or below the target
    prev = np.maximum(i - 1, 0)
    rows = np.arange(log_curves.shape[0])
    e0, e1 = log_curves[rows, prev], log_curves[rows, i]
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.where(e1 != e0, (log_target - e0) / (e1 - e0), 0.0)
    out = np.where(i == 0, log_m[0], log_m[prev] + frac * (log_m[i] - log_m[prev]))
    code = np.where(~reached, 1, np.where(log_curves[:, 0] < log_target, -1, 0))
    return out, code


def _log_ratio(log_m: np.ndarray, s: np.ndarray, b: np.ndarray) -> tuple:
    """Log features ratio and relation code per resample; ``s``, ``b``: (B, k) log curves."""
    target = np.maximum(s[:, -1], b[:, -1])
    ms, cs = _first_crossing(log_m, s, target)
    mb, cb = _first_crossing(log_m, b, target)
    # codes: 0 "=" both inside; -1 "<" sampler below at m[0]; +1 ">" baseline below at m[0];
    # 2 "?" neither measured curve crosses the reference error inside the grid
    code = np.where((cs == 0) & (cb == 0), 0, np.where((cs == -1) & (cb == 0), -1, 2))
    code = np.where((cs == 0) & (cb == -1), 1, code)
    return ms - mb, code, target


_RELATION = {0: "=", -1: "<", 1: ">", 2: "?"}


def features_ratio_point(ms: Any, curve: Any, baseline_curve: Any) -> tuple[float, str, float]:
    r"""Point estimate of :func:`features_ratio` on two curves of typical errors.

    Returns ``(ratio, relation, reference_error)``: ``relation`` is ``"="`` when both
    curves reach the reference error inside the measured range; ``"<"`` (``">"``) when the
    sampler (the baseline) is already below it at the smallest m, so the ratio is at most
    (at least) the returned bound; ``"?"`` (ratio ``nan``) when the curves do not decrease
    enough for any comparison.
    """
    log_m = np.log(np.asarray(ms, dtype=np.float64))
    s = np.log(_positive(curve, "curve")).reshape(1, -1)
    b = np.log(_positive(baseline_curve, "baseline_curve")).reshape(1, -1)
    lr, code, target = _log_ratio(log_m, s, b)
    relation = _RELATION[int(code[0])]
    return (
        (float(np.exp(lr[0])) if relation != "?" else float("nan")),
        relation,
        float(np.exp(target[0])),
    )


def features_ratio(
    n_features: Any,
    errors: Any,
    baseline_errors: Any,
    *,
    level: float = 0.95,
    n_resamples: int = 1000,
    seed: SeedLike = 0,
) -> tuple[ErrorEstimate, str, float]:
    r"""Ratio of the features a sampler needs to the features the baseline needs, equal error.

    Method (interpolation, no fitted rate): each curve's typical error at each :math:`m` is
    its geometric mean over replications, :math:`\exp(\overline{\log e})`. The reference
    error :math:`e^*` is the larger of the two curves' errors at the largest :math:`m`, so
    both curves reach it within the measured range when they decrease; the features each
    needs for :math:`e^*` come from linear interpolation in :math:`(\log m, \log e)` at the
    first crossing (the rule of :func:`~kernelapprox.estimators.rates.features_needed`).
    The ratio :math:`m_\text{sampler}(e^*) / m_\text{baseline}(e^*)` is below 1 when the
    sampler needs fewer features. If one curve is already below :math:`e^*` at the smallest
    :math:`m`, the ratio is only bounded: relation ``"<"`` or ``">"``, and the value is the
    bound (:func:`features_ratio_point`).

    The interval is a percentile bootstrap over replications, each curve resampled
    independently (:func:`~kernelapprox.estimators.bootstrap.bootstrap_replications`);
    resamples where the ratio is only bounded count as ``0`` (below) or ``inf`` (above),
    and an undefined resample makes the interval ``nan``.

    Parameters
    ----------
    n_features : array_like of shape (k,)
        Increasing feature counts, ``k >= 2``.
    errors, baseline_errors : array_like of shape (R, k)
        Positive errors, one row per replication.

    Returns
    -------
    (ErrorEstimate, relation, reference_error)
    """
    level = check_level(level)
    ms = np.asarray(n_features, dtype=np.float64).ravel()
    if ms.size < 2 or np.any(np.diff(ms) <= 0):
        raise ValueError("n_features must hold at least two increasing feature counts")
    S = np.log(_positive(errors, "errors"))
    B = np.log(_positive(baseline_errors, "baseline_errors"))
    for name, t in (("errors", S), ("baseline_errors", B)):
        if t.ndim != 2 or t.shape[1] != ms.size:
            raise ValueError(f"{name} must have shape (R, {ms.size}), got {t.shape}")
    check_positive_int(n_resamples, "n_resamples", minimum=2)
    ratio, relation, target = features_ratio_point(
        ms, np.exp(S.mean(axis=0)), np.exp(B.mean(axis=0))
    )
    log_m = np.log(ms)

    def statistic(s: np.ndarray, b: np.ndarray) -> np.ndarray:  # (n, R, k) -> (n,)
        lr, code, _ = _log_ratio(log_m, s.mean(axis=1), b.mean(axis=1))
        bounded = np.where(code == -1, 0.0, np.where(code == 1, np.inf, np.nan))
        return np.where(code == 0, np.exp(lr), bounded)

    if S.shape[0] >= 2 and B.shape[0] >= 2:
        boot = bootstrap_replications(
            [S, B], statistic, n_resamples=n_resamples, level=level, seed=seed, vectorized=True
        )
        low, high, se = boot.ci_low, boot.ci_high, boot.stderr
    else:
        low = high = se = float("nan")
    est = ErrorEstimate(
        ratio, se, low, high, level, "interpolation-bootstrap", 0, min(S.shape[0], B.shape[0])
    )
    return est, relation, target


def rms_p_value(values: Any, predicted: float) -> float:
    r"""Two-sided p-value of :math:`H_0`: the RMS of ``values`` equals ``predicted``.

    On the scale of :func:`~kernelapprox.estimators.replications.rms_interval`: with
    :math:`q = \overline{e^2}` and its standard error :math:`s_q`, the statistic
    :math:`T = (\log q - \log \text{predicted}^2) / (s_q / q)` is referred to Student's t with
    ``R - 1`` degrees of freedom, so ``p < 1 - level`` exactly when that interval excludes
    ``predicted``. ``nan`` for one replication.
    """
    x = np.asarray(values, dtype=np.float64).ravel()
    if not (np.isfinite(predicted) and predicted > 0):
        raise ValueError(f"predicted must be a positive RMS error, got {predicted}")
    if x.size < 2:
        return float("nan")
    if not np.all(np.isfinite(x)):
        raise ValueError("values must be finite")
    sq = x * x
    q, se = mean_and_se(sq)
    if q == 0.0 or se == 0.0:
        return 0.0 if q != predicted**2 else 1.0
    T = (np.log(q) - 2.0 * np.log(predicted)) / (se / q)
    return float(2.0 * stats.t.sf(abs(T), df=sq.size - 1))


def holm_adjust(p_values: Any) -> np.ndarray:
    r"""Holm's step-down adjusted p-values (Holm 1979), family-wise error control.

    With the :math:`n` p-values sorted, :math:`p_{(1)} \le \dots \le p_{(n)}`, the adjusted
    value is :math:`\tilde p_{(i)} = \min(1, \max_{j \le i} (n - j + 1) p_{(j)})`; rejecting
    every hypothesis with :math:`\tilde p \le \alpha` keeps the probability of any false
    rejection at most :math:`\alpha`. ``nan`` entries (no test) stay ``nan`` and do not
    count in :math:`n`.
    """
    p = np.asarray(p_values, dtype=np.float64).ravel()
    out = np.full(p.shape, np.nan)
    ok = ~np.isnan(p)
    if np.any((p[ok] < 0) | (p[ok] > 1)):
        raise ValueError("p_values must lie in [0, 1]")
    idx = np.flatnonzero(ok)
    if idx.size == 0:
        return out
    order = idx[np.argsort(p[idx], kind="stable")]
    n = order.size
    scaled = (n - np.arange(n)) * p[order]
    out[order] = np.minimum(1.0, np.maximum.accumulate(scaled))
    return out


def cochran_replications(values: Any) -> float:
    r"""Cochran's rule: the replications a mean needs, :math:`25\, G_1^2`, for sample skewness G1.

    Cochran (Sampling Techniques, 3rd ed. 1977, Sec. 2.15): the normal approximation behind
    a 95% interval for a mean is adequate (true coverage within about 1% of nominal) once
    :math:`n > 25 G_1^2`, with :math:`G_1` the skewness of the population. ``values`` may
    be an array ``(R, k)`` of ``k`` cells: each column is standardized by its own mean and
    standard deviation and the skewness is pooled over all of them (one shape, more points).
    """
    x = np.asarray(values, dtype=np.float64)
    x = x[:, None] if x.ndim == 1 else x
    if x.shape[0] < 3:
        return float("nan")
    sd = x.std(axis=0, ddof=0)
    keep = sd > 0
    if not np.any(keep):
        return 0.0
    z = (x[:, keep] - x[:, keep].mean(axis=0)) / sd[keep]
    g1 = float(np.mean(z**3))
    return 25.0 * g1 * g1


def too_few_replications(values: Any) -> bool:
    """Whether the replications (rows of ``values``) fail :func:`cochran_replications`."""
    x = np.asarray(values, dtype=np.float64)
    need = cochran_replications(x)
    return bool(np.isfinite(need) and x.shape[0] < need)
