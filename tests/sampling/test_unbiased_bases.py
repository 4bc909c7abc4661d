"""Rotated mutually unbiased frames: the exact design, unbiasedness, and lower error than ORF."""

import itertools

import numpy as np
import pytest
from scipy import stats

from kernelapprox import features, kernels
from kernelapprox.estimators.replications import mean_and_se
from kernelapprox.kernels import NORMAL
from kernelapprox.sampling import MutuallyUnbiased, from_spec, sample_frequencies, unbiased_frames
from kernelapprox.sampling.unbiased_bases import (
    alternating_rows,
    gf2_rank,
    is_power_of_four,
    unbiased_alternating_set,
)


def nonsingular_by_enumeration(rows: list[int], k: int) -> bool:
    """No non-zero x in GF(2)^k with M x = 0 (rows as bit masks)."""
    for x in range(1, 1 << k):
        if all(bin(r & x).count("1") % 2 == 0 for r in rows):
            return False
    return True


def test_gf2_rank_and_alternating_matrices():
    rng = np.random.default_rng(0)
    for _ in range(200):
        k = int(rng.integers(1, 7))
        rows = [int(r) for r in rng.integers(0, 1 << k, k)]
        assert (gf2_rank(rows) == k) == nonsingular_by_enumeration(rows, k)
    A = alternating_rows(0b101, 3)  # S_01 = 1, S_02 = 0, S_12 = 1
    assert A == [0b010, 0b101, 0b010]
    for bits in (1, 7, 12345):
        rows = alternating_rows(bits, 6)
        M = np.array([[r >> j & 1 for j in range(6)] for r in rows])
        assert np.array_equal(M, M.T) and not M.diagonal().any()


@pytest.mark.parametrize("k", [2, 4, 6])
def test_alternating_set_is_a_complete_kerdock_set(k):
    chosen = unbiased_alternating_set(k, 1 << (k - 1))
    assert len(chosen) == 1 << (k - 1) and chosen[0] == 0
    for a, b in itertools.combinations(chosen, 2):
        assert nonsingular_by_enumeration(alternating_rows(a ^ b, k), k)


