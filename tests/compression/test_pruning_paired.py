"""Paired comparison of two methods over seeds: scipy's paired t interval, and the verdicts."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from kernelapprox.compression.pruning.paired import (
    paired_difference,
    paired_ratio,
    target_verdict,
)


def test_difference_is_scipys_paired_t_interval():
    rng = np.random.default_rng(4)
    shared = rng.normal(0.8, 0.05, 6)  # what a seed does to both methods
    a, b = shared + rng.normal(0.0, 0.01, 6), shared - 0.03 + rng.normal(0.0, 0.01, 6)
    d = paired_difference(a, b, level=0.9)
    ci = stats.ttest_rel(a, b).confidence_interval(0.9)
    assert d["value"] == pytest.approx(float(np.mean(a - b)), rel=1e-14)
    assert d["ci_low"] == pytest.approx(float(ci.low), rel=1e-12)
    assert d["ci_high"] == pytest.approx(float(ci.high), rel=1e-12)
    assert d["n_seeds"] == 6 and d["per_seed"] == pytest.approx(list(a - b), rel=1e-14)
    # pairing removes the shared seed effect: narrower than the unpaired (Welch) interval
    welch = stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.9)
    assert d["ci_high"] - d["ci_low"] < float(welch.high - welch.low)


def test_ratio_is_the_t_interval_of_per_seed_ratios():
    a, b = [0.81, 0.74, 0.9, 0.78], [0.83, 0.8, 0.88, 0.8]
    r = paired_ratio(a, b)
    per = np.asarray(a) / np.asarray(b)
    ci = stats.ttest_1samp(per, 0.0).confidence_interval(0.95)
    assert r["value"] == pytest.approx(float(per.mean()), rel=1e-14)
    assert (r["ci_low"], r["ci_high"]) == pytest.approx((float(ci.low), float(ci.high)), rel=1e-12)


def test_one_seed_has_no_interval():
    r = paired_ratio([0.8], [0.9])
    assert r["ci_low"] is None and r["ci_high"] is None and r["stderr"] is None
    assert target_verdict(r, 0.95) == "no interval"


@pytest.mark.parametrize(
    "low, high, verdict",
    [(0.96, 1.1, "met"), (0.95, 1.0, "met"), (0.8, 0.949, "not met"), (0.9, 1.0, "inconclusive")],
)
def test_verdicts(low, high, verdict):
    assert target_verdict({"ci_low": low, "ci_high": high}, 0.95) == verdict


@pytest.mark.parametrize(
    "a, b, match",
    [
        ([0.8, 0.7], [0.9], "one score per seed"),
        ([], [], "one score per seed"),
        ([0.8, float("nan")], [0.9, 0.9], "finite"),
    ],
)
def test_bad_scores(a, b, match):
    with pytest.raises(ValueError, match=match):
        paired_difference(a, b)


def test_ratio_needs_positive_denominators():
    with pytest.raises(ValueError, match="denominator"):
        paired_ratio([0.5, 0.6], [0.5, 0.0])
