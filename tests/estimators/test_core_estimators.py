import numpy as np
import pytest
from scipy import stats

from kernelapprox.estimators import (
    ErrorEstimate,
    features_needed,
    fit_rate,
    gram_error,
    replication_interval,
)
from tests.conftest import THOROUGH


def test_replication_interval_matches_scipy_t_interval():
    x = np.array([0.3, 0.5, 0.2, 0.45, 0.41])
    est = replication_interval(x, level=0.9)
    lo, hi = stats.t.interval(0.9, df=4, loc=x.mean(), scale=stats.sem(x))
    assert isinstance(est, ErrorEstimate) and est.method == "replications" and est.replications == 5
    np.testing.assert_allclose([est.ci_low, est.ci_high], [lo, hi], rtol=1e-12)
    np.testing.assert_allclose(est.stderr, stats.sem(x))
    assert est.covers(x.mean())


def test_single_replication_has_no_interval():
    est = replication_interval([0.4])
    assert est.value == 0.4 and np.isnan(est.stderr) and np.isnan(est.ci_low)


def test_interval_coverage_is_nominal():
    """A 95% t interval over R=8 replications: exact coverage 0.95 for normal data.

    Tolerance: 5 binomial standard errors ``sqrt(0.95 * 0.05 / trials)``.
    """
    trials = 4000 if THOROUGH else 2000
    rng = np.random.default_rng(0)
    covered = sum(
        replication_interval(rng.normal(2.0, 1.0, size=8)).covers(2.0) for _ in range(trials)
    )
    assert abs(covered / trials - 0.95) < 5 * np.sqrt(0.95 * 0.05 / trials)


def test_interval_coverage_on_skewed_data_matches_a_reference():
    """On exponential data the t interval under-covers (about 0.89, not 0.95): the package's
    coverage must match a vectorised reference simulation of the same interval within 5
    combined binomial standard errors, and lie significantly below 0.95."""
    trials, reference_trials = 2000, 200_000
    rng = np.random.default_rng(1)
    covered = sum(
        replication_interval(rng.exponential(size=8) + 1).covers(2.0) for _ in range(trials)
    )
    x = np.random.default_rng(2).exponential(size=(reference_trials, 8)) + 1
    half = stats.t.ppf(0.975, df=7) * x.std(axis=1, ddof=1) / np.sqrt(8)
    reference = float(np.mean(np.abs(x.mean(axis=1) - 2.0) <= half))
    p, q = covered / trials, reference
    se = np.sqrt(p * (1 - p) / trials + q * (1 - q) / reference_trials)
    assert abs(p - q) < 5 * se
    assert q < 0.95 - 5 * np.sqrt(q * (1 - q) / reference_trials)


@pytest.mark.parametrize("bad", [[], [1.0, np.nan]])
def test_replication_interval_rejects_bad_values(bad):
    with pytest.raises(ValueError, match="values"):
        replication_interval(bad)
    with pytest.raises(ValueError, match="level"):
        replication_interval([1.0, 2.0], level=1.5)


def test_rate_fit_recovers_a_power_law_and_its_uncertainty():
    m = np.array([16, 32, 64, 128, 256])
    rng = np.random.default_rng(1)
    R = 20
    errors = 3.0 * m[None, :] ** -0.5 * np.exp(0.05 * rng.normal(size=(R, m.size)))
    fit = fit_rate(m, errors)
    assert fit.replications == R and fit.ci_low < -0.5 < fit.ci_high
    assert abs(fit.slope + 0.5) < 5 * fit.stderr
    exact = fit_rate(m, 2.0 * m**-1.0)
    np.testing.assert_allclose([exact.slope, np.exp(exact.intercept)], [-1.0, 2.0])
    single = fit_rate(m, errors[0])
    assert single.replications == 1 and single.ci_low < single.slope < single.ci_high


def test_rate_fit_rejects_bad_curves():
    with pytest.raises(ValueError, match="two distinct"):
        fit_rate([16], [0.1])
    with pytest.raises(ValueError, match="positive"):
        fit_rate([16, 32], [0.1, 0.0])
    with pytest.raises(ValueError, match="shape"):
        fit_rate([16, 32], [0.1, 0.2, 0.3])


def test_features_needed_interpolates_in_log_log():
    m = [16, 32, 64, 128]
    errors = [1 / np.sqrt(x) for x in m]
    np.testing.assert_allclose(features_needed(m, errors, 1 / np.sqrt(48)), 48, rtol=1e-12)
    assert features_needed(m, errors, 0.5) == 16
    assert np.isnan(features_needed(m, errors, 0.01))


def test_gram_metrics_against_direct_numpy():
    rng = np.random.default_rng(2)
    A = rng.normal(size=(5, 5))
    K = A @ A.T + 5 * np.eye(5)
    E = 0.01 * rng.normal(size=(5, 5))
    K_hat = K + E + E.T
    np.testing.assert_allclose(
        gram_error(K_hat, K, "rel_fro"), np.linalg.norm(K_hat - K) / np.linalg.norm(K)
    )
    s = np.linalg.svd(K_hat - K, compute_uv=False)[0] / np.linalg.svd(K, compute_uv=False)[0]
    np.testing.assert_allclose(gram_error(K_hat, K, "rel_spectral"), s)
    np.testing.assert_allclose(gram_error(K_hat, K, "max_abs"), np.abs(K_hat - K).max())
    P = np.exp(rng.normal(size=(4, 4)))
    assert gram_error(P, P, "rownorm_fro") == 0.0
    assert gram_error(3.0 * P, P, "rownorm_fro") < 1e-15  # invariant to row scale
    assert gram_error(-P, P, "rownorm_fro") == np.inf
    with pytest.raises(ValueError, match="metric must be one of"):
        gram_error(P, P, "nuclear")
