"""Analytic variances against Monte Carlo variances of plain numpy feature draws.

Every comparison uses a fixed seed and the tolerance 5 standard errors of the Monte Carlo
variance estimate, SE(s^2) = sqrt((m4 - s^4) / R) with m4 the sample fourth central moment.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from kernelapprox.estimators.analytic import (
    analytic_interval,
    cos_offset_variance,
    cos_variance,
    gaussian_cos_variance,
    orf_variance,
    performer_hyperbolic_mse,
    performer_positive_mse,
    performer_trigonometric_mse,
    sincos_variance,
)
from tests.conftest import THOROUGH

R = 80_000 if THOROUGH else 20_000


def _variance_and_se(samples, centre=None):
    """Sample variance (or MSE about ``centre``) and its standard error."""
    samples = np.asarray(samples)
    dev = samples - (samples.mean() if centre is None else centre)
    var = np.mean(dev**2) if centre is not None else samples.var(ddof=1)
    m4 = np.mean(dev**4)
    return var, np.sqrt(max(m4 - var**2, 0.0) / samples.size)


def _assert_within_5se(analytic, samples, centre=None):
    mc, se = _variance_and_se(samples, centre)
    assert abs(mc - analytic) <= 5 * se, (mc, analytic, se)


def gaussian_k(delta):
    return np.exp(-0.5 * np.sum(np.asarray(delta) ** 2))


# --------------------------------------------------------------------------------------
# shift-invariant kernels
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("delta", [[0.3, -0.2], [1.0, 0.8]])
def test_cos_variance_laplacian_kernel(delta):
    # Laplacian k = exp(-|delta|_1) <=> iid Cauchy(0, 1) frequencies: a non-Gaussian check
    rng = np.random.default_rng(10)
    delta = np.asarray(delta)
    omega = rng.standard_cauchy(size=(R, 2))
    k, k2 = np.exp(-np.abs(delta).sum()), np.exp(-2 * np.abs(delta).sum())
    _assert_within_5se(cos_variance(k, k2), np.cos(omega @ delta))


@pytest.mark.parametrize("z", [0.0, 0.4, 1.0, 2.5])
def test_gaussian_cos_variance_is_cos_variance_with_gaussian_k(z):
    assert gaussian_cos_variance(z) == pytest.approx(
        cos_variance(np.exp(-(z**2) / 2), np.exp(-2 * z**2)), abs=1e-15
    )


@pytest.mark.parametrize("z", [0.7, 1.6])
def test_gaussian_cos_variance_monte_carlo(z):
    rng = np.random.default_rng(11)
    omega = rng.normal(size=R)  # 1-D suffices: omega'delta ~ N(0, z^2) in any dimension
    _assert_within_5se(gaussian_cos_variance(z), np.cos(z * omega))


def _sincos_estimates(rng, x, y, D):
    omega = rng.normal(size=(R, D // 2, x.size))
    zx = np.sqrt(2 / D) * np.concatenate([np.sin(omega @ x), np.cos(omega @ x)], axis=1)
    zy = np.sqrt(2 / D) * np.concatenate([np.sin(omega @ y), np.cos(omega @ y)], axis=1)
    return np.sum(zx * zy, axis=1)


def _cos_offset_estimates(rng, x, y, D):
    omega = rng.normal(size=(R, D, x.size))
    b = rng.uniform(0, 2 * np.pi, size=(R, D))
    zx = np.sqrt(2 / D) * np.cos(omega @ x + b)
    zy = np.sqrt(2 / D) * np.cos(omega @ y + b)
    return np.sum(zx * zy, axis=1)


PAIRS = [
    (np.array([0.1, 0.5, -0.3]), np.array([0.4, 0.2, 0.1])),
    (np.array([1.0, -0.5, 0.3]), np.array([-0.2, 0.4, 0.9])),
]


@pytest.mark.parametrize(("x", "y"), PAIRS)
def test_sincos_variance_monte_carlo(x, y):
    D = 16
    k, k2 = gaussian_k(x - y), gaussian_k(2 * (x - y))
    _assert_within_5se(
        sincos_variance(k, k2, output_dim=D), _sincos_estimates(np.random.default_rng(12), x, y, D)
    )


@pytest.mark.parametrize(("x", "y"), PAIRS)
def test_cos_offset_variance_monte_carlo(x, y):
    D = 16
    k, k2 = gaussian_k(x - y), gaussian_k(2 * (x - y))
    _assert_within_5se(
        cos_offset_variance(k, k2, n_features=D),
        _cos_offset_estimates(np.random.default_rng(13), x, y, D),
    )


def test_cos_offset_never_better_for_gaussian():
    z = np.linspace(0, 4, 81)
    k, k2 = np.exp(-(z**2) / 2), np.exp(-2 * z**2)
    assert np.all(cos_offset_variance(k, k2, n_features=8) >= sincos_variance(k, k2, output_dim=8))


def test_variances_vectorise_over_pairs():
    k = np.array([[0.2, 0.5], [0.9, 1.0]])
    k2 = k**4
    out = sincos_variance(k, k2, output_dim=4)
    assert out.shape == (2, 2)
    assert out[1, 1] == 0.0  # Delta = 0: the estimate is exact
    for i in range(2):
        for j in range(2):
            assert out[i, j] == sincos_variance(k[i, j], k2[i, j], output_dim=4)


# --------------------------------------------------------------------------------------
# Performer (softmax kernel exp(x.y))
# --------------------------------------------------------------------------------------
SOFTMAX_PAIRS = [
    (np.array([0.3, -0.2, 0.1, 0.25]), np.array([0.1, 0.3, -0.2, 0.2])),
    (np.array([-0.4, 0.1, 0.3, -0.1]), np.array([0.2, 0.35, 0.05, -0.3])),
]
M = 16


def _performer_estimates(kind, x, y, seed):
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(R, M, x.size))
    wx, wy = w @ x, w @ y
    if kind == "positive":
        terms = np.exp(wx + wy - (x @ x + y @ y) / 2)
    elif kind == "trigonometric":
        terms = np.exp((x @ x + y @ y) / 2) * np.cos(wx - wy)
    else:  # hyperbolic: (e^{w.x} e^{w.y} + e^{-w.x} e^{-w.y}) / 2
        terms = np.exp(-(x @ x + y @ y) / 2) * np.cosh(wx + wy)
    return terms.mean(axis=1)


@pytest.mark.parametrize(
    ("kind", "mse"),
    [
        ("positive", performer_positive_mse),
        ("trigonometric", performer_trigonometric_mse),
        ("hyperbolic", performer_hyperbolic_mse),
    ],
)
@pytest.mark.parametrize("pair", [0, 1])
def test_performer_mse_monte_carlo(kind, mse, pair):
    x, y = SOFTMAX_PAIRS[pair]
    estimates = _performer_estimates(kind, x, y, seed=20 + pair)
    # MSE about the true kernel value (all three estimators are unbiased)
    _assert_within_5se(mse(x, y, n_features=M), estimates, centre=np.exp(x @ y))


def test_performer_identities_and_broadcasting():
    rng = np.random.default_rng(1)
    x, y = rng.normal(scale=0.5, size=(5, 3)), rng.normal(scale=0.5, size=(5, 3))
    pos = performer_positive_mse(x, y, n_features=8)
    hyp = performer_hyperbolic_mse(x, y, n_features=8)
    u2 = np.sum((x + y) ** 2, axis=1)
    np.testing.assert_allclose(hyp, 0.5 * (1 - np.exp(-u2)) * pos, rtol=1e-12)
    assert pos.shape == (5,)
    # x = y: the trigonometric estimator is exact
    assert performer_trigonometric_mse(x[0], x[0], n_features=3) == 0.0
    # huge inputs overflow to inf, never NaN, and without a warning
    assert performer_positive_mse(np.full(3, 30.0), np.full(3, 30.0), n_features=4) == np.inf


# --------------------------------------------------------------------------------------
# orthogonal random features (Yu et al. 2016)
# --------------------------------------------------------------------------------------
def _orf_estimates(rng, d, D, z, reps):
    blocks = -(-D // d)
    G = rng.normal(size=(reps, blocks, d, d))
    Q, Rm = np.linalg.qr(G)
    Q = Q * np.sign(np.diagonal(Rm, axis1=-2, axis2=-1))[..., None, :]  # Haar sign fix
    rows = np.swapaxes(Q, -1, -2).reshape(reps, blocks * d, d)[:, :D, :]
    radii = np.sqrt(rng.chisquare(d, size=(reps, D)))
    direction = rng.normal(size=d)
    delta = z * direction / np.linalg.norm(direction)
    return np.cos((rows * radii[..., None]) @ delta).mean(axis=1)


@pytest.mark.parametrize("d", [4, 8])
@pytest.mark.parametrize("z", [0.8, 1.5])
def test_orf_variance_below_iid(d, z):
    estimates = _orf_estimates(np.random.default_rng(30 + d), d, d, z, R)
    assert abs(estimates.mean() - np.exp(-(z**2) / 2)) <= 5 * estimates.std() / np.sqrt(R)
    mc, se = _variance_and_se(estimates)
    assert mc + 5 * se < gaussian_cos_variance(z) / d
    assert orf_variance(z, dim=d, n_features=d) < gaussian_cos_variance(z) / d


@pytest.mark.parametrize("z", [1.0, 1.5])
def test_orf_leading_term_monte_carlo(z):
    """Leading term vs MC at d = 64, D = 16 (one partial block).

    Tolerance: 5 SE plus the dropped O(d^-2) remainder of the row covariance, allowed as
    1/d times the O(1/d) leading covariance correction (constant 1).
    """
    d, D, reps = 64, 16, 5000
    estimates = _orf_estimates(np.random.default_rng(40), d, D, z, reps)
    mc, se = _variance_and_se(estimates)
    lead = orf_variance(z, dim=d, n_features=D)
    correction = gaussian_cos_variance(z) / D - lead
    assert abs(mc - lead) <= 5 * se + correction / d


def test_orf_variance_blocks():
    z = 1.2
    # D = 2d: two independent full blocks -> half the one-block variance
    one = orf_variance(z, dim=8, n_features=8)
    assert orf_variance(z, dim=8, n_features=16) == pytest.approx(one / 2, rel=1e-12)
    # one frequency: no pairs, the iid value
    assert orf_variance(z, dim=8, n_features=1) == pytest.approx(gaussian_cos_variance(z))


# --------------------------------------------------------------------------------------
# the interval
# --------------------------------------------------------------------------------------
def test_analytic_interval_fields():
    est = analytic_interval(0.5, 0.04, level=0.9, n=32)
    z = stats.norm.ppf(0.95)
    assert est.method == "analytic" and est.replications == 1 and est.n == 32
    assert est.stderr == pytest.approx(0.2)
    assert (est.ci_low, est.ci_high) == pytest.approx((0.5 - 0.2 * z, 0.5 + 0.2 * z))


def test_analytic_interval_coverage_for_sincos():
    """95% plug-in intervals for the sin/cos estimate cover k(x, y) at the nominal rate."""
    x, y = PAIRS[1]
    D, trials = 64, 1000
    rng = np.random.default_rng(50)
    truth = gaussian_k(x - y)
    covered = 0
    for _ in range(trials):
        omega = rng.normal(size=(D // 2, 3))
        terms = np.cos(omega @ (x - y))
        terms2 = np.cos(2 * omega @ (x - y))
        k_hat, k2_hat = terms.mean(), terms2.mean()
        interval = analytic_interval(k_hat, sincos_variance(k_hat, k2_hat, output_dim=D), n=D)
        covered += interval.covers(truth)
    p = covered / trials
    assert abs(p - 0.95) <= 5 * np.sqrt(0.95 * 0.05 / trials), p


def test_bad_input():
    with pytest.raises(ValueError, match="even"):
        sincos_variance(0.5, 0.1, output_dim=3)
    with pytest.raises(ValueError, match="NaN"):
        cos_variance(np.nan, 0.1)
    with pytest.raises(ValueError, match="level"):
        analytic_interval(0.1, 0.01, level=1.0)
    with pytest.raises(ValueError, match="variance"):
        analytic_interval(0.1, -0.01)
    with pytest.raises(ValueError, match="last dimension"):
        performer_positive_mse(np.zeros(3), np.zeros(4), n_features=2)
    with pytest.raises(ValueError, match="n_features"):
        performer_positive_mse(np.zeros(3), np.zeros(3), n_features=0)