@pytest.mark.parametrize("d", [4, 16, 64])
def test_frames_are_orthonormal_and_mutually_unbiased(d):
    F = unbiased_frames(d)
    assert F.shape == (d // 2 + 1, d, d)
    G = np.einsum("aij,bkj->abik", F, F)
    for a, b in itertools.product(range(len(F)), repeat=2):
        if a == b:
            np.testing.assert_allclose(G[a, a], np.eye(d), atol=1e-12)
        else:
            np.testing.assert_allclose(np.abs(G[a, b]), 1 / np.sqrt(d), atol=1e-12)
    assert is_power_of_four(d) and not is_power_of_four(8) and not is_power_of_four(2)
    with pytest.raises(ValueError, match="d = 4"):
        unbiased_frames(8)


def test_drawn_directions_keep_the_design_and_radii_are_chi():
    d, m = 16, 100
    W = MutuallyUnbiased().frequencies(NORMAL, m, d, seed=1)
    V = W / np.linalg.norm(W, axis=1, keepdims=True)
    C = np.abs(V @ V.T)
    frame = np.arange(m) // d
    same = frame[:, None] == frame[None, :]
    np.testing.assert_allclose(C[same], np.eye(m)[same], atol=1e-12)
    np.testing.assert_allclose(C[~same], 1 / np.sqrt(d), atol=1e-12)  # 7 frames <= 9: one group
    R = 300
    W = MutuallyUnbiased().frequencies(NORMAL, 40, d, seed=0, replications=R)
    norms = np.linalg.norm(W, axis=-1)
    assert stats.kstest(norms[:, 17], stats.chi(df=d).cdf).pvalue > 1e-4
    # stratified radii: one chi quantile per stratum of 1/m
    W = MutuallyUnbiased().frequencies(NORMAL, m, d, seed=1)
    u = stats.chi.cdf(np.linalg.norm(W, axis=1), df=d)
    np.testing.assert_array_equal(np.sort(np.floor(u * m)), np.arange(m))


def test_antithetic_pairs_and_frame_radii():
    d = 16
    W = from_spec("mub:antithetic=true,radii=frame").frequencies(NORMAL, 71, d, seed=2)
    assert W.shape == (71, d)
    np.testing.assert_array_equal(W[1:70:2], -W[0:70:2])
    norms = np.linalg.norm(W, axis=1)
    np.testing.assert_allclose(norms[: 2 * d], norms[0])  # one radius per frame of 2d rows
    assert not np.isclose(norms[2 * d], norms[0])


@pytest.mark.parametrize("d", [1, 5, 8])
def test_other_dimensions_use_haar_frames(d):
    W = sample_frequencies("mub", kernels.Gaussian(), 3 * d + 1, d, seed=0)
    assert W.shape == (3 * d + 1, d) and np.all(np.isfinite(W))
    block = W[:d] / np.linalg.norm(W[:d], axis=1, keepdims=True)
    np.testing.assert_allclose(np.abs(block @ block.T), np.eye(d), atol=1e-12)


def test_rows_are_standard_normal_in_law():
    R = 2000
    rows = sample_frequencies("mub", kernels.Gaussian(), 40, 16, seed=4, replications=R)
    assert stats.kstest(rows[:, 21, 3], "norm").pvalue > 1e-4
    assert stats.kstest(rows[:, 5, 0], "norm").pvalue > 1e-4


@pytest.mark.parametrize(
    ("spec", "map_name", "kernel"),
    [
        ("mub", "sincos", kernels.Gaussian(1.2)),
        ("mub:antithetic=true,radii=frame", "positive", kernels.Softmax()),
        ("mub:antithetic=true", "positive", kernels.Softmax()),
    ],
)
def test_unbiased_within_5_se(spec, map_name, kernel):
    d, m, R = 16, 48, 1500
    rng = np.random.default_rng(8)
    X = rng.normal(size=(2, d))
    X *= 0.9 / np.linalg.norm(X, axis=1, keepdims=True)
    W = from_spec(spec).frequencies(kernel.spectral_measure, m, d, seed=5, replications=R)
    fm = features.MAPS[map_name].from_frequencies(kernel, W.reshape(R * m, d) * kernel.input_scale)
    estimates = fm.pair_terms(X[:1], X[1:]).reshape(R, m).mean(1)
    se = mean_and_se(estimates)[1]
    assert abs(estimates.mean() - kernel(X)[0, 1]) <= 5 * se


def test_gram_error_below_orf():
    """A small version of the moonshot (benchmarks/sampler_moonshot.py) at d = 16."""
    X = np.random.default_rng(0).normal(size=(80, 16))
    k = kernels.Gaussian(kernels.median_pairwise_distance(X))
    K = k(X)
    R = 24

    def errs(sampler):
        grams = [
            features.make("sincos", k, 128, dim=16, sampler=sampler, seed=s).gram(X)
            for s in range(R)
        ]
        return np.array([np.linalg.norm(G - K) / np.linalg.norm(K) for G in grams])

    mub, orf = errs("mub"), errs("orthogonal")
    se = np.hypot(mub.std(ddof=1), orf.std(ddof=1)) / np.sqrt(R)
    assert orf.mean() - mub.mean() > 5 * se


def test_bad_options():
    with pytest.raises(ValueError, match="radii must be one of"):
        MutuallyUnbiased(radii="iid")
    with pytest.raises(TypeError, match="antithetic must be True or False"):
        MutuallyUnbiased(antithetic="yes")
    with pytest.raises(ValueError, match="rotation-invariant"):
        sample_frequencies("mub", kernels.Laplacian(), 4, 4)
