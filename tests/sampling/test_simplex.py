"""Simplex random features (Reid et al., ICML 2023): exact geometry, chi radii, unbiasedness."""

import numpy as np
import pytest
from scipy import stats

from kernelapprox import features, kernels
from kernelapprox.estimators.replications import mean_and_se
from kernelapprox.kernels import NORMAL
from kernelapprox.sampling import Simplex, make_sampler, sample_frequencies, simplex_directions


@pytest.mark.parametrize("d", [2, 3, 7, 16])
def test_vertices_are_a_regular_simplex(d):
    S = simplex_directions(d)
    np.testing.assert_allclose(S @ S.T, (d * np.eye(d) - 1) / (d - 1), atol=1e-14)
    np.testing.assert_allclose(S.sum(0), 0, atol=1e-14)


@pytest.mark.parametrize(("d", "m"), [(5, 13), (8, 8), (1, 3)])
def test_blocks_are_rotated_simplices_with_chi_radii(d, m):
    W = sample_frequencies("simplex", kernels.Gaussian(), m, d, seed=3)
    assert W.shape == (m, d)
    for start in range(0, m, d):
        block = W[start : start + d]
        V = block / np.linalg.norm(block, axis=1, keepdims=True)
        full = (d * np.eye(d) - 1) / (d - 1) if d > 1 else np.ones((1, 1))
        n = len(block)
        np.testing.assert_allclose(V @ V.T, full[:n, :n], atol=1e-12)
    R = 400
    norms = np.linalg.norm(Simplex().frequencies(NORMAL, d, d, seed=0, replications=R), axis=-1)
    assert stats.kstest(norms.ravel(), stats.chi(df=d).cdf).pvalue > 1e-4


def test_rows_are_standard_normal_in_law():
    d, R = 4, 3000
    rows = sample_frequencies("simplex", kernels.Gaussian(), d, d, seed=1, replications=R)
    # a fixed coordinate of a fixed row: N(0, 1)
    assert stats.kstest(rows[:, 2, 1], "norm").pvalue > 1e-4
    assert np.abs((rows**2).mean() - 1.0) < 5 * np.sqrt(2 / (R * d * d))


@pytest.mark.parametrize(
    ("map_name", "kernel"),
    [("sincos", kernels.Gaussian(1.3)), ("positive", kernels.Softmax()),
     ("hyperbolic", kernels.Gaussian(1.3)), ("fourier", kernels.Softmax())],
)  # fmt: skip
def test_unbiased_within_5_se(map_name, kernel):
    d, R = 6, 3000
    rng = np.random.default_rng(7)
    X = rng.normal(size=(2, d))
    X *= 0.8 / np.linalg.norm(X, axis=1, keepdims=True)
    W = sample_frequencies("simplex", kernel, d, d, seed=11, replications=R)
    fm = features.MAPS[map_name].from_frequencies(kernel, W.reshape(R * d, d) * kernel.input_scale)
    estimates = fm.pair_terms(X[:1], X[1:]).reshape(R, d).mean(1)  # one block per estimate
    mean, se = mean_and_se(estimates)
    assert abs(mean - kernel(X)[0, 1]) <= 5 * se


def test_positive_features_beat_iid_in_variance():
    d, R = 8, 6000
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(2, d))
    x, y = 0.9 * x / np.linalg.norm(x), 0.9 * y / np.linalg.norm(y)

    def variance(name: str) -> tuple[float, float]:
        W = sample_frequencies(name, kernels.Softmax(), d, d, seed=1, replications=R)
        est = np.exp(W @ x - x @ x / 2 + W @ y - y @ y / 2).mean(1)
        c = est - est.mean()
        v = float(np.mean(c**2))
        return v, float(np.sqrt((np.mean(c**4) - v * v) / R))

    (vs, ses), (vm, sem) = variance("simplex"), variance("mc")
    assert vm - vs > 5 * np.hypot(ses, sem)


def test_simplex_needs_a_rotation_invariant_measure_and_is_in_the_registry():
    assert isinstance(make_sampler("simplex"), Simplex) and Simplex.unbiased
    with pytest.raises(ValueError, match="rotation-invariant"):
        sample_frequencies("simplex", kernels.Laplacian(), 4, 3, seed=0)
    fm = features.make("positive", kernels.Softmax(), 16, dim=4, sampler="simplex", seed=0)
    assert fm(np.zeros((2, 4))).shape == (2, 16)
