"""Column bootstrap: agreement with the analytic standard error, coverage, plumbing."""

from __future__ import annotations

import numpy as np
import pytest

from kernelapprox.estimators.analytic import gaussian_cos_variance
from kernelapprox.estimators.bootstrap import bootstrap_columns


def _cos_moments(z):
    """Mean, variance and 4th central moment of cos(theta), theta ~ N(0, z^2) (closed form).

    From cos^2 = (1 + cos 2t)/2, cos^3 = (3 cos t + cos 3t)/4, cos^4 = (3 + 4 cos 2t +
    cos 4t)/8 and E cos(a theta) = exp(-a^2 z^2 / 2).
    """

    def e(a):
        return np.exp(-(a**2) * z**2 / 2)

    mu, m2 = e(1), (1 + e(2)) / 2
    m3, m4 = (3 * e(1) + e(3)) / 4, (3 + 4 * e(2) + e(4)) / 8
    var = m2 - mu**2
    central4 = m4 - 4 * mu * m3 + 6 * mu**2 * m2 - 3 * mu**4
    return mu, var, central4


@pytest.mark.parametrize("z", [0.7, 1.5])
def test_bootstrap_stderr_matches_analytic_for_mc_features(z):
    """Tolerance from the bootstrap's own variability.

    The ideal (B = infinity) bootstrap SE is sqrt((m-1)/m) * s / sqrt(m), with s the sample
    standard deviation of the m terms; s / sigma has relative SD ~ sqrt((mu4/sigma^4 - 1)
    / (4m)) (delta method), and B resamples add a relative SD ~ 1/sqrt(2B). We allow 5 of the
    combined SD plus the 1/(2m) bias of sqrt((m-1)/m).
    """
    m, B = 256, 2000
    rng = np.random.default_rng(100)
    terms = np.cos(z * rng.normal(size=m))
    est = bootstrap_columns(terms, n_resamples=B, seed=1)
    analytic_se = np.sqrt(gaussian_cos_variance(z) / m)
    _, var, central4 = _cos_moments(z)
    assert var == pytest.approx(gaussian_cos_variance(z))
    tau = np.sqrt((central4 / var**2 - 1) / (4 * m) + 1 / (2 * B))
    assert abs(est.stderr / analytic_se - 1) <= 5 * tau + 1 / (2 * m), (est.stderr, analytic_se)
    assert est.value == pytest.approx(terms.mean())
    assert est.method == "bootstrap" and est.n == m and est.replications == 1


def test_bootstrap_interval_coverage_for_mc_features():
    z, m, trials = 1.0, 64, 400
    truth = np.exp(-(z**2) / 2)
    rng = np.random.default_rng(200)
    covered = sum(
        bootstrap_columns(np.cos(z * rng.normal(size=m)), n_resamples=400, seed=i).covers(truth)
        for i in range(trials)
    )
    p = covered / trials
    assert abs(p - 0.95) <= 5 * np.sqrt(0.95 * 0.05 / trials), p


def test_bootstrap_is_seeded_and_weighted_and_takes_a_statistic():
    rng = np.random.default_rng(3)
    terms = rng.normal(size=(50, 4))  # 50 frequencies x 4 pairs
    weights = rng.random(50) / 25
    truth = np.zeros(4)

    def rms_error(estimate):
        return float(np.sqrt(np.mean((estimate - truth) ** 2)))

    a = bootstrap_columns(terms, weights=weights, statistic=rms_error, seed=7)
    b = bootstrap_columns(terms, weights=weights, statistic=rms_error, seed=7)
    c = bootstrap_columns(terms, weights=weights, statistic=rms_error, seed=8)
    assert a == b
    assert a != c
    assert a.value == pytest.approx(rms_error(weights @ terms))
    assert a.ci_low <= a.ci_high


def test_bootstrap_of_constant_columns_has_zero_error():
    est = bootstrap_columns(np.full(10, 0.3), seed=0)
    assert est.stderr == pytest.approx(0.0, abs=1e-15)
    assert est.ci_low == pytest.approx(0.3) and est.ci_high == pytest.approx(0.3)


def test_bad_input():
    with pytest.raises(ValueError, match="statistic is required"):
        bootstrap_columns(np.ones((5, 2)))
    with pytest.raises(ValueError, match="m >= 2"):
        bootstrap_columns(np.ones(1))
    with pytest.raises(ValueError, match="weights"):
        bootstrap_columns(np.ones(5), weights=np.ones(4))
    with pytest.raises(ValueError, match="level"):
        bootstrap_columns(np.ones(5), level=0.0)
    with pytest.raises(ValueError, match="NaN"):
        bootstrap_columns(np.array([1.0, np.nan]))
    with pytest.raises(TypeError, match="statistic"):
        bootstrap_columns(np.ones(5), statistic=3)
