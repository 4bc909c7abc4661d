"""assert_unbiased / assert_variance_matches: verdicts on correct and on broken feature maps."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from scipy import stats

from kernelapprox import features, kernels
from kernelapprox.estimators import analytic
from kernelapprox.testing import assert_unbiased, assert_variance_matches, family_threshold
from tests.conftest import THOROUGH

DRAWS = 600 if THOROUGH else 200
X = 0.4 * np.random.default_rng(0).normal(size=(5, 3))
Y = 0.4 * np.random.default_rng(1).normal(size=(4, 3))
GAUSS, SOFT, LAPLACE = kernels.Gaussian(1.2), kernels.Softmax(0.8), kernels.Laplacian(1.5)


def factory(name, kernel, m=8, **options):
    def make(seed):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return features.make(name, kernel, m, dim=X.shape[1], seed=seed, **options)

    return make


UNBIASED = [
    ("sincos", GAUSS, "mc"),
    ("cos_offset", LAPLACE, "mc"),
    ("fourier", GAUSS, "orthogonal"),
    ("positive", SOFT, "mc"),
    ("positive", GAUSS, "spherical"),
    ("hyperbolic", SOFT, "sobol"),
    ("sincos", SOFT, "lattice"),
]


@pytest.mark.parametrize(("name", "kernel", "sampler"), UNBIASED)
def test_unbiased_maps_pass(name, kernel, sampler):
    check = assert_unbiased(factory(name, kernel, sampler=sampler), kernel, X, Y, n_draws=DRAWS)
    assert check.passed and check.estimate.shape == (5, 4)
    assert np.all(np.abs(check.z) <= check.threshold)
    # the estimate is a mean over draws: its error bars cover the kernel
    assert np.all(check.stderr > 0)


def test_torch_float32_features_and_pair_factory():
    """Torch outputs in float32, and a (phi_x, phi_y) pair with reciprocal scales."""

    def make(seed):
        fm = factory("positive", SOFT)(seed)
        return (
            lambda A: 2.0 * fm(torch.as_tensor(A, dtype=torch.float32)),
            lambda B: 0.5 * fm(torch.as_tensor(B, dtype=torch.float32)),
        )

    assert assert_unbiased(make, SOFT, X, Y, n_draws=DRAWS).passed


def test_detects_wrong_scale():
    """Frequencies for Softmax(1.0) tested against Softmax(0.8): exp(0.2 x.y) off."""
    with pytest.raises(AssertionError, match=r"assert_unbiased: \d+ of 25 entries"):
        assert_unbiased(factory("positive", kernels.Softmax(1.0)), SOFT, 2 * X, n_draws=DRAWS)


def test_detects_the_released_dijiang_map():
    with pytest.raises(AssertionError, match="worst entry"):
        assert_unbiased(factory("dct_released", SOFT, m=3), SOFT, X, n_draws=DRAWS)


def test_detects_the_paper_dct_map_at_m_equal_d():
    """DiJiang's paper map with m = d: fixed DCT directions and positive chi radii, so the
    expectation is a d-point spherical rule of one sign, far from K_G (biased by design)."""
    with pytest.raises(AssertionError, match="worst entry"):
        assert_unbiased(factory("dct", GAUSS, m=3), GAUSS, 2 * X, n_draws=DRAWS)


def test_zero_variance_entries_must_match_to_rounding():
    """A deterministic map: phi(x) = x is exact for the linear kernel, 1.001 x is not."""

    def linear(A, B):
        return np.asarray(A) @ np.asarray(B).T

    check = assert_unbiased(lambda seed: lambda A: np.asarray(A), linear, X, Y)
    assert np.all(check.stderr == 0) and np.all(check.z == 0)
    with pytest.raises(AssertionError, match=r"z = [+-]inf"):
        assert_unbiased(lambda seed: lambda A: 1.001 * np.asarray(A), linear, X, Y)


def test_false_alarm_rate_matches_the_nominal_level():
    """With n_sigma=2 and no correction, a single unbiased entry fails with probability
    P(|t_{R-1}| > t-quantile) = 2 * normal_sf(2) = 4.55%; 120 seeds: the failure count must be
    within 5 binomial standard errors of that."""
    x = X[:1]
    trials = 120
    failures = 0
    for s in range(trials):
        try:
            assert_unbiased(
                factory("sincos", GAUSS, m=2),
                GAUSS,
                x,
                n_draws=40,
                n_sigma=2.0,
                correction="none",
                seed=s,
            )
        except AssertionError:
            failures += 1
    p = 2 * stats.norm.sf(2.0)
    assert abs(failures - trials * p) <= 5 * np.sqrt(trials * p * (1 - p)) + 1


def test_family_threshold_grows_with_the_number_of_entries():
    t1 = family_threshold(5.0, 1, 200)
    t100 = family_threshold(5.0, 100, 200)
    assert t1 == pytest.approx(stats.t.isf(stats.norm.sf(5.0), 199))
    assert t100 > t1 > 5.0
    assert family_threshold(5.0, 100, 200, correction="none") == pytest.approx(t1)


def test_nan_features_fail_and_bad_input_raises():
    with pytest.raises(AssertionError, match="NaN"):
        assert_unbiased(lambda s: lambda A: np.full((len(A), 2), np.nan), GAUSS, X)
    with pytest.raises(ValueError, match="n_draws"):
        assert_unbiased(factory("sincos", GAUSS), GAUSS, X, n_draws=1)
    with pytest.raises(TypeError, match="make_features"):
        assert_unbiased(3, GAUSS, X)
    with pytest.raises(ValueError, match="shape"):
        assert_unbiased(factory("sincos", GAUSS), lambda A, B: np.zeros(3), X, n_draws=2)
    with pytest.raises(ValueError, match="one row of features"):
        assert_unbiased(lambda s: lambda A: np.ones((2, 2)), GAUSS, X, n_draws=2)
    with pytest.raises(ValueError, match="correction"):
        assert_unbiased(factory("sincos", GAUSS), GAUSS, X, correction="holm")


# ---------------------------------------------------------------- variance
VAR_DRAWS = 4000 if THOROUGH else 1500


def positive_variance(m):
    def variance(A, B):
        return analytic.performer_positive_mse(A[:, None], B[None, :], n_features=m)

    return variance


def sincos_variance(kernel, m):
    def variance(A, B):
        k = kernel(A, B)
        return analytic.sincos_variance(k, kernel(2 * A, 2 * B), output_dim=2 * m)

    return variance


def test_variance_of_positive_and_sincos_maps_matches_closed_forms():
    assert assert_variance_matches(
        factory("positive", kernels.Softmax(), m=4), positive_variance(4), X, Y, n_draws=VAR_DRAWS
    ).passed
    check = assert_variance_matches(
        factory("sincos", GAUSS, m=4), sincos_variance(GAUSS, 4), X, Y, n_draws=VAR_DRAWS
    )
    assert check.quantity == "variance" and check.passed


def test_variance_mismatch_is_detected():
    """Hyperbolic features have smaller variance than the positive ones (Performer Sec. 2.3):
    testing them against the positive MSE must fail, as must a 30% inflated formula."""
    with pytest.raises(AssertionError, match="assert_variance_matches"):
        assert_variance_matches(
            factory("hyperbolic", kernels.Softmax(), m=4),
            positive_variance(4),
            2 * X,
            2 * Y,
            n_draws=VAR_DRAWS,
        )
    inflated = sincos_variance(GAUSS, 4)
    with pytest.raises(AssertionError, match="analytic variance"):
        assert_variance_matches(
            factory("sincos", GAUSS, m=4),
            lambda A, B: 1.3 * inflated(A, B),
            X,
            Y,
            n_draws=VAR_DRAWS,
        )


def test_variance_validation():
    with pytest.raises(ValueError, match="non-negative"):
        assert_variance_matches(
            factory("sincos", GAUSS), lambda A, B: -np.ones((5, 5)), X, n_draws=3
        )
    with pytest.raises(TypeError, match="variance_fn"):
        assert_variance_matches(factory("sincos", GAUSS), None, X)
