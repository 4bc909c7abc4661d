"""Positive intervals, RMS comparisons, Holm's correction, ratios against a baseline.

References: scipy's t tests (``ttest_ind(equal_var=False)``, ``ttest_rel``) for the ratio
intervals, a direct implementation of Holm's step-down procedure, scipy's ``skew``, the
rates module's ``features_needed``, and coverage simulations whose tolerances are 5
standard errors of a binomial proportion.
"""

import numpy as np
import pytest
from scipy import stats

from kernelapprox.estimators.bootstrap import bootstrap_replications
from kernelapprox.estimators.comparisons import (
    _first_crossing,
    cochran_replications,
    error_ratio,
    features_ratio,
    features_ratio_point,
    holm_adjust,
    rms_p_value,
    too_few_replications,
)
from kernelapprox.estimators.rates import features_needed
from kernelapprox.estimators.replications import (
    log_scale_interval,
    replication_interval,
    rms_interval,
)


def _five_se(p: float, trials: int) -> float:
    return 5.0 * np.sqrt(p * (1 - p) / trials)


def test_log_scale_interval_is_positive_and_symmetric_in_log_space():
    x = [0.01, 0.2, 0.9, 0.05]  # a spread for which the t interval goes below 0
    assert replication_interval(x).ci_low < 0
    est = log_scale_interval(x)
    assert 0 < est.ci_low < est.value < est.ci_high
    assert est.ci_low * est.ci_high == pytest.approx(est.value**2, rel=1e-12)
    t = stats.t.ppf(0.975, 3)
    se = np.std(x, ddof=1) / 2
    assert est.ci_high == pytest.approx(np.mean(x) * np.exp(t * se / np.mean(x)), rel=1e-12)


def test_log_scale_interval_edge_cases_and_bad_input():
    one = log_scale_interval([0.3])
    assert one.value == 0.3 and np.isnan(one.ci_low) and np.isnan(one.stderr)
    zero = log_scale_interval([0.0, 0.0])
    assert (zero.ci_low, zero.ci_high) == (0.0, 0.0)
    for bad in ([], [-0.1, 0.2], [np.nan, 1.0]):
        with pytest.raises(ValueError, match="values"):
            log_scale_interval(bad)


def test_log_scale_interval_covers_the_mean_at_the_nominal_rate():
    """Normal errors (mean 1, sd 0.2), R=8: coverage 0.95 within 5 SE over 2000 trials."""
    rng = np.random.default_rng(1)
    trials = 2000
    covered = sum(log_scale_interval(rng.normal(1, 0.2, 8)).covers(1.0) for _ in range(trials))
    assert abs(covered / trials - 0.95) <= _five_se(0.95, trials)


def test_rms_interval_covers_the_rms_and_agrees_with_its_p_value():
    rng = np.random.default_rng(2)
    truth = np.sqrt(1 + 0.3**2)  # E[e^2] for e ~ N(1, 0.3)
    trials, covered = 2000, 0
    for _ in range(trials):
        e = np.abs(rng.normal(1, 0.3, 10))
        est = rms_interval(e)
        covered += est.covers(truth)
        assert est.value == pytest.approx(np.sqrt(np.mean(e**2)), rel=1e-12)
        # the test and the interval are one construction: p < 0.05 iff excluded
        predicted = float(rng.uniform(0.8, 1.3))
        assert (rms_p_value(e, predicted) < 0.05) == (not est.covers(predicted))
    assert abs(covered / trials - 0.95) <= _five_se(0.95, trials)


def test_rms_p_value_needs_two_replications_and_a_positive_prediction():
    assert np.isnan(rms_p_value([0.4], 0.4))
    with pytest.raises(ValueError, match="predicted"):
        rms_p_value([0.4, 0.5], 0.0)


def test_error_ratio_matches_scipy_welch_and_paired_intervals():
    rng = np.random.default_rng(3)
    a, b = np.exp(rng.normal(0, 0.3, 6)), np.exp(rng.normal(0.2, 0.4, 9))
    est = error_ratio(a, b, level=0.9)
    ci = stats.ttest_ind(np.log(a), np.log(b), equal_var=False).confidence_interval(0.9)
    np.testing.assert_allclose([est.ci_low, est.ci_high], np.exp([ci.low, ci.high]), rtol=1e-10)
    assert est.value == pytest.approx(np.exp(np.log(a).mean() - np.log(b).mean()), rel=1e-12)
    assert est.method == "welch-log-t"
    est = error_ratio(a, b[:6], paired=True)
    ci = stats.ttest_rel(np.log(a), np.log(b[:6])).confidence_interval(0.95)
    np.testing.assert_allclose([est.ci_low, est.ci_high], np.exp([ci.low, ci.high]), rtol=1e-10)
    assert est.method == "paired-log-t"


def test_error_ratio_refuses_what_has_no_log_and_unequal_pairs():
    with pytest.raises(ValueError, match="values"):
        error_ratio([0.0, 0.1], [0.1, 0.2])
    with pytest.raises(ValueError, match="paired"):
        error_ratio([0.1, 0.2], [0.1, 0.2, 0.3], paired=True)
    assert np.isnan(error_ratio([0.1], [0.2, 0.3]).ci_low)


def _holm_reference(p, alpha):
    """Holm (1979) step-down: reject in increasing order while p_(i) <= alpha / (n - i)."""
    order = np.argsort(p)
    reject = np.zeros(len(p), bool)
    for i, j in enumerate(order):
        if p[j] > alpha / (len(p) - i):
            break
        reject[j] = True
    return reject


