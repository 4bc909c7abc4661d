import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.metrics.pairwise import laplacian_kernel, rbf_kernel

from kernelapprox.kernels import (
    CAUCHY,
    NORMAL,
    PPF_EPS,
    Gaussian,
    Laplacian,
    Softmax,
    gaussian_softmax_log_factor,
    make_kernel,
    median_pairwise_distance,
)

rng = np.random.default_rng(0)
X = rng.normal(size=(7, 3))
Y = rng.normal(size=(5, 3))


def test_gaussian_matches_sklearn_rbf():
    ell = 1.7
    np.testing.assert_allclose(Gaussian(ell)(X, Y), rbf_kernel(X, Y, gamma=1 / (2 * ell**2)))


def test_laplacian_is_l1_and_matches_sklearn():
    ell = 0.8
    np.testing.assert_allclose(Laplacian(ell)(X, Y), laplacian_kernel(X, Y, gamma=1 / ell))


def test_softmax_closed_form():
    np.testing.assert_allclose(Softmax(0.3)(X, Y), np.exp(0.3 * X @ Y.T))


def test_gram_defaults_to_symmetric_self_gram():
    K = Gaussian(1.0)(X)
    np.testing.assert_allclose(K, K.T)
    np.testing.assert_allclose(np.diag(K), 1.0)
    np.testing.assert_allclose(Softmax(0.5).diag(X), np.diag(Softmax(0.5)(X)))


@given(arrays(np.float64, (4, 3), elements=st.floats(-3, 3)))
def test_gaussian_softmax_relation(U):
    # exp(-|u-v|^2/2) = exp(f(u)) exp(f(v)) exp(u.v), f(u) = -|u|^2/2
    f = gaussian_softmax_log_factor(U)
    lhs = Gaussian(1.0)(U)
    rhs = np.exp(f[:, None] + f[None, :]) * Softmax(1.0)(U)
    np.testing.assert_allclose(lhs, rhs, rtol=1e-12, atol=1e-300)


def test_ppf_is_clipped_and_finite_at_the_origin():
    w = NORMAL.ppf(np.array([0.0, 1.0]))
    assert np.all(np.isfinite(w))
    assert np.isclose(w[0], -w[1])
    assert np.isclose(NORMAL.ppf(np.array([PPF_EPS]))[0], w[0])
    assert np.all(np.isfinite(CAUCHY.ppf(np.array([0.0, 1.0]))))
    assert np.all(np.isfinite(NORMAL.radial_ppf(np.array([0.0, 1.0]), 5)))


def test_radial_law_needs_rotation_invariance():
    with pytest.raises(ValueError, match="rotation-invariant"):
        CAUCHY.radial_ppf(np.array([0.5]), 3)


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_length_scale_is_rejected_by_name(bad):
    with pytest.raises(ValueError, match="length_scale"):
        Gaussian(bad)
    with pytest.raises(ValueError, match="scale"):
        Softmax(bad)


def test_bad_data_is_rejected():
    with pytest.raises(ValueError, match="NaN"):
        Gaussian()(np.array([[0.0, np.nan]]))
    with pytest.raises(ValueError, match=r"shape \(n, d\)"):
        Gaussian()(np.ones(3))
    with pytest.raises(ValueError, match="3 columns"):
        Gaussian()(X, np.ones((2, 2)))
    with pytest.raises(TypeError, match="length_scale"):
        Gaussian("wide")


def test_make_kernel_by_name():
    assert make_kernel("gaussian", length_scale=2.0) == Gaussian(2.0)
    assert make_kernel("softmax", scale=0.5) == Softmax(0.5)
    with pytest.raises(ValueError, match="kernel must be one of"):
        make_kernel("matern")
    assert repr(Laplacian(3.0)) == "Laplacian(length_scale=3.0)"


def test_median_pairwise_distance():
    Z = np.array([[0.0], [1.0], [3.0]])
    assert median_pairwise_distance(Z) == 2.0
    with pytest.raises(ValueError, match="2 rows"):
        median_pairwise_distance(Z[:1])


def test_paired_is_the_gram_diagonal():
    for k in (Gaussian(1.3), Laplacian(0.7), Softmax(0.4)):
        np.testing.assert_allclose(k.paired(X[:5], Y), np.diag(k(X[:5], Y)), rtol=1e-13)
    with pytest.raises(ValueError, match="same number of rows"):
        Gaussian().paired(X, Y)


def test_diag_is_the_gram_diagonal_for_every_kernel():
    from kernelapprox.kernels import KERNELS

    X = np.random.default_rng(3).normal(size=(6, 3))
    for cls in KERNELS.values():
        k = cls()
        np.testing.assert_allclose(k.diag(X), np.diag(k(X)), rtol=1e-13)
        assert k.statistic in ("sqeuclidean", "cityblock", "inner")
