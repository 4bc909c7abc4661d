r"""Two methods compared over seeds, paired: the same seed gives both the same data and batches.

With scores :math:`a_s, b_s` of two methods on seed :math:`s = 1..S` (one training run each,
same training subsample, initial head, batch order and test set), the per-seed ratios
:math:`r_s = a_s / b_s` (or differences :math:`d_s = a_s - b_s`) are independent across seeds,
and their mean has the Student-t interval

.. math:: \bar r \pm t_{S-1,\,1-\alpha/2}\, \frac{s_r}{\sqrt{S}}

(:func:`kernelapprox.estimators.replications.replication_interval`; the paired t interval of
scipy's ``ttest_rel`` for differences). Pairing removes the seed-to-seed variation the methods
share (an easy training subsample lifts both). A target "ratio :math:`\ge c`" is *met* when the
whole interval is at or above :math:`c`, *not met* when it is below, and *inconclusive* when it
straddles :math:`c`; one seed gives no interval.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from kernelapprox.estimators.replications import replication_interval

__all__ = ["paired_difference", "paired_ratio", "target_verdict"]


def _pair(a: Sequence[float], b: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(a, dtype=np.float64).ravel()
    y = np.asarray(b, dtype=np.float64).ravel()
    if x.shape != y.shape or x.size == 0:
        raise ValueError(f"the two methods need one score per seed each, got {x.size} and {y.size}")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ValueError("scores must be finite")
    return x, y


def _interval(values: np.ndarray, level: float) -> dict[str, Any]:
    est = replication_interval(values, level=level)
    finite = np.isfinite(est.ci_low)
    return {
        "value": est.value,
        "stderr": est.stderr if finite else None,
        "ci_low": est.ci_low if finite else None,
        "ci_high": est.ci_high if finite else None,
        "level": level,
        "n_seeds": int(values.size),
        "per_seed": [float(v) for v in values],
    }


def paired_ratio(
    numerator: Sequence[float], denominator: Sequence[float], *, level: float = 0.95
) -> dict[str, Any]:
    """Mean over seeds of :math:`a_s / b_s` with its paired t interval (module docstring).

    >>> r = paired_ratio([0.8, 0.7, 0.9], [0.8, 0.8, 0.9])
    >>> round(r["value"], 4), r["n_seeds"], round(r["ci_low"], 3), round(r["ci_high"], 3)
    (0.9583, 3, 0.779, 1.138)
    """
    a, b = _pair(numerator, denominator)
    if np.any(b <= 0):
        raise ValueError("denominator scores must be > 0 for a ratio")
    return _interval(a / b, level)


def paired_difference(
    a: Sequence[float], b: Sequence[float], *, level: float = 0.95
) -> dict[str, Any]:
    """Mean over seeds of :math:`a_s - b_s` with its paired t interval (module docstring).

    >>> d = paired_difference([0.8, 0.7, 0.9], [0.5, 0.5, 0.6])
    >>> round(d["value"], 4), round(d["ci_low"], 3), round(d["ci_high"], 3)
    (0.2667, 0.123, 0.41)
    """
    x, y = _pair(a, b)
    return _interval(x - y, level)


def target_verdict(interval: dict[str, Any], threshold: float) -> str:
    """``"met"`` (interval at or above ``threshold``), ``"not met"`` (below), ``"inconclusive"``
    (straddling) or ``"no interval"`` (one seed)."""
    low, high = interval.get("ci_low"), interval.get("ci_high")
    if low is None or high is None:
        return "no interval"
    if low >= threshold:
        return "met"
    if high < threshold:
        return "not met"
    return "inconclusive"
