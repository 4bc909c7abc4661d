"""The package's one mean +- SE, variance +- SE and RMSE rate fit, against independent references.

References: ``scipy.stats.sem`` for the standard error of a mean; exact rational arithmetic
(:mod:`fractions`) for the variance and its fourth-moment standard error; a weighted least
squares solved by ``numpy.linalg.lstsq`` on the sqrt-weighted design for the rate fit.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

from kernelapprox.estimators.rates import fit_rmse_rate
from kernelapprox.estimators.replications import mean_and_se, variance_and_se


def test_mean_and_se_match_scipy_along_every_axis() -> None:
    x = np.random.default_rng(0).gamma(2.0, size=(7, 5, 3))
    mean, se = mean_and_se(x)
    assert mean == pytest.approx(x.mean(), rel=1e-13)
    assert se == pytest.approx(stats.sem(x, axis=None), rel=1e-12)
    assert isinstance(mean, float) and isinstance(se, float)
    for axis in (0, 1, 2, -1):
        mean, se = mean_and_se(x, axis=axis)
        np.testing.assert_allclose(mean, x.mean(axis=axis), rtol=1e-13)
        np.testing.assert_allclose(se, stats.sem(x, axis=axis), rtol=1e-12)


def _exact_variance_and_se_squared(values: list[int]) -> tuple[Fraction, Fraction]:
    """``s^2`` and ``(mu4_hat - s^4) / R`` in exact rational arithmetic."""
    R = len(values)
    mean = Fraction(sum(values), R)
    centred = [Fraction(v) - mean for v in values]
    variance = sum(c * c for c in centred) / (R - 1)
    mu4 = sum(c**4 for c in centred) / R
    return variance, (mu4 - variance**2) / R


def test_variance_and_se_match_exact_rational_arithmetic() -> None:
    values = [3, -1, 4, 1, -5, 9, 2, 6, 5, 3, 5, 8]
    variance, se_squared = _exact_variance_and_se_squared(values)
    var, se = variance_and_se(np.array(values, dtype=float))
    assert var == pytest.approx(float(variance), rel=1e-14)
    assert se == pytest.approx(float(se_squared) ** 0.5, rel=1e-13)
    columns = np.array([values, values[::-1], [2 * v for v in values]]).T
    var, se = variance_and_se(columns, axis=0)
    np.testing.assert_allclose(var, [float(variance)] * 2 + [4 * float(variance)], rtol=1e-14)
    np.testing.assert_allclose(se[:2], float(se_squared) ** 0.5, rtol=1e-13)


def test_variance_se_matches_normal_theory() -> None:
    """For N(0, 1) samples SE(s^2) -> sqrt(2 / R); the variance lies within 5 of its SEs of 1."""
    x = np.random.default_rng(1).standard_normal(20000)
    var, se = variance_and_se(x)
    assert abs(var - 1) < 5 * se and se == pytest.approx(np.sqrt(2 / x.size), rel=0.1)


def test_replications_that_do_not_vary_have_exactly_zero_spread() -> None:
    x = np.full((200, 3), 0.1234567)
    mean, se = mean_and_se(x, axis=0)
    var, var_se = variance_and_se(x, axis=0)
    assert np.all(mean == 0.1234567) and np.all(se == 0)
    assert np.all(var == 0) and np.all(var_se == 0)


@pytest.mark.parametrize("helper", [mean_and_se, variance_and_se])
def test_bad_samples_are_rejected_by_name(helper) -> None:
    with pytest.raises(ValueError, match="at least 2 replications"):
        helper([1.0])
    with pytest.raises(ValueError, match="samples must be finite"):
        helper([1.0, np.nan])
    with pytest.raises(ValueError, match="axis must be in"):
        helper(np.ones((3, 2)), axis=2)
    with pytest.raises(TypeError, match="axis must be an integer"):
        helper(np.ones((3, 2)), axis=1.0)


def test_fit_rmse_rate_is_the_weighted_least_squares_fit() -> None:
    rng = np.random.default_rng(2)
    m = 2 ** np.arange(4, 11)
    errors = 3.0 * m**-0.8 * rng.standard_normal((40, m.size))
    fit = fit_rmse_rate(m, errors, level=0.9)
    mse = (errors**2).mean(axis=0)
    sd_log = stats.sem(errors**2, axis=0) / (2 * mse)
    design = np.stack([np.ones(m.size), np.log(m)], axis=1) / sd_log[:, None]
    target = 0.5 * np.log(mse) / sd_log
    (intercept, slope), *_ = np.linalg.lstsq(design, target, rcond=None)
    cov = np.linalg.inv(design.T @ design)
    assert fit.slope == pytest.approx(slope, rel=1e-10)
    assert fit.rate.intercept == pytest.approx(intercept, rel=1e-10)
    assert fit.stderr == pytest.approx(np.sqrt(cov[1, 1]), rel=1e-10)
    half = stats.norm.ppf(0.95) * fit.stderr
    assert (fit.rate.ci_low, fit.rate.ci_high) == pytest.approx((slope - half, slope + half))
    np.testing.assert_allclose(fit.rmse, np.sqrt(mse), rtol=1e-13)
    assert fit.n_features == tuple(int(v) for v in m) and fit.rate.replications == 40
    assert abs(fit.slope + 0.8) <= 5 * fit.stderr  # the generating rate, within 5 SE
    assert str(fit) == f"{fit.slope:.3f} +- {fit.stderr:.3f}"
    assert fit.as_dict()["rmse"] == list(fit.rmse)


@given(st.floats(-1.6, -0.2), st.integers(0, 2**32 - 1))
def test_fit_rmse_rate_recovers_a_known_rate(rate: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    ns = 2 ** np.arange(4, 12)
    errors = ns**rate * rng.standard_normal((64, ns.size))
    fit = fit_rmse_rate(ns, errors)
    assert abs(fit.slope - rate) <= 5 * fit.stderr


def test_fit_rmse_rate_rejects_bad_input() -> None:
    m = [16, 32, 64]
    with pytest.raises(ValueError, match=r"errors must have shape \(R, 3\)"):
        fit_rmse_rate(m, np.ones((4, 2)))
    with pytest.raises(ValueError, match="at least 2 replications"):
        fit_rmse_rate(m, np.ones((1, 3)))
    with pytest.raises(ValueError, match="two distinct sizes"):
        fit_rmse_rate([16, 16, 16], np.ones((4, 3)))
    with pytest.raises(ValueError, match="n_features must be positive"):
        fit_rmse_rate([0, 32, 64], np.ones((4, 3)))
    with pytest.raises(ValueError, match="all zero at a size"):
        fit_rmse_rate(m, np.array([[1.0, 0.0, 1.0], [2.0, 0.0, 1.0]]))
    with pytest.raises(ValueError, match="level"):
        fit_rmse_rate(m, np.ones((4, 3)), level=1.5)
