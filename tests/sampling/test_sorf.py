"""SORF is biased: its exact support at d = 2 and 4, and its error floors at d = 4 and 8."""

import itertools
import warnings

import numpy as np
import pytest
from scipy.linalg import hadamard

from kernelapprox import features, kernels
from kernelapprox.estimators.replications import mean_and_se
from kernelapprox.kernels import NORMAL, median_pairwise_distance
from kernelapprox.sampling import (
    SAMPLERS,
    SORFBiasWarning,
    StructuredOrthogonal,
    make_sampler,
)
from kernelapprox.sampling.orthogonal import SORF_ERROR_FLOORS, SORF_WARN_MAX_DIM


@pytest.fixture(autouse=True)
def _quiet_bias():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SORFBiasWarning)
        yield


def every_sorf_row(p: int) -> np.ndarray:
    """All rows of ``sqrt(p) H D1 H D2 H D3`` over the ``2^{3p}`` sign patterns (the law of
    one SORF block, each row equally likely), built independently of the sampler."""
    H = hadamard(p) / np.sqrt(p)
    signs = np.array(list(itertools.product([-1.0, 1.0], repeat=p)))
    rows = []
    for s1 in signs:
        A = np.sqrt(p) * H * s1
        for s2 in signs:
            B = A @ H * s2
            rows.extend(B @ H * s3 for s3 in signs)
    return np.concatenate(rows)


def normal_data(d: int, n: int = 200) -> tuple[np.ndarray, kernels.Gaussian]:
    X = np.random.default_rng(0).normal(size=(n, d))
    return X, kernels.Gaussian(median_pairwise_distance(X))


def relative_error(G: np.ndarray, K: np.ndarray) -> float:
    return float(np.linalg.norm(G - K) / np.linalg.norm(K))


def test_only_sorf_is_flagged_biased():
    assert StructuredOrthogonal.unbiased is False
    assert all(cls.unbiased for name, cls in SAMPLERS.items() if name != "sorf")


def test_d2_has_four_frequencies_of_norm_sqrt2_and_a_deterministic_estimate():
    W = make_sampler("sorf").frequencies(NORMAL, 64, 2, seed=0, replications=20)
    np.testing.assert_allclose(np.linalg.norm(W, axis=-1), np.sqrt(2), rtol=1e-12)
    distinct = np.unique(np.round(W.reshape(-1, 2), 9), axis=0)
    np.testing.assert_array_equal(distinct, [[-1, -1], [-1, 1], [1, -1], [1, 1]])
    X, k = normal_data(2, 50)
    U = X * k.input_scale
    closed = np.cos(U[:, None, 0] - U[None, :, 0]) * np.cos(U[:, None, 1] - U[None, :, 1])
    for seed in range(3):  # the same estimate for every seed: the bias is the whole error
        fm = features.make("sincos", k, 6, dim=2, sampler="sorf", seed=seed)
        np.testing.assert_allclose(fm.gram(X), closed, atol=1e-12)
    X, k = normal_data(2)
    U = X * k.input_scale
    closed = np.cos(U[:, None, 0] - U[None, :, 0]) * np.cos(U[:, None, 1] - U[None, :, 1])
    assert relative_error(closed, k(X)) == pytest.approx(SORF_ERROR_FLOORS[2], abs=5e-5)


def test_d4_floor_is_the_exact_expectation_over_all_sign_patterns():
    support, counts = np.unique(np.round(every_sorf_row(4), 9), axis=0, return_counts=True)
    assert len(support) == 24
    drawn = make_sampler("sorf").frequencies(NORMAL, 64, 4, seed=1, replications=8)
    drawn = np.unique(np.round(drawn.reshape(-1, 4), 9), axis=0)
    assert {tuple(r) for r in drawn} <= {tuple(r) for r in support}
    X, k = normal_data(4)
    K = k(X)
    expected = features.SinCos.from_frequencies(
        k, support * k.input_scale, weights=counts / counts.sum()
    ).gram(X)
    assert relative_error(expected, K) == pytest.approx(SORF_ERROR_FLOORS[4], abs=5e-5)
    # the sampler's mean Gram matrix converges to that expectation, not to K: its distance to
    # the expectation is within 5 of its own standard errors (|mean - E| <= |noise of mean|)
    R = 10
    grams = np.stack(
        [features.make("sincos", k, 1024, dim=4, sampler="sorf", seed=s).gram(X) for s in range(R)]
    )
    noise = np.sqrt(grams.var(0, ddof=1).sum() / R)
    assert np.linalg.norm(grams.mean(0) - expected) <= 5 * noise
    assert relative_error(grams.mean(0), K) > 10 * noise / np.linalg.norm(K)


def test_d8_floor_matches_the_documented_value_and_exceeds_mc():
    X, k = normal_data(8)
    K = k(X)
    R, m = 10, 4096
    sorf = np.stack(
        [features.make("sincos", k, m, dim=8, sampler="sorf", seed=s).gram(X) for s in range(R)]
    )
    # | |mean - K| - |E - K| | <= |mean - E|, whose size is the noise of the mean
    noise = np.sqrt(sorf.var(0, ddof=1).sum() / R) / np.linalg.norm(K)
    floor = relative_error(sorf.mean(0), K)
    assert abs(floor - SORF_ERROR_FLOORS[8]) <= 5 * noise + 5e-5
    mc = [
        relative_error(features.make("sincos", k, m, dim=8, sampler="mc", seed=s).gram(X), K)
        for s in range(R)
    ]
    mc_mean, mc_se = mean_and_se(mc)
    assert mc_mean + 5 * mc_se < floor / 2


def test_one_bias_warning_per_sampler_object_at_small_d():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sampler = StructuredOrthogonal()
        sampler.frequencies(NORMAL, 8, 4, seed=0, replications=5)
        sampler.frequencies(NORMAL, 8, 4, seed=1)
        features.make("sincos", kernels.Gaussian(), 16, dim=8, sampler="sorf", seed=0)
        StructuredOrthogonal().frequencies(NORMAL, 64, 64, seed=0)
    bias = [w for w in caught if issubclass(w.category, SORFBiasWarning)]
    assert len(bias) == 2
    assert "biased at d=4" in str(bias[0].message) and "0.0953" in str(bias[0].message)
    assert "biased at d=8" in str(bias[1].message)
    assert SORF_WARN_MAX_DIM < 64
