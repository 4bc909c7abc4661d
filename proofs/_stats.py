"""Small statistics helpers for the numerical claims: standard errors and log-log slopes.

Every tolerance in a numerical claim is a multiple of a standard error computed here, from
independent replications (``SeedSequence.spawn``), never from the spread inside one point set.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def mean_and_se(samples: np.ndarray) -> tuple[float, float]:
    """Sample mean and its standard error ``s / sqrt(n)`` (``samples`` is 1-D)."""
    x = np.asarray(samples, dtype=np.float64)
    return float(x.mean()), float(x.std(ddof=1) / np.sqrt(x.size))


def variance_and_se(samples: np.ndarray) -> tuple[float, float]:
    """Unbiased sample variance and its large-sample standard error.

    ``Var(s^2) ~ (mu_4 - sigma^4) / n`` with the fourth central moment ``mu_4`` estimated from
    the same samples, which is valid for non-normal samples.
    """
    x = np.asarray(samples, dtype=np.float64)
    centred = x - x.mean()
    var = float(centred.var(ddof=1))
    mu4 = float(np.mean(centred**4))
    return var, float(np.sqrt(max(mu4 - var**2, 0.0) / x.size))


@dataclass(frozen=True)
class Slope:
    """A fitted log-log slope of RMSE against n, with its standard error."""

    slope: float
    se: float
    rmse: tuple[float, ...]
    ns: tuple[int, ...]

    def __str__(self) -> str:
        return f"{self.slope:.3f} +- {self.se:.3f}"


def rmse_slope(ns: np.ndarray, errors: np.ndarray) -> Slope:
    """Weighted least-squares slope of ``log RMSE`` on ``log n``.

    Parameters
    ----------
    ns : array of shape (k,)
        Sample sizes.
    errors : array of shape (k, R)
        Signed errors of ``R`` independent replications at each size.

    Notes
    -----
    ``MSE_i`` is the mean of the squared errors at size ``n_i``; by the delta method
    ``sd(log RMSE_i) = sd(MSE_i) / (2 MSE_i)`` with ``sd(MSE_i)`` the standard error of the mean
    of the squared errors. The slope's standard error is ``(sum_i w_i (x_i - xbar_w)^2)^(-1/2)``
    with weights ``w_i = 1 / sd(log RMSE_i)^2``.
    """
    ns = np.asarray(ns, dtype=np.float64)
    sq = np.asarray(errors, dtype=np.float64) ** 2
    mse = sq.mean(axis=1)
    se_mse = sq.std(axis=1, ddof=1) / np.sqrt(sq.shape[1])
    sd_log = np.maximum(se_mse / (2 * mse), 1e-12)
    x, y, w = np.log(ns), 0.5 * np.log(mse), 1.0 / sd_log**2
    xbar = np.sum(w * x) / np.sum(w)
    sxx = np.sum(w * (x - xbar) ** 2)
    slope = float(np.sum(w * (x - xbar) * y) / sxx)
    return Slope(slope, float(1.0 / np.sqrt(sxx)), tuple(np.sqrt(mse)), tuple(int(n) for n in ns))


def uniform_directions(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    """``n`` iid directions uniform on the unit sphere ``S^{d-1}`` (normalised Gaussians)."""
    g = rng.standard_normal((n, d))
    return g / np.linalg.norm(g, axis=1, keepdims=True)
