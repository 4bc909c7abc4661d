r"""Bootstrap over feature columns: an error bar from a single feature draw.

A random-feature estimate is a weighted sum over the :math:`m` frequencies,
:math:`\hat\theta = \sum_l \xi_l t_l` (uniform weights :math:`\xi_l = 1/m` make it a mean).
Resampling the :math:`m` columns :math:`(\xi_l, t_l)` with replacement and recomputing the
statistic :math:`B` times gives its bootstrap distribution (Efron & Tibshirani 1993, Ch. 6
and 13; applied to random features by Yao, Erichson & Lopes, AISTATS 2023). The standard
error is the bootstrap standard deviation, the interval the percentile interval.

Valid for i.i.d. (Monte Carlo) frequencies. QMC or orthogonal frequencies are not i.i.d., so
a column bootstrap misstates their error; use independent replications for those.

:func:`bootstrap_replications` resamples independent *replications* instead (whole
randomizations, valid for every sampler): the robust interval of a study cell and of
statistics with no closed-form interval, such as a ratio of features needed.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from typing import Any

import numpy as np

from kernelapprox._validation import SeedLike, as_seed_sequence, check_positive_int
from kernelapprox.estimators._result import ErrorEstimate

__all__ = ["bootstrap_columns", "bootstrap_replications"]


def bootstrap_columns(
    terms: Any,
    *,
    weights: Any = None,
    statistic: Callable[[np.ndarray], float] | None = None,
    n_resamples: int = 1000,
    level: float = 0.95,
    seed: SeedLike = 0,
) -> ErrorEstimate:
    r"""Percentile bootstrap over the ``m`` feature columns of a random-feature estimate.

    Resample :math:`m` column indices :math:`I_1, \dots, I_m` with replacement, form
    :math:`\hat\theta^* = \sum_{j} \xi_{I_j} t_{I_j}` (the same weighted sum over the
    resampled columns; for uniform weights the resampled mean), apply ``statistic``, and
    repeat ``n_resamples`` times. Implemented with multinomial column counts, so the cost is
    one ``(B, m) @ (m, ...)`` product.

    Parameters
    ----------
    terms : array_like, shape (m, ...)
        Per-frequency contributions :math:`t_l` (e.g. :math:`\cos(\omega_l^\top\Delta)` on a
        batch of pairs, shape ``(m, P)``).
    weights : array_like, shape (m,), optional
        Weights :math:`\xi_l`; default :math:`1/m`.
    statistic : callable, optional
        Maps the estimate (shape ``terms.shape[1:]``) to a float, e.g. a relative Gram error
        against the exact kernel. Required unless ``terms`` is one-dimensional.
    n_resamples : int, default 1000
        :math:`B`.
    level : float, default 0.95
        Coverage of the percentile interval.
    seed : SeedLike, default 0
        Randomness of the resampling (fixed by default, so an interval is reproducible: the
        rule of :data:`~kernelapprox._validation.SeedLike`).

    Returns
    -------
    ErrorEstimate
        ``value`` = statistic of the full-sample estimate, ``stderr`` = bootstrap standard
        deviation (``ddof=1``), percentile interval, ``method="bootstrap"``, ``n=m``.
    """
    if hasattr(terms, "detach") and hasattr(terms, "cpu"):
        terms = terms.detach().cpu().numpy()
    t = np.asarray(terms, dtype=np.float64)
    if t.ndim == 0 or t.shape[0] < 2:
        raise ValueError(f"terms must have shape (m, ...) with m >= 2 columns, got {t.shape}")
    if not np.all(np.isfinite(t)):
        raise ValueError("terms contains NaN or infinite values")
    m = t.shape[0]
    if weights is None:
        xi = np.full(m, 1.0 / m)
    else:
        xi = np.asarray(weights, dtype=np.float64)
        if xi.shape != (m,):
            raise ValueError(f"weights must have shape ({m},), got {xi.shape}")
        if not np.all(np.isfinite(xi)):
            raise ValueError("weights contains NaN or infinite values")
    if statistic is None:
        if t.ndim != 1:
            raise ValueError(
                "statistic is required when terms has more than one dimension "
                f"(terms has shape {t.shape}); it must map an estimate to a float"
            )

        def statistic(estimate: np.ndarray) -> float:
            return float(estimate)

    elif not callable(statistic):
        raise TypeError(f"statistic must be callable, got {type(statistic).__name__}")
    B = check_positive_int(n_resamples, "n_resamples", minimum=2)
    if isinstance(level, bool) or not isinstance(level, numbers.Real):
        raise TypeError(f"level must be a number in (0, 1), got {level!r}")
    level = float(level)
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")

    rng = np.random.default_rng(as_seed_sequence(seed))
    weighted = (xi[:, None] * t.reshape(m, -1)).reshape(t.shape)
    value = float(statistic(weighted.sum(axis=0)))
    counts = rng.multinomial(m, np.full(m, 1.0 / m), size=B).astype(np.float64)
    resampled = (counts @ weighted.reshape(m, -1)).reshape((B, *t.shape[1:]))
    values = np.array([float(statistic(r)) for r in resampled])
    if not np.all(np.isfinite(values)):
        raise ValueError("statistic returned NaN or infinite values on a bootstrap resample")
    alpha = 0.5 * (1.0 - level)
    low, high = np.quantile(values, [alpha, 1.0 - alpha])
    return ErrorEstimate(
        value=value,
        stderr=float(values.std(ddof=1)),
        ci_low=float(low),
        ci_high=float(high),
        level=level,
        method="bootstrap",
        n=m,
        replications=1,
    )


def _check_level_number(level: Any) -> float:
    if isinstance(level, bool) or not isinstance(level, numbers.Real):
        raise TypeError(f"level must be a number in (0, 1), got {level!r}")
    level = float(level)
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    return level


def bootstrap_replications(
    samples: Any,
    statistic: Callable[..., float] | None = None,
    *,
    n_resamples: int = 2000,
    level: float = 0.95,
    seed: SeedLike = 0,
    vectorized: bool = False,
) -> ErrorEstimate:
    r"""Percentile bootstrap over independent replications, one or several groups.

    Each group :math:`g` holds :math:`R_g` independent replications (rows); a resample draws
    :math:`R_g` rows of every group with replacement, independently across groups, and
    evaluates ``statistic(*groups)``. The interval is the percentile interval of the
    ``n_resamples`` values (Efron & Tibshirani 1993, Ch. 13). Its endpoints are values the
    statistic takes on resampled data, so a positive statistic gets a positive interval.
    Infinite resample values (e.g. ``inf`` for "beyond the measured range") take part in
    the quantiles as what they are; if the statistic is ``nan`` (undefined) on any
    resample, the interval is ``nan``.

    The percentile interval is first-order accurate and undercovers for few replications
    (with :math:`R` rows the bootstrap mean spans only :math:`R` values): it is robust to the
    shape of the distribution, not to a small :math:`R`.

    Parameters
    ----------
    samples : array_like of shape (R, ...), or a sequence of them
        One array per group, replications along the first axis (``R >= 2``).
    statistic : callable, optional
        ``statistic(*groups) -> float``; default the mean of the single group.
    n_resamples : int, default 2000
    level : float, default 0.95
    seed : int, SeedSequence or Generator, default 0
        Randomness of the resampling (fixed by default, so a summary is reproducible).
    vectorized : bool, default False
        ``statistic`` takes every resample at once: groups of shape ``(B, R_g, ...)``,
        returning shape ``(B,)`` (the default mean is vectorized).

    Returns
    -------
    ErrorEstimate
        ``value`` = statistic of the data, ``stderr`` = standard deviation of the finite
        resample values, the percentile interval, ``method="bootstrap-replications"``,
        ``replications`` = the smallest group's size.
    """
    groups = [samples] if isinstance(samples, np.ndarray) else list(samples)
    if groups and np.ndim(groups[0]) == 0:  # a flat list of numbers is one group
        groups = [np.asarray(groups, dtype=np.float64)]
    groups = [np.asarray(g, dtype=np.float64) for g in groups]
    if not groups or any(g.ndim == 0 or g.shape[0] < 2 for g in groups):
        raise ValueError("samples must hold groups of at least 2 replications each")
    if statistic is None:
        if len(groups) != 1:
            raise ValueError("statistic is required for more than one group")

        def statistic(x: np.ndarray) -> Any:
            return np.mean(x, axis=1)

        vectorized = True

    elif not callable(statistic):
        raise TypeError(f"statistic must be callable, got {type(statistic).__name__}")
    B = check_positive_int(n_resamples, "n_resamples", minimum=2)
    level = _check_level_number(level)
    rng = np.random.default_rng(as_seed_sequence(seed))
    if vectorized:
        value = float(np.asarray(statistic(*(g[None] for g in groups))).reshape(-1)[0])
        draws = [g[rng.integers(0, g.shape[0], (B, g.shape[0]))] for g in groups]
        values = np.asarray(statistic(*draws), dtype=np.float64).reshape(B)
    else:
        value = float(statistic(*groups))
        values = np.empty(B)
        for b in range(B):
            values[b] = statistic(*(g[rng.integers(0, g.shape[0], g.shape[0])] for g in groups))
    alpha = 0.5 * (1.0 - level)
    if np.any(np.isnan(values)):
        low = high = float("nan")
    else:
        low, high = np.quantile(values, [alpha, 1.0 - alpha], method="inverted_cdf")
    finite = values[np.isfinite(values)]
    stderr = float(finite.std(ddof=1)) if finite.size >= 2 else float("nan")
    return ErrorEstimate(
        value=value, stderr=stderr, ci_low=float(low), ci_high=float(high), level=level,
        method="bootstrap-replications", n=0, replications=min(g.shape[0] for g in groups),
    )  # fmt: skip