def test_holm_adjust_rejects_what_the_step_down_procedure_rejects():
    np.testing.assert_allclose(holm_adjust([0.01, 0.04, 0.03, 0.2]), [0.04, 0.09, 0.09, 0.2])
    rng = np.random.default_rng(4)
    for _ in range(300):
        p = rng.uniform(0, 0.2, rng.integers(1, 12)) ** 2
        for alpha in (0.05, 0.01):
            np.testing.assert_array_equal(holm_adjust(p) <= alpha, _holm_reference(p, alpha))
    out = holm_adjust([0.01, np.nan, 0.02])  # nan is no test: n = 2
    np.testing.assert_allclose(out[[0, 2]], [0.02, 0.02])
    assert np.isnan(out[1])
    with pytest.raises(ValueError, match="p_values"):
        holm_adjust([1.5])


def test_first_crossing_is_the_rule_of_features_needed():
    rng = np.random.default_rng(5)
    ms = np.array([16.0, 32, 64, 128, 256])
    for _ in range(500):
        curve, target = np.exp(rng.normal(0, 1, 5)), float(np.exp(rng.normal()))
        log_m, code = _first_crossing(np.log(ms), np.log(curve)[None], np.log([target]))
        reference = features_needed(ms, curve, target)
        if np.isnan(reference):
            assert code[0] == 1
        else:
            assert np.exp(log_m[0]) == pytest.approx(reference, rel=1e-12)
            assert code[0] == (-1 if curve[0] < target else 0)


def test_features_ratio_of_exact_power_laws():
    """Half the error of m^-1/2 at every m needs a quarter of the features."""
    ms = np.array([16, 32, 64, 128, 256])
    base = np.tile(ms**-0.5, (3, 1))
    est, relation, target = features_ratio(ms, 0.5 * base, base)
    assert relation == "=" and est.value == pytest.approx(0.25, rel=1e-12)
    assert est.ci_low == pytest.approx(0.25) and est.ci_high == pytest.approx(0.25)
    assert target == pytest.approx(256**-0.5)
    est, relation, _ = features_ratio(ms, 2 * base, base)  # twice the error: 4x the features
    assert relation == "=" and est.value == pytest.approx(4.0, rel=1e-12)
    # a tenth of the error is below the reference from the smallest m on: only a bound
    ratio, relation, _ = features_ratio_point(ms, 0.1 * ms**-0.5, ms**-0.5)
    assert relation == "<" and ratio == pytest.approx(16 / 256)
    ratio, relation, _ = features_ratio_point(ms, ms**-0.5, 0.1 * ms**-0.5)
    assert relation == ">" and ratio == pytest.approx(256 / 16)
    ratio, relation, _ = features_ratio_point(ms, ms**0.5, ms**0.1)  # both increasing
    assert relation == "?" and np.isnan(ratio)


def test_features_ratio_interval_covers_the_true_ratio():
    """Log-normal noise (sd 0.2) on power laws, R=10, 300 trials. The percentile bootstrap is
    first-order: its spread is sqrt((R-1)/R) of the truth, nominal 0.95 becomes about 0.93;
    the bound is 0.93 minus 5 SE."""
    rng = np.random.default_rng(6)
    ms = np.array([16, 32, 64, 128, 256])
    trials = 300
    covered = 0
    for t in range(trials):
        S = 0.5 * ms**-0.5 * np.exp(rng.normal(0, 0.2, (10, 5)))
        B = ms**-0.5 * np.exp(rng.normal(0, 0.2, (10, 5)))
        est, _, _ = features_ratio(ms, S, B, n_resamples=400, seed=t)
        covered += est.ci_low <= 0.25 <= est.ci_high
    assert covered / trials >= 0.93 - _five_se(0.93, trials)


def test_features_ratio_refuses_bad_curves():
    with pytest.raises(ValueError, match="n_features"):
        features_ratio([16, 8], np.ones((2, 2)), np.ones((2, 2)))
    with pytest.raises(ValueError, match="shape"):
        features_ratio([8, 16], np.ones((2, 3)), np.ones((2, 2)))
    with pytest.raises(ValueError, match="errors"):
        features_ratio([8, 16], np.zeros((2, 2)), np.ones((2, 2)))


def test_bootstrap_replications_of_a_mean_stays_inside_the_data():
    x = np.array([0.1, 0.4, 0.2, 1.5, 0.3])
    est = bootstrap_replications(x, level=0.9, seed=0)
    assert est.value == pytest.approx(x.mean())
    assert x.min() <= est.ci_low < est.value < est.ci_high <= x.max()
    looped = bootstrap_replications([x], lambda g: float(g.mean()), level=0.9, seed=0)
    # the same resamples, one at a time: the same percentile interval up to sampling
    assert looped.ci_low == pytest.approx(est.ci_low, abs=0.05)
    with pytest.raises(ValueError, match="at least 2"):
        bootstrap_replications([0.3])
    with pytest.raises(ValueError, match="statistic"):
        bootstrap_replications([x, x])


def test_cochran_rule_uses_the_pooled_sample_skewness():
    rng = np.random.default_rng(7)
    x = rng.exponential(size=(12, 3))
    z = (x - x.mean(0)) / x.std(0)
    assert cochran_replications(x[:, 0]) == pytest.approx(25 * stats.skew(x[:, 0]) ** 2)
    assert cochran_replications(x) == pytest.approx(25 * np.mean(z**3) ** 2)
    heavy = np.exp(rng.normal(0, 1.5, 40))  # log-normal: skewness far above 1
    assert too_few_replications(heavy)
    assert not too_few_replications(rng.normal(size=400))
    assert np.isnan(cochran_replications([1.0, 2.0]))
